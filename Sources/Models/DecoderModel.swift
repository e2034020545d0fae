import Layers
import TensorCore

/// Resolved dimensions of a decoder-only model.
public struct ModelDimensions: Sendable, Equatable, Codable {
    public var vocabSize: Int
    public var hiddenSize: Int
    public var layers: Int
    public var heads: Int
    public var kvHeads: Int
    public var headDim: Int
    public var contextLength: Int
    public var tieWordEmbeddings: Bool
}

/// A decoder-only transformer composed from components: token embeddings, a positional encoding,
/// pre-norm blocks, a final norm and an LM head (tied to the embeddings or not).
///
/// Parameter names follow HF Llama/Qwen: `model.embed_tokens.weight`, `model.embed_positions.weight`,
/// `model.layers.{L}.…`, `model.norm.…`, `lm_head.weight`.
public final class DecoderModel: Module {
    public let dims: ModelDimensions
    public let embedTokens: Embedding
    public let position: any PositionalEncoding
    public let layers: [TransformerBlock]
    public let norm: any Normalization
    public let lmHead: Linear?
    /// The recipe this model was built from.
    public let recipe: Recipe
    /// Token embeddings are multiplied by this (`embedding_scale`; Gemma: √hidden).
    public let embeddingScale: Float
    /// Logits become `cap · tanh(logits / cap)` (`final_logit_softcap`; Gemma 2, optional in Gemma 3).
    public let finalLogitSoftcap: Float?
    /// Dropout rates (recipe `model.dropout`), applied only by forwards given a seed (training).
    public var dropout: DropoutRates
    /// Training forwards keep only each block's input and recompute the block in the backward
    /// (`Tensor.checkpointed`): activation memory of one block instead of all of them, for one
    /// more forward pass. Off in evaluation and generation (nothing is recorded there).
    public var activationCheckpointing = false

    init(dims: ModelDimensions, embedTokens: Embedding, position: any PositionalEncoding, layers: [TransformerBlock],
         norm: any Normalization, lmHead: Linear?, recipe: Recipe, embeddingScale: Float = 1, finalLogitSoftcap: Float? = nil,
         dropout: DropoutRates = .none) {
        self.dropout = dropout
        self.embeddingScale = embeddingScale
        self.finalLogitSoftcap = finalLogitSoftcap
        self.dims = dims
        self.embedTokens = embedTokens
        self.position = position
        self.layers = layers
        self.norm = norm
        self.lmHead = lmHead
        self.recipe = recipe
    }

    /// The body (`model.*` keys).
    final class Body: Module {
        unowned let owner: DecoderModel
        init(_ owner: DecoderModel) { self.owner = owner }
        func visit(_ v: inout ModuleVisitor) {
            v.child("embed_tokens", owner.embedTokens)
            v.child("embed_positions", owner.position)
            v.children("layers", owner.layers)
            v.child("norm", owner.norm)
        }
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("model", Body(self))
        v.child("lm_head", lmHead)
    }

    /// The output projection `[V, C]` (the embedding matrix when tied).
    public var outputWeight: Parameter { lmHead?.weight ?? embedTokens.weight }

    /// What each routed (MoE) layer's router did in the last forward pass, in layer order.
    public var routingRecords: [RoutingRecord] { layers.compactMap(\.mlp.lastRouting) }

    /// Final hidden states `[B, T, C]` for token ids `[B, T]` at positions `offset ..< offset+T`.
    /// `observe`, when given, receives the embedding output, every block's output and the final
    /// norm's output, in order. `dropoutSeed` makes this a training forward with dropout (each
    /// step and micro-batch has its own); without it nothing is dropped.
    public func hiddenStates(_ ids: [Int32], batch: Int, offset: Int = 0, cache: KVCache? = nil, dropoutSeed: UInt64? = nil,
                             observe: ((Tensor) -> Void)? = nil) throws -> Tensor {
        guard batch > 0, ids.count % batch == 0 else {
            throw TensorError.invalidArgument(op: "model", message: "\(ids.count) ids do not split into \(batch) rows")
        }
        let t = ids.count / batch
        guard offset + t <= dims.contextLength else {
            throw TensorError.invalidArgument(
                op: "model", message: "sequence of \(offset + t) tokens exceeds the context length \(dims.contextLength)")
        }
        var e = try embedTokens(ids, shape: [batch, t])
        if embeddingScale != 1 { e = e * embeddingScale }
        var h = try position.embed(e, offset: offset)
        let plan = cache == nil && dropout.isActive ? dropoutSeed.map { DropoutPlan(rates: dropout, seed: $0) } : nil
        if let plan { h = try h.dropout(Float(plan.rates.embedding), seed: plan.seed(layer: 0, .embedding)) }
        observe?(h)
        for (i, block) in layers.enumerated() {
            if activationCheckpointing, cache == nil, GradMode.isEnabled {
                h = try Tensor.checkpointed(h, parameters: block.namedParameters().map(\.parameter.value)) {
                    try block($0, offset: offset, cache: nil, layer: i, dropout: plan)
                }
            } else {
                h = try block(h, offset: offset, cache: cache, layer: i, dropout: plan)
            }
            observe?(h)
        }
        let out = try norm(h)
        observe?(out)
        return out
    }

    /// Mean next-token cross-entropy of `ids` against aligned `targets` (−100 = ignored): the LM
    /// loss of training, validation and evaluation. The positions go through the head and the
    /// loss `chunk` rows at a time when not recording (validation, eval: each chunk's logits are
    /// freed before the next), and with `activationCheckpointing` while recording, each chunk's
    /// `[chunk, V]` logits then recomputed in the backward instead of all `[B·T, V]` being kept
    /// (at GPT-2's 50,257 tokens, B4×T1024 logits alone take 823 MB, and their gradient as much
    /// again). Each chunk's mean is weighted by its share of the scored positions, so with more
    /// than one chunk the result equals the one-piece loss up to float rounding.
    public func crossEntropy(_ ids: [Int32], targets: [Int32], batch: Int, chunk: Int = 1024, dropoutSeed: UInt64? = nil) throws -> Tensor {
        let h = try hiddenStates(ids, batch: batch, dropoutSeed: dropoutSeed).reshaped([-1, dims.hiddenSize])
        let n = h.shape[0], scored = targets.filter { $0 != -100 }.count
        // Without recording (validation, eval) chunks cost nothing extra, so they are always used.
        guard activationCheckpointing || !GradMode.isEnabled, targets.count == n, scored > 0 else {
            return try Tensor.crossEntropy(logits: logits(h), targets: targets)
        }
        var total: Tensor?
        for start in stride(from: 0, to: n, by: chunk) {
            let end = min(start + chunk, n), part = Array(targets[start..<end])
            let count = part.filter { $0 != -100 }.count
            guard count > 0 else { continue }
            let weight = Float(count) / Float(scored)
            let rows = n <= chunk ? h : try h.slice(axis: 0, start..<end)
            let loss = try Tensor.checkpointed(rows, parameters: [outputWeight.value]) { x in
                let ce = try Tensor.crossEntropy(logits: self.logits(x), targets: part)
                return weight == 1 ? ce : ce * weight
            }
            total = try total.map { try $0 + loss } ?? loss
        }
        return total!
    }

    /// Runs `ids` (`[batch, T]`) at positions `cache.length ..< cache.length+T` without recording,
    /// stores their keys and values in `cache`, advances it, and returns the last position's logits
    /// `[batch, V]`: a prompt's prefill, or one decoding step on the tensor path.
    public func nextTokenLogits(_ ids: [Int32], batch: Int, cache: KVCache) throws -> [Float] {
        try GradMode.withoutGrad {
            let t = ids.count / max(batch, 1)
            let h = try hiddenStates(ids, batch: batch, offset: cache.length, cache: cache)
            cache.advance(by: t)
            return try logits(h.slice(axis: 1, (t - 1)..<t)).scalars
        }
    }

    /// Logits `[B, T, V]`.
    public func callAsFunction(_ ids: [Int32], batch: Int, offset: Int = 0, cache: KVCache? = nil) throws -> Tensor {
        try logits(hiddenStates(ids, batch: batch, offset: offset, cache: cache))
    }

    /// LM-head projection of hidden states `[..., C]` → `[..., V]`.
    public func logits(_ h: Tensor) throws -> Tensor {
        let logits = try Tensor.linear(h, weight: outputWeight.value)
        guard let cap = finalLogitSoftcap else { return logits }
        return (logits / cap).tanh() * cap
    }

    /// Mean next-token cross-entropy for already-aligned targets (−100 = ignored), plus the MoE
    /// auxiliary losses of the same forward (HF: CE + coef·aux): the training objective.
    public func loss(ids: [Int32], targets: [Int32], batch: Int, dropoutSeed: UInt64? = nil) throws
        -> (total: Tensor, crossEntropy: Tensor, auxiliary: Tensor?)
    {
        let ce = try crossEntropy(ids, targets: targets, batch: batch, dropoutSeed: dropoutSeed)
        guard let aux = try auxiliaryLoss() else { return (ce, ce, nil) }
        return (try ce + aux, ce, aux)
    }

    /// `router_aux_loss_coef · L_aux` (over all MoE layers, as HF concatenates them) plus any
    /// router z-losses, from the last forward pass; nil for dense models.
    public func auxiliaryLoss() throws -> Tensor? {
        let records = routingRecords
        guard let first = records.first else { return nil }
        var total: Tensor? = nil
        if first.auxLossCoefficient != 0, let aux = try loadBalancingLoss(records, experts: first.experts, topK: first.k) {
            total = aux * first.auxLossCoefficient
        }
        for r in records where r.zLossCoefficient != 0 {
            let z = try r.zLoss() * r.zLossCoefficient
            total = try total.map { try $0 + z } ?? z
        }
        return total
    }

    /// A KV cache for this model.
    public func makeCache(batch: Int, capacity: Int) -> KVCache {
        KVCache(layers: layers.count, batch: batch, capacity: capacity, kvHeads: dims.kvHeads, headDim: dims.headDim)
    }

    /// Selects the attention kernel for every layer.
    public func setAttentionKernel(_ kernel: AttentionKernel) { for b in layers { b.attention.kernel = kernel } }
}
