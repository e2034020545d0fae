import TensorCore

/// Where and how token positions enter the model. A variant implements the hooks it needs:
/// learned absolute positions add to the embeddings, rotary variants rotate queries and keys,
/// ALiBi biases the attention scores, NoPE does nothing. Its decode step (`decodePositions`) does
/// the same for one token in the fast decoder.
public protocol PositionalEncoding: Component {
    /// Token embeddings `[B, T, C]` at positions `offset ..< offset+T`.
    func embed(_ x: Tensor, offset: Int) throws -> Tensor
    /// Queries or keys `[B, T, heads, D]` at positions `offset ..< offset+T`.
    func rotate(_ x: Tensor, offset: Int) throws -> Tensor
    /// Per-head attention biases (ALiBi slopes), or nil.
    func attentionSlopes(heads: Int) -> [Float]?
    /// Positions the encoding supports (nil: any).
    var maxPositions: Int? { get }
    /// True when it changes the embeddings (learned absolute positions): then it belongs to the
    /// model, and no single layer can have its own.
    var addsToEmbeddings: Bool { get }
    /// The single-token hooks for the fast decoder, or `DecodeUnsupported`.
    func decodePositions(_ w: DecodeWeights) throws -> DecodePositions
}

extension PositionalEncoding {
    public func embed(_ x: Tensor, offset: Int) throws -> Tensor { x }
    public func rotate(_ x: Tensor, offset: Int) throws -> Tensor { x }
    public func attentionSlopes(heads: Int) -> [Float]? { nil }
    public var maxPositions: Int? { nil }
    public var addsToEmbeddings: Bool { false }
    public func visit(_ v: inout ModuleVisitor) {}
}

/// No positional information (NoPE). Recipe kind `none`.
public final class NoPositions: PositionalEncoding {
    public init() {}
    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any PositionalEncoding {
        NoPositions()
    }
    public var options: [String: ConfigValue] { ["kind": .string("none")] }
    public var label: String { "none" }
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost { .zero }
    public func decodePositions(_ w: DecodeWeights) throws -> DecodePositions { DecodePositions() }
}
