import TensorCore

/// Pre-norm decoder block: `h = x + attn(norm₁(x)); out = h + mlp(norm₂(h))`.
/// Keys: `input_layernorm`, `self_attn`, `post_attention_layernorm`, `mlp`.
public final class TransformerBlock: Module {
    public let inputNorm: any Normalization
    public let attention: Attention
    public let postAttentionNorm: any Normalization
    public let mlp: any FeedForward

    public init(inputNorm: any Normalization, attention: Attention, postAttentionNorm: any Normalization, mlp: any FeedForward) {
        self.inputNorm = inputNorm
        self.attention = attention
        self.postAttentionNorm = postAttentionNorm
        self.mlp = mlp
    }

    public func callAsFunction(_ x: Tensor, offset: Int = 0, cache: KVCache? = nil, layer: Int = 0) throws -> Tensor {
        let h = try x + attention(inputNorm(x), offset: offset, cache: cache, layer: layer)
        return try h + mlp(postAttentionNorm(h))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("input_layernorm", inputNorm)
        v.child("self_attn", attention)
        v.child("post_attention_layernorm", postAttentionNorm)
        v.child("mlp", mlp)
    }
}

extension TransformerBlock {
    /// The block for one token: `run(x, cache, layer, position, scratch)` updates the residual row
    /// `x` in place; `scratchFloats(context)` is the scratch it needs.
    public func decodeStep(_ w: DecodeWeights) throws -> DecodeBlock {
        let inputNorm = try self.inputNorm.decodeNorm(w), postNorm = try postAttentionNorm.decodeNorm(w)
        let attention = try self.attention.decodeStep(w), mlp = try self.mlp.decodeStep(w)
        let c = self.attention.qProj.inFeatures
        return DecodeBlock(scratchFloats: { context in c + 2 * c + max(attention.scratchFloats(context), mlp.scratchFloats) }) {
            x, cache, layer, position, scratch in
            let xn = scratch, stats = xn + c, rest = stats + 2 * c
            inputNorm.apply(x, xn, c, 1, stats)
            attention.run(xn, x, cache, layer, position, rest)
            postNorm.apply(x, xn, c, 1, stats)
            mlp.run(xn, x, rest)
        }
    }
}

/// A pre-norm block lowered for one token (see `TransformerBlock.decodeStep`).
public struct DecodeBlock {
    public let scratchFloats: (_ context: Int) -> Int
    public let run: (_ x: UnsafeMutablePointer<Float>, _ cache: KVCache, _ layer: Int, _ position: Int,
                     _ scratch: UnsafeMutablePointer<Float>) -> Void
}
