import Foundation
import TensorCore

/// YaRN exactly as HF `_compute_yarn_parameters` (see SPECS §2.5). Recipe kind `yarn`: `factor`,
/// `original_max_position_embeddings` (the context length), `beta_fast` (32), `beta_slow` (1),
/// `attention_factor`, `mscale`, `mscale_all_dim`, `truncate` (true).
public struct YaRNScaling: RoPEScaling, Equatable {
    public var factor: Double
    public var originalMaxPositions: Int
    public var betaFast = 32.0, betaSlow = 1.0
    public var attentionFactor: Double? = nil, mscale: Double? = nil, mscaleAllDim: Double? = nil
    public var truncate = true

    public init(factor: Double, originalMaxPositions: Int, betaFast: Double = 32, betaSlow: Double = 1,
                attentionFactor: Double? = nil, mscale: Double? = nil, mscaleAllDim: Double? = nil, truncate: Bool = true) {
        self.factor = factor
        self.originalMaxPositions = originalMaxPositions
        self.betaFast = betaFast
        self.betaSlow = betaSlow
        self.attentionFactor = attentionFactor
        self.mscale = mscale
        self.mscaleAllDim = mscaleAllDim
        self.truncate = truncate
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any RoPEScaling {
        let orig = try o.optionalInt("original_max_position_embeddings") ?? c.contextLength
        guard orig >= 1 else { throw o.error("original_max_position_embeddings", "must be positive, got \(orig)") }
        return YaRNScaling(
            factor: try o.ropeFactor(), originalMaxPositions: orig, betaFast: try o.positiveFinite("beta_fast", default: 32),
            betaSlow: try o.positiveFinite("beta_slow", default: 1), attentionFactor: try o.optionalPositiveFinite("attention_factor"),
            mscale: try o.optionalPositiveFinite("mscale"), mscaleAllDim: try o.optionalPositiveFinite("mscale_all_dim"),
            truncate: try o.bool("truncate", default: true))
    }

    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = [
            "kind": .string("yarn"), "factor": .double(factor), "original_max_position_embeddings": .int(originalMaxPositions),
            "beta_fast": .double(betaFast), "beta_slow": .double(betaSlow), "truncate": .bool(truncate),
        ]
        for case (let k, let v?) in [("attention_factor", attentionFactor), ("mscale", mscale), ("mscale_all_dim", mscaleAllDim)] {
            o[k] = .double(v)
        }
        return o
    }

    public func frequencies(dim: Int, theta: Double) -> (inverse: [Float], attentionFactor: Float) {
        let s = factor
        func getMscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
        var attention: Double
        if let attentionFactor {
            attention = attentionFactor
        } else if let mscale, let mscaleAllDim, mscaleAllDim != 0 {
            attention = getMscale(s, mscale) / getMscale(s, mscaleAllDim)
        } else {
            attention = getMscale(s)
        }
        func correctionDim(_ r: Double) -> Double {
            Double(dim) * Foundation.log(Double(originalMaxPositions) / (r * 2 * Double.pi)) / (2 * Foundation.log(theta))
        }
        var low = correctionDim(betaFast), high = correctionDim(betaSlow)
        if truncate { low = low.rounded(.down); high = high.rounded(.up) }
        low = Swift.max(low, 0)
        high = Swift.min(high, Double(dim - 1))
        if low == high { high += 0.001 }
        let extrap = ropeBaseFrequencies(dim: dim, theta: theta)
        let posFreqs = (0..<(dim / 2)).map { i in Float(Foundation.pow(Double(Float(theta)), Double(Float(2 * i) / Float(dim)))) }
        let inv = (0..<(dim / 2)).map { j -> Float in
            let ramp = Swift.min(Swift.max((Float(j) - Float(low)) / (Float(high) - Float(low)), 0), 1)
            let extrapFactor = 1 - ramp
            let interp = 1 / (Float(s) * posFreqs[j])
            return interp * (1 - extrapFactor) + extrap[j] * extrapFactor
        }
        attention = Double(Float(attention))
        return (inv, Float(attention))
    }
}
