import TensorCore
import ToolkitSupport

/// Dropout probabilities of a model (recipe `model.dropout`; HF GPT-2's `embd_pdrop`, `attn_pdrop`,
/// `resid_pdrop`, and `attention_dropout` of the Llama layout):
/// - `embedding`: on the input of the first block (token embeddings plus learned positions);
/// - `attention`: on the attention weights after the softmax;
/// - `residual`: on each branch's output (attention after `o_proj`, the MLP after its output
///   projection, after any output norm), before it is added to the residual stream.
///
/// Applied only in training forwards that carry a `DropoutPlan`; evaluation, generation,
/// validation and serving never drop.
public struct DropoutRates: Codable, Equatable, Sendable, CustomStringConvertible {
    public var embedding: Double
    public var attention: Double
    public var residual: Double

    public init(embedding: Double = 0, attention: Double = 0, residual: Double = 0) {
        self.embedding = embedding
        self.attention = attention
        self.residual = residual
    }

    public static let none = DropoutRates()

    /// One probability for all three sites (a command-line flag; `flag` names it in the error).
    public static func all(_ p: Double, flag: String) throws -> DropoutRates {
        DropoutRates(all: try checked(p) { ToolkitError("\(flag): \($0)") })
    }

    /// `p` when it is a probability in [0, 1); otherwise the error `fail` makes of the reason.
    static func checked(_ p: Double, _ fail: (String) -> ToolkitError) throws -> Double {
        guard p >= 0, p < 1 else { throw fail("must be a probability in [0, 1), got \(p)") }
        return p
    }

    public var isActive: Bool { embedding > 0 || attention > 0 || residual > 0 }

    public var description: String { "embedding \(embedding), attention \(attention), residual \(residual)" }

    /// `dropout: 0.1` (all three) or `dropout: {embedding, attention, residual}` (each 0 when absent);
    /// `o` is the `model:` block, for error messages.
    public init(_ value: ConfigValue?, in o: ComponentOptions) throws {
        switch value {
        case nil:
            self.init()
        case .map(let m)?:
            var block = ComponentOptions(path: "\(o.path).dropout", values: m)
            func rate(_ key: String) throws -> Double { try Self.checked(block.optionalDouble(key) ?? 0) { block.error(key, $0) } }
            self.init(embedding: try rate("embedding"), attention: try rate("attention"), residual: try rate("residual"))
            try block.finish()
        case .int(let i)?:
            self.init(all: try Self.checked(Double(i)) { o.error("dropout", $0) })
        case .double(let d)?:
            self.init(all: try Self.checked(d) { o.error("dropout", $0) })
        case let v?:
            throw o.error("dropout", "expected a probability or a block {embedding, attention, residual}, got \(v)")
        }
    }

    init(all p: Double) { self.init(embedding: p, attention: p, residual: p) }

    /// The recipe form (nil when no dropout).
    public var recipeValue: ConfigValue? {
        guard isActive else { return nil }
        if embedding == attention, attention == residual { return .double(embedding) }
        return .map(["embedding": .double(embedding), "attention": .double(attention), "residual": .double(residual)])
    }
}

/// The dropout of one training forward: the rates and the forward's seed (a step and micro-batch
/// of a run). Every site draws its own mask from `seed(layer:site:)`, a function of where it is,
/// not of the order of calls, so a recomputed block (activation checkpointing) drops exactly what
/// its first forward dropped.
public struct DropoutPlan: Sendable {
    public var rates: DropoutRates
    public var seed: UInt64

    public init(rates: DropoutRates, seed: UInt64) {
        self.rates = rates
        self.seed = seed
    }

    public enum Site: UInt64, Sendable { case embedding = 0, attentionWeights, attentionOutput, mlpOutput }

    /// The mask seed of `site` in block `layer` (the embedding site: layer 0).
    public func seed(layer: Int, _ site: Site) -> UInt64 { Dropout.seed(seed, UInt64(layer) &* 4 &+ site.rawValue) }

    /// `x` after residual dropout at `site` of `layer` (x itself when the rate is 0).
    public func residual(_ x: Tensor, layer: Int, _ site: Site) throws -> Tensor {
        try x.dropout(Float(rates.residual), seed: seed(layer: layer, site))
    }
}
