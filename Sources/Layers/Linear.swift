import TensorCore

/// `y = x·Wᵀ + b` with W `[out, in]` (HF `nn.Linear` layout; keys `weight`, `bias`).
public final class Linear: Module {
    public let weight: Parameter
    public let bias: Parameter?
    /// An additive correction to the output (e.g. a LoRA adapter): `y = x·Wᵀ + b + adapter(x)`.
    /// Not visited: its parameters are owned and saved by whoever attached it.
    public var adapter: (any LinearAdapter)?

    public init(weight: Tensor, bias: Tensor? = nil) {
        self.weight = Parameter(weight)
        self.bias = bias.map { Parameter($0) }
    }

    /// N(0, std²) weights (GPT-2 init; `residual` scales by 1/√(2L)), zero bias.
    public convenience init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool, context: ComponentContext, residual: Bool = false) {
        self.init(weight: context.normal([outFeatures, inFeatures], residual: residual),
                  bias: bias ? Tensor(zeros: [outFeatures]) : nil)
    }

    public var inFeatures: Int { weight.shape[1] }
    public var outFeatures: Int { weight.shape[0] }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        let y = try Tensor.linear(x, weight: weight.value, bias: bias?.value)
        guard let adapter else { return y }
        return try y + adapter(x)
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.parameter("weight", weight)
        v.parameter("bias", bias)
    }
}

/// A module added to a `Linear`'s output: x `[..., in]` → `[..., out]`.
public protocol LinearAdapter: AnyObject {
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// Token embedding table `[V, C]` (key `weight`).
public final class Embedding: Module {
    public let weight: Parameter

    public init(weight: Tensor) { self.weight = Parameter(weight) }

    public convenience init(vocabulary: Int, dimension: Int, context: ComponentContext) {
        self.init(weight: context.normal([vocabulary, dimension]))
    }

    public var vocabularySize: Int { weight.shape[0] }

    /// Rows for `ids` `[B, T]` → `[B, T, C]`.
    public func callAsFunction(_ ids: [Int32], shape: [Int]) throws -> Tensor {
        try Tensor.embedding(weight.value, ids: ids, shape: shape)
    }

    public func visit(_ v: inout ModuleVisitor) { v.parameter("weight", weight) }
}
