import TensorCore

/// Where a block normalises (recipe `model.norm_placement`).
/// - `pre` (GPT-2, Llama, Qwen3): `h = x + attn(n₁(x)); out = h + mlp(n₂(h))`;
/// - `post` (OLMo 2): the branch outputs, inside the residual: `h = x + n₁(attn(x)); out = h + n₂(mlp(h))`;
/// - `sandwich` (Gemma 2/3): both, `h = x + n₂(attn(n₁(x))); out = h + n₄(mlp(n₃(h)))`.
public enum NormPlacement: String, CaseIterable, Sendable {
    case pre, post, sandwich

    var normsInputs: Bool { self != .post }
    var normsOutputs: Bool { self != .pre }
}

/// A decoder block: attention and a feed-forward network, each on a residual branch, with norms
/// where `placement` puts them. Keys are HF's for each placement: `input_layernorm` (before
/// attention), `self_attn`, `mlp`, and
/// - pre: `post_attention_layernorm` before the MLP (Llama's name);
/// - post and sandwich: `post_attention_layernorm` on the attention output, `pre_feedforward_layernorm`
///   before the MLP (sandwich), `post_feedforward_layernorm` on the MLP output (OLMo 2's and Gemma's names).
public final class TransformerBlock: Module {
    public let placement: NormPlacement
    /// Before attention (pre, sandwich).
    public let inputNorm: (any Normalization)?
    public let attention: Attention
    /// On the attention output (post, sandwich).
    public let attentionOutputNorm: (any Normalization)?
    /// Before the MLP (pre, sandwich).
    public let mlpNorm: (any Normalization)?
    /// On the MLP output (post, sandwich).
    public let mlpOutputNorm: (any Normalization)?
    public let mlp: any FeedForward

    /// A block with the norms `placement` needs, each from `makeNorm`.
    public init(placement: NormPlacement, makeNorm: () throws -> any Normalization, attention: Attention, mlp: any FeedForward) rethrows {
        self.placement = placement
        inputNorm = placement.normsInputs ? try makeNorm() : nil
        attentionOutputNorm = placement.normsOutputs ? try makeNorm() : nil
        mlpNorm = placement.normsInputs ? try makeNorm() : nil
        mlpOutputNorm = placement.normsOutputs ? try makeNorm() : nil
        self.attention = attention
        self.mlp = mlp
    }

    /// A pre-norm block.
    public convenience init(inputNorm: any Normalization, attention: Attention, postAttentionNorm: any Normalization, mlp: any FeedForward) {
        var norms = [inputNorm, postAttentionNorm].makeIterator()
        self.init(placement: .pre, makeNorm: { norms.next()! }, attention: attention, mlp: mlp)
    }

    /// Every norm of the block, in the order they apply.
    public var norms: [any Normalization] { [inputNorm, attentionOutputNorm, mlpNorm, mlpOutputNorm].compactMap { $0 } }

    /// `dropout` (a training forward): attention weights, and each branch's output before it joins
    /// the residual stream.
    public func callAsFunction(_ x: Tensor, offset: Int = 0, cache: KVCache? = nil, layer: Int = 0,
                               dropout: DropoutPlan? = nil) throws -> Tensor {
        var a = try attention(inputNorm.map { try $0(x) } ?? x, offset: offset, cache: cache, layer: layer, dropout: dropout)
        if let attentionOutputNorm { a = try attentionOutputNorm(a) }
        if let dropout { a = try dropout.residual(a, layer: layer, .attentionOutput) }
        let h = try x + a
        var m = try mlp(mlpNorm.map { try $0(h) } ?? h)
        if let mlpOutputNorm { m = try mlpOutputNorm(m) }
        if let dropout { m = try dropout.residual(m, layer: layer, .mlpOutput) }
        return try h + m
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("input_layernorm", inputNorm)
        v.child("self_attn", attention)
        switch placement {
        case .pre:
            v.child("post_attention_layernorm", mlpNorm)
        case .post, .sandwich:
            v.child("post_attention_layernorm", attentionOutputNorm)
            v.child("pre_feedforward_layernorm", mlpNorm)
            v.child("post_feedforward_layernorm", mlpOutputNorm)
        }
        v.child("mlp", mlp)
    }
}

extension TransformerBlock {
    /// The block for one token per sequence: `run(x, rows, layer, scratch)` updates the residual
    /// rows `x` (`[rows.count, hidden]`) in place; `scratchFloats(context, rows)` is the scratch it
    /// needs. A branch whose output is normalised writes into zeroed rows first, which are
    /// normalised in place and then added.
    public func decodeStep(_ w: DecodeWeights) throws -> DecodeBlock {
        let inputNorm = try self.inputNorm?.decodeNorm(w), mlpNorm = try self.mlpNorm?.decodeNorm(w)
        let attentionOut = try attentionOutputNorm?.decodeNorm(w), mlpOut = try mlpOutputNorm?.decodeNorm(w)
        let attention = try self.attention.decodeStep(w), mlp = try self.mlp.decodeStep(w)
        let c = self.attention.qProj.inFeatures
        return DecodeBlock(scratchFloats: { context, rows in
            rows * 4 * c + max(attention.scratchFloats(context, rows), rows * mlp.scratchFloats)
        }) { x, seqs, layer, scratch in
            let n = seqs.count, width = n * c
            let xn = scratch, branch = xn + width, stats = branch + width, rest = stats + 2 * width
            // Attention: on the normalised rows (or x itself), into x (or rows normalised before adding).
            var input = UnsafePointer(x)
            if let inputNorm { inputNorm.apply(x, xn, c, n, stats); input = UnsafePointer(xn) }
            if let attentionOut {
                branch.update(repeating: 0, count: width)
                attention.run(input, branch, seqs, layer, rest)
                attentionOut.apply(branch, branch, c, n, stats)
                for i in 0..<width { x[i] += branch[i] }
            } else {
                attention.run(input, x, seqs, layer, rest)
            }
            input = UnsafePointer(x)
            if let mlpNorm { mlpNorm.apply(x, xn, c, n, stats); input = UnsafePointer(xn) }
            if let mlpOut {
                branch.update(repeating: 0, count: width)
                mlp.run(input, branch, n, rest)
                mlpOut.apply(branch, branch, c, n, stats)
                for i in 0..<width { x[i] += branch[i] }
            } else {
                mlp.run(input, x, n, rest)
            }
        }
    }
}

/// A block lowered for one token per sequence (see `TransformerBlock.decodeStep`).
public struct DecodeBlock {
    public let scratchFloats: (_ context: Int, _ rows: Int) -> Int
    public let run: (_ x: UnsafeMutablePointer<Float>, _ rows: DecodeRows, _ layer: Int, _ scratch: UnsafeMutablePointer<Float>) -> Void
}
