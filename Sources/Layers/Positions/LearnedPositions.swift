import TensorCore

/// Learned absolute positions added to the token embeddings (GPT-2 `wpe`, key `weight`).
/// Recipe kind `learned`: `max_positions` (the context length).
public final class LearnedPositions: PositionalEncoding {
    public let weight: Parameter

    public init(weight: Tensor) { self.weight = Parameter(weight) }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any PositionalEncoding {
        let n = try o.int("max_positions", default: c.contextLength)
        try ModelLimits.check(o, "max_positions", n, max: ModelLimits.maxContext)
        guard n >= c.contextLength else {
            throw o.error("max_positions", "\(n) is smaller than the context length \(c.contextLength)")
        }
        return LearnedPositions(weight: c.normal([n, c.hiddenSize]))
    }

    public var maxPositions: Int? { weight.shape[0] }
    public var addsToEmbeddings: Bool { true }

    public var options: [String: ConfigValue] { ["kind": .string("learned"), "max_positions": .int(weight.shape[0])] }
    public var label: String { "learned" }

    /// No FLOPs counted (an addition); the sum is kept for backward.
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        ComponentCost(activationBytes: 4 * shape.tokens * Double(hidden))
    }

    public func decodePositions(_ w: DecodeWeights) throws -> DecodePositions {
        let table = w.pin(weight.value), c = weight.shape[1]
        return DecodePositions(embed: { x, position in
            let row = table + position * c
            for i in 0..<c { x[i] += row[i] }
        })
    }

    public func embed(_ x: Tensor, offset: Int) throws -> Tensor {
        let t = x.shape[x.rank - 2]
        guard offset + t <= weight.shape[0] else {
            throw TensorError.invalidArgument(
                op: "learned positions", message: "position \(offset + t - 1) beyond the table of \(weight.shape[0])")
        }
        let ids = (offset..<(offset + t)).map { Int32($0) }
        return try x + Tensor.embedding(weight.value, ids: ids, shape: [t])
    }

    public func visit(_ v: inout ModuleVisitor) { v.parameter("weight", weight) }
}

/// ALiBi: no parameters, a linear distance penalty per head (slopes per the paper's rule,
/// including non-powers of two). Recipe kind `alibi`.
public final class ALiBiPositions: PositionalEncoding {
    public init() {}
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any PositionalEncoding {
        ALiBiPositions()
    }
    public func attentionSlopes(heads: Int) -> [Float]? { ALiBi.slopes(heads: heads) }
    public var options: [String: ConfigValue] { ["kind": .string("alibi")] }
    public var label: String { "alibi" }
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost { .zero }
    /// The slopes reach the decoder through the attention (`attentionSlopes`).
    public func decodePositions(_ w: DecodeWeights) throws -> DecodePositions { DecodePositions() }
}
