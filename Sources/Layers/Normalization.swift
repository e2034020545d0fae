import TensorCore

/// A normalisation over the last axis (LayerNorm, RMSNorm, ...).
public protocol Normalization: Module {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// LayerNorm with eps and an optional bias (keys `weight`, `bias`).
public final class LayerNorm: Normalization {
    public let weight: Parameter
    public let bias: Parameter?
    public let eps: Float

    public init(dimension: Int, eps: Float, bias: Bool) {
        weight = Parameter(Tensor.ones([dimension]))
        self.bias = bias ? Parameter(Tensor(zeros: [dimension])) : nil
        self.eps = eps
    }

    /// Recipe kind `layernorm`: `eps` (1e-5), `bias` (true).
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any Normalization {
        LayerNorm(dimension: c.hiddenSize, eps: Float(try o.double("eps", default: 1e-5)),
                  bias: try o.bool("bias", default: true))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.layerNorm(x, weight: weight.value, bias: bias?.value, eps: eps)
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

    public init(dimension: Int, eps: Float) {
        weight = Parameter(Tensor.ones([dimension]))
        self.eps = eps
    }

    /// Recipe kind `rmsnorm`: `eps` (1e-6).
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any Normalization {
        RMSNorm(dimension: c.hiddenSize, eps: Float(try o.double("eps", default: 1e-6)))
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try Tensor.rmsNorm(x, weight: weight.value, eps: eps)
    }

    public func visit(_ v: inout ModuleVisitor) { v.parameter("weight", weight) }
}
