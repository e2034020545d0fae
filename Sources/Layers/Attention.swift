import TensorCore

/// Causal self-attention for MHA, GQA and MQA (chosen by `kvHeads`), with optional QK-norm
/// (per-head RMSNorm over head_dim before RoPE, as Qwen3), sliding window, biases and a head_dim
/// independent of the hidden size. Keys: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `q_norm`, `k_norm`.
public final class Attention: Module {
    public let qProj, kProj, vProj, oProj: Linear
    public let qNorm, kNorm: RMSNorm?
    public let heads, kvHeads, headDim: Int
    public let window: Int?
    public var kernel: AttentionKernel
    /// Shared with the model; not visited here (its parameters belong to `model.embed_positions`).
    public let position: any PositionalEncoding
    let slopes: [Float]?

    public init(hiddenSize: Int, heads: Int, kvHeads: Int, headDim: Int, bias: Bool, qkNorm: Bool, qkNormEps: Float,
                window: Int?, kernel: AttentionKernel, position: any PositionalEncoding, context: ComponentContext) {
        qProj = Linear(hiddenSize, heads * headDim, bias: bias, context: context)
        kProj = Linear(hiddenSize, kvHeads * headDim, bias: bias, context: context)
        vProj = Linear(hiddenSize, kvHeads * headDim, bias: bias, context: context)
        oProj = Linear(heads * headDim, hiddenSize, bias: bias, context: context, residual: true)
        qNorm = qkNorm ? RMSNorm(dimension: headDim, eps: qkNormEps) : nil
        kNorm = qkNorm ? RMSNorm(dimension: headDim, eps: qkNormEps) : nil
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.window = window
        self.kernel = kernel
        self.position = position
        slopes = position.attentionSlopes(heads: heads)
    }

    /// x `[B, T, C]` at positions `offset ..< offset+T` → `[B, T, C]`. With a cache, appends this
    /// call's keys and values at `layer` and attends over everything stored.
    public func callAsFunction(_ x: Tensor, offset: Int = 0, cache: KVCache? = nil, layer: Int = 0) throws -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        var q = try qProj(x).reshaped([b, t, heads, headDim])
        var k = try kProj(x).reshaped([b, t, kvHeads, headDim])
        var v = try vProj(x).reshaped([b, t, kvHeads, headDim])
        if let qNorm, let kNorm {
            q = try qNorm(q)
            k = try kNorm(k)
        }
        q = try position.rotate(q, offset: offset)
        k = try position.rotate(k, offset: offset)
        // Without a cache, keys sit at the same positions as the queries: the mask is relative.
        var keyLength: Int? = nil, queryOffset = 0
        if let cache {
            queryOffset = offset
            (k, v) = try cache.append(layer: layer, k: k, v: v)
            keyLength = offset + t
        }
        let options = AttentionOptions(causal: true, window: window, alibiSlopes: slopes, queryOffset: queryOffset,
                                       scale: 1 / Float(headDim).squareRoot(), kernel: kernel, keyLength: keyLength)
        let o = try Tensor.attention(q: q, k: k, v: v, options: options)
        return try oProj(o.reshaped([b, t, heads * headDim]))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("q_proj", qProj)
        v.child("k_proj", kProj)
        v.child("v_proj", vProj)
        v.child("o_proj", oProj)
        v.child("q_norm", qNorm)
        v.child("k_norm", kNorm)
    }
}
