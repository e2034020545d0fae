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
