import Foundation
import TensorCore

/// How rotary frequencies are stretched for longer contexts. A scaling turns the base inverse
/// frequencies `θ^(−2i/d)` into the ones the model uses, plus an attention factor that multiplies
/// the cos/sin tables. A new scaling is one file with a `make` factory plus one line in
/// `Components.ropeScalings`; the family files map it to HF `rope_parameters` through `options`.
public protocol RoPEScaling: Sendable {
    /// The recipe block (`kind` and every setting, defaults resolved); also what HF export reads.
    var options: [String: ConfigValue] { get }
    /// Inverse frequencies (`dim/2` of them) and the attention factor, computed in Float32 as HF does.
    func frequencies(dim: Int, theta: Double) -> (inverse: [Float], attentionFactor: Float)
}

extension RoPEScaling {
    /// The recipe kind (`yarn`, `llama3`, …).
    public var kind: String {
        if case .string(let k)? = options["kind"] { return k }
        return "?"
    }
}

/// `θ^(−2i/d)` for i < d/2, in Float32 exactly as HF `_compute_default_rope_parameters`
/// (`1 / base ** (arange(0, dim, 2).float() / dim)`).
public func ropeBaseFrequencies(dim: Int, theta: Double) -> [Float] {
    (0..<(dim / 2)).map { i in
        let e = Float(2 * i) / Float(dim)
        return 1 / Float(Foundation.pow(Double(Float(theta)), Double(e)))
    }
}

/// Position interpolation: every frequency divided by `factor`. Recipe kind `linear`: `factor`.
public struct LinearRoPEScaling: RoPEScaling {
    public let factor: Double
    public init(factor: Double) { self.factor = factor }
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any RoPEScaling {
        LinearRoPEScaling(factor: try o.ropeFactor())
    }
    public var options: [String: ConfigValue] { ["kind": .string("linear"), "factor": .double(factor)] }
    public func frequencies(dim: Int, theta: Double) -> (inverse: [Float], attentionFactor: Float) {
        (ropeBaseFrequencies(dim: dim, theta: theta).map { $0 / Float(factor) }, 1)
    }
}

/// NTK-aware: θ' = θ · factor^(d/(d−2)). Recipe kind `ntk`: `factor`. (No static HF rope_type.)
public struct NTKRoPEScaling: RoPEScaling {
    public let factor: Double
    public init(factor: Double) { self.factor = factor }
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any RoPEScaling {
        NTKRoPEScaling(factor: try o.ropeFactor())
    }
    public var options: [String: ConfigValue] { ["kind": .string("ntk"), "factor": .double(factor)] }
    public func frequencies(dim: Int, theta: Double) -> (inverse: [Float], attentionFactor: Float) {
        (ropeBaseFrequencies(dim: dim, theta: theta * Foundation.pow(factor, Double(dim) / Double(dim - 2))), 1)
    }
}

extension ComponentOptions {
    /// The `factor` every scaling has: at least 1.
    mutating func ropeFactor() throws -> Double {
        let f = try double("factor", default: 1)
        guard f >= 1, f.isFinite else { throw error("factor", "must be at least 1, got \(f)") }
        return f
    }
}
