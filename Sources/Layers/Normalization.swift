import CKernels
import TensorCore

/// A normalisation over the last axis (LayerNorm, RMSNorm, ...).
public protocol Normalization: Component {
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// The same normalisation over rows of Float32 for the fast decoder, or `DecodeUnsupported`.
    func decodeNorm(_ w: DecodeWeights) throws -> DecodeNorm
}

extension Normalization {
    /// Norm FLOPs are not counted; the normalised input is kept for backward.
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        ComponentCost(activationBytes: 4 * shape.tokens * Double(hidden))
    }
}

/// LayerNorm with eps and an optional bias (keys `weight`, `bias`).
public final class LayerNorm: Normalization {
    public let weight: Parameter
    public let bias: Parameter?
    public let eps: Float
    /// `eps` as the recipe gave it (for `options` and HF export).
    public let epsilon: Double

    public init(dimension: Int, eps: Double, bias: Bool) {
        weight = Parameter(Tensor.ones([dimension]))
        self.bias = bias ? Parameter(Tensor(zeros: [dimension])) : nil
        self.eps = Float(eps)
        epsilon = eps
    }

    /// Recipe kind `layernorm`: `eps` (1e-5), `bias` (true).
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any Normalization {
        LayerNorm(dimension: c.hiddenSize, eps: try o.positiveFinite("eps", default: 1e-5),
                  bias: try o.bool("bias", default: true))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.layerNorm(x, weight: weight.value, bias: bias?.value, eps: eps)
    }

    public var options: [String: ConfigValue] { ["kind": .string("layernorm"), "eps": .double(epsilon), "bias": .bool(bias != nil)] }
    public var label: String { "layernorm" }

    public func decodeNorm(_ w: DecodeWeights) throws -> DecodeNorm {
        let weight = w.pin(self.weight.value), bias = self.bias.map { w.pin($0.value) }, eps = eps
        return DecodeNorm { x, y, width, rows, stats in
            tk_layernorm_forward(x, weight, bias, eps, Int32(width), y, stats, 0, Int32(rows))
        }
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.parameter("weight", weight)
        v.parameter("bias", bias)
    }
}

/// RMSNorm with HF semantics: normalise in Float32, then multiply by the weight (key `weight`).
public final class RMSNorm: Normalization {
    public let weight: Parameter
    public let eps: Float
    /// `eps` as the recipe gave it (for `options` and HF export).
    public let epsilon: Double
    /// Gemma's form: the gain is `1 + weight` (computed in fp32), with `weight` starting at zero.
    public let unitOffset: Bool

    public init(dimension: Int, eps: Double, unitOffset: Bool = false) {
        weight = Parameter(unitOffset ? Tensor(zeros: [dimension]) : Tensor.ones([dimension]))
        self.eps = Float(eps)
        epsilon = eps
        self.unitOffset = unitOffset
    }

    /// Recipe kind `rmsnorm`: `eps` (1e-6), `unit_offset` (false; true: Gemma's `x̂ · (1 + w)`).
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any Normalization {
        RMSNorm(dimension: c.hiddenSize, eps: try o.positiveFinite("eps", default: 1e-6), unitOffset: try o.bool("unit_offset", default: false))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.rmsNorm(x, weight: unitOffset ? weight.value + 1 : weight.value, eps: eps)
    }

    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = ["kind": .string("rmsnorm"), "eps": .double(epsilon)]
        if unitOffset { o["unit_offset"] = .bool(true) }
        return o
    }
    public var label: String { unitOffset ? "rmsnorm (1 + w)" : "rmsnorm" }

    public func decodeNorm(_ w: DecodeWeights) throws -> DecodeNorm {
        let weight = unitOffset ? w.copy(self.weight.value.scalars.map { 1 + $0 }) : w.pin(self.weight.value), eps = eps
        return DecodeNorm { x, y, width, rows, stats in
            tk_rmsnorm_forward(x, weight, eps, Int32(width), y, stats, 0, Int32(rows))
        }
    }

    public func visit(_ v: inout ModuleVisitor) { v.parameter("weight", weight) }
}
