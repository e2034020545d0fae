import CKernels
import TensorCore

/// Causal self-attention for MHA, GQA and MQA (chosen by `kvHeads`), with optional QK-norm before
/// RoPE (RMSNorm per head over head_dim, as Qwen3, or over the whole q and k projections, as
/// OLMo 2), sliding window, biases and a head_dim independent of the hidden size.
/// Keys: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `q_norm`, `k_norm`.
public final class Attention: Component {
    public let qProj, kProj, vProj, oProj: Linear
    public let qNorm, kNorm: RMSNorm?
    /// QK-norm over each head's head_dim values (`head`) or over the whole projection (`projection`).
    public let qkNormScope: QKNormScope
    /// The score scale when the recipe sets one (Gemma: `query_pre_attn_scalar^-½`); nil: 1/√head_dim.
    public let customScale: Double?
    /// Scores become `softcap · tanh(score / softcap)` (Gemma 2's `attn_logit_softcapping`).
    public let softcap: Double?
    /// Learned per-head logits in every softmax denominator (gpt-oss); key `sinks`, `[heads]`.
    public let sinks: Parameter?
    var scale: Float { customScale.map { Float($0) } ?? 1 / Float(headDim).squareRoot() }
    public let heads, kvHeads, headDim: Int
    public let window: Int?
    public var kernel: AttentionKernel
    /// Shared with the model; not visited here (its parameters belong to `model.embed_positions`).
    public let position: any PositionalEncoding
    let slopes: [Float]?

    public init(hiddenSize: Int, heads: Int, kvHeads: Int, headDim: Int, bias: Bool, qkNorm: Bool, qkNormEps: Double,
                qkNormScope: QKNormScope = .head, qkNormUnitOffset: Bool = false, scale: Double? = nil, softcap: Double? = nil,
                sinks: Bool = false, window: Int?, kernel: AttentionKernel, position: any PositionalEncoding, context: ComponentContext) {
        qProj = Linear(hiddenSize, heads * headDim, bias: bias, context: context)
        kProj = Linear(hiddenSize, kvHeads * headDim, bias: bias, context: context)
        vProj = Linear(hiddenSize, kvHeads * headDim, bias: bias, context: context)
        oProj = Linear(heads * headDim, hiddenSize, bias: bias, context: context, residual: true)
        let whole = qkNormScope == .projection
        qNorm = qkNorm ? RMSNorm(dimension: whole ? heads * headDim : headDim, eps: qkNormEps, unitOffset: qkNormUnitOffset) : nil
        kNorm = qkNorm ? RMSNorm(dimension: whole ? kvHeads * headDim : headDim, eps: qkNormEps, unitOffset: qkNormUnitOffset) : nil
        customScale = scale
        self.softcap = softcap
        self.sinks = sinks ? Parameter(Tensor(zeros: [heads])) : nil
        self.qkNormScope = qkNormScope
        self.heads = heads
        self.kvHeads = kvHeads
        self.headDim = headDim
        self.window = window
        self.kernel = kernel
        self.position = position
        slopes = position.attentionSlopes(heads: heads)
    }

    /// x `[B, T, C]` at positions `offset ..< offset+T` → `[B, T, C]`. With a cache, appends this
    /// call's keys and values at `layer` and attends over everything stored. `dropout` (a training
    /// forward) drops attention weights at its `attention` rate.
    public func callAsFunction(_ x: Tensor, offset: Int = 0, cache: KVCache? = nil, layer: Int = 0,
                               dropout: DropoutPlan? = nil) throws -> Tensor {
        let (b, t) = (x.shape[0], x.shape[1])
        var q = try qProj(x), k = try kProj(x)
        if let qNorm, let kNorm, qkNormScope == .projection {
            q = try qNorm(q)
            k = try kNorm(k)
        }
        q = try q.reshaped([b, t, heads, headDim])
        k = try k.reshaped([b, t, kvHeads, headDim])
        var v = try vProj(x).reshaped([b, t, kvHeads, headDim])
        if let qNorm, let kNorm, qkNormScope == .head {
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
        var options = AttentionOptions(causal: true, window: window, alibiSlopes: slopes, queryOffset: queryOffset,
                                       scale: scale, kernel: kernel, keyLength: keyLength, softcap: softcap.map { Float($0) })
        if let dropout, dropout.rates.attention > 0 {
            options.dropout = Float(dropout.rates.attention)
            options.dropoutSeed = dropout.seed(layer: layer, .attentionWeights)
        }
        let o = try Tensor.attention(q: q, k: k, v: v, sinks: sinks?.value, options: options)
        return try oProj(o.reshaped([b, t, heads * headDim]))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("q_proj", qProj)
        v.child("k_proj", kProj)
        v.child("v_proj", vProj)
        v.child("o_proj", oProj)
        v.child("q_norm", qNorm)
        v.child("k_norm", kNorm)
        v.parameter("sinks", sinks)
    }

    // MARK: - Component

    /// This layer's `attention:` settings (`window` is this layer's, after any per-layer pattern).
    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = [
            "heads": .int(heads), "kv_heads": .int(kvHeads), "head_dim": .int(headDim), "bias": .bool(qProj.bias != nil),
            "qk_norm": .bool(qNorm != nil), "window": window.map { .int($0) } ?? .null,
        ]
        if let qNorm {
            o["qk_norm_eps"] = .double(qNorm.epsilon)
            o["qk_norm_scope"] = .string(qkNormScope.rawValue)
        }
        if let customScale { o["scale"] = .double(customScale) }
        if let softcap { o["softcap"] = .double(softcap) }
        if sinks != nil { o["sinks"] = .bool(true) }
        switch kernel {
        case .naive: o["kernel"] = .string("naive")
        case .tiled(let q, _): o["kernel"] = .string("tiled"); o["tile_size"] = .int(q)
        }
        return o
    }

    public var label: String {
        "attention (\(heads)/\(kvHeads) heads × \(headDim)\(qNorm == nil ? "" : qkNormScope == .head ? ", qk-norm" : ", qk-norm over q, k")\(sinks == nil ? "" : ", sinks")\(softcap.map { ", softcap \($0)" } ?? "")\(window.map { ", window \($0)" } ?? ""))"
    }

    /// Projections plus scores and the weighted sum over the whole context; the tape keeps q, k, v
    /// (and their rotated copies), the output, o_proj's output and one log-sum-exp per row; the
    /// naive kernel also keeps the T×T probabilities.
    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        let (b, t, c) = (Double(shape.batch), Double(shape.context), Double(hidden))
        let (h, kvh, hd) = (Double(heads), Double(kvHeads), Double(headDim))
        let projections = 2 * c * h * hd * 2 + 2 * 2 * c * kvh * hd
        let core = 2 * 2 * h * hd * t
        var act = 4 * shape.tokens * (2 * (h + 2 * kvh) * hd + h * hd + c) + 4 * b * h * t
        if case .naive = kernel { act += 4 * b * h * t * t }
        return ComponentCost(flopsPerToken: projections + core, activationBytes: act)
    }

    public var adaptableLinears: [AdaptableLinear] {
        [AdaptableLinear("q_proj", qProj), AdaptableLinear("k_proj", kProj), AdaptableLinear("v_proj", vProj),
         AdaptableLinear("o_proj", oProj)]
    }

    /// One query over the KV cache: projections, QK-norm, rotation, the cache write, attention
    /// and o_proj, adding the result to the residual row.
    public func decodeStep(_ w: DecodeWeights) throws -> DecodeAttention {
        let q = try w.matrix(qProj), k = try w.matrix(kProj), v = try w.matrix(vProj), o = try w.matrix(oProj)
        let qn = try qNorm?.decodeNorm(w), kn = try kNorm?.decodeNorm(w)
        let rotate = try position.decodePositions(w).rotate
        let slopes = self.slopes.map { w.copy($0) }
        let sinks = self.sinks.map { w.pin($0.value) }, softcap = Float(self.softcap ?? 0)
        let (h, kvh, hd, window) = (heads, kvHeads, headDim, Int32(clamping: self.window ?? 0))
        let whole = qkNormScope == .projection
        let row = kvh * hd, scale = self.scale
        return DecodeAttention(scratchFloats: { context, rows in rows * (2 * h * hd + 2 * row) + h * context + 2 * max(h, kvh) }) {
            x, out, seqs, layer, scratch in
            let n = seqs.count
            let qs = scratch, ks = qs + n * h * hd, vs = ks + n * row, attn = vs + n * row, stats = attn + n * h * hd
            let scores = stats + 2 * max(h, kvh)
            DecodeKernels.gemv(q, qs, k, ks, v, vs, x: x, vectors: n, accumulate: false)
            for r in 0..<n {
                let qr = qs + r * h * hd, kr = ks + r * row, vr = vs + r * row, position = seqs.positions[r]
                if let qn, let kn {
                    if whole {
                        qn.apply(qr, qr, h * hd, 1, stats)  // the whole projection, in place
                        kn.apply(kr, kr, row, 1, stats)
                    } else {
                        qn.apply(qr, qr, hd, h, stats)  // per head, in place
                        kn.apply(kr, kr, hd, kvh, stats)
                    }
                }
                if let rotate {
                    rotate(qr, h, hd, position)
                    rotate(kr, kvh, hd, position)
                }
                let (kc, vc) = seqs.caches[r].storage(layer: layer)
                (kc + position * row).update(from: kr, count: row)
                (vc + position * row).update(from: vr, count: row)
                var problem = tk_decode_attention(
                    H: Int32(h), KVH: Int32(kvh), D: Int32(hd), position: Int32(position), window: window, alibi: slopes, scale: scale,
                    softcap: softcap, sinks: sinks)
                tk_decode_attention_run(&problem, qr, kc, vc, attn + r * h * hd, scores)
            }
            DecodeKernels.gemv(o, out, x: attn, vectors: n, accumulate: true)
        }
    }
}

/// What QK-norm normalises: each head's head_dim values (Qwen3, Gemma 3) or the whole q and k
/// projections (OLMo 2), with one weight per element either way.
public enum QKNormScope: String, Sendable, CaseIterable {
    case head, projection
}

/// Attention lowered for one token per sequence: `run(x, out, rows, layer, scratch)` reads the
/// normalised rows `x` (`[rows.count, hidden]`), writes each row's keys and values into its own
/// cache at `layer` and position, and adds the attention outputs to `out`. The projections of all
/// rows share one pass over the weights. `scratchFloats(context, rows)` is the scratch it needs.
public struct DecodeAttention {
    public let scratchFloats: (_ context: Int, _ rows: Int) -> Int
    public let run: (_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ rows: DecodeRows, _ layer: Int,
                     _ scratch: UnsafeMutablePointer<Float>) -> Void
}
