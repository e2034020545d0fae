import Foundation
import TensorCore

/// Llama 3.1's frequency-dependent scaling, exactly as HF `_compute_llama3_parameters`: with
/// wavelength λ = 2π/inv_freq and the original context L, frequencies whose λ < L/high are kept,
/// those with λ > L/low are divided by `factor`, and those between are blended with
/// s = (L/λ − low)/(high − low): (1 − s)·f/factor + s·f. The attention factor is 1. All in Float32.
///
/// Recipe kind `llama3`: `factor`, `low_freq_factor` (1), `high_freq_factor` (4),
/// `original_max_position_embeddings` (8192).
public struct Llama3RoPEScaling: RoPEScaling, Equatable {
    public var factor: Double
    public var lowFrequencyFactor: Double
    public var highFrequencyFactor: Double
    public var originalMaxPositions: Int

    public init(factor: Double, lowFrequencyFactor: Double = 1, highFrequencyFactor: Double = 4, originalMaxPositions: Int = 8192) {
        self.factor = factor
        self.lowFrequencyFactor = lowFrequencyFactor
        self.highFrequencyFactor = highFrequencyFactor
        self.originalMaxPositions = originalMaxPositions
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any RoPEScaling {
        let low = try o.positiveFinite("low_freq_factor", default: 1), high = try o.positiveFinite("high_freq_factor", default: 4)
        guard high > low else { throw o.error("high_freq_factor", "must be greater than low_freq_factor (\(low)), got \(high)") }
        let orig = try o.int("original_max_position_embeddings", default: 8192)
        guard orig >= 1 else { throw o.error("original_max_position_embeddings", "must be positive, got \(orig)") }
        return Llama3RoPEScaling(factor: try o.ropeFactor(), lowFrequencyFactor: low, highFrequencyFactor: high,
                                 originalMaxPositions: orig)
    }

    public var options: [String: ConfigValue] {
        ["kind": .string("llama3"), "factor": .double(factor), "low_freq_factor": .double(lowFrequencyFactor),
         "high_freq_factor": .double(highFrequencyFactor), "original_max_position_embeddings": .int(originalMaxPositions)]
    }

    public func frequencies(dim: Int, theta: Double) -> (inverse: [Float], attentionFactor: Float) {
        let factor = Float(self.factor), low = Float(lowFrequencyFactor)
        let context = Float(originalMaxPositions)
        let lowWavelength = Float(Double(originalMaxPositions) / lowFrequencyFactor)
        let highWavelength = Float(Double(originalMaxPositions) / highFrequencyFactor)
        let inv = ropeBaseFrequencies(dim: dim, theta: theta).map { f -> Float in
            let wavelength = Float(2 * Double.pi) / f
            let scaled = wavelength > lowWavelength ? f / factor : f
            guard !(wavelength < highWavelength) && !(wavelength > lowWavelength) else { return scaled }
            let s = (context / wavelength - low) / Float(highFrequencyFactor - lowFrequencyFactor)
            return (1 - s) * scaled / factor + s * scaled
        }
        return (inv, 1)
    }
}
