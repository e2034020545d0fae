@preconcurrency import CKernels
import Foundation

/// Which attention kernel runs. Both give the same results (to float32 rounding).
public enum AttentionKernel: Sendable, Equatable, Codable {
    /// Builds the full `[B, H, Tq, Tk]` probability matrix (O(T²) memory), matmuls through BLAS.
    case naive
    /// FlashAttention-2 style: query tiles against key tiles with an online softmax; keeps only
    /// the output and the per-row log-sum-exp; backward recomputes score tiles. O(T) memory.
    case tiled(queryTile: Int, keyTile: Int)

    public static let defaultTiled = AttentionKernel.tiled(queryTile: 64, keyTile: 64)
}

/// Masking and biasing of an attention call.
public struct AttentionOptions: Sendable, Equatable {
    /// Key j is visible to query i only when j ≤ position(i).
    public var causal: Bool
    /// Key j is visible only when |position(i) − j| < window (HF sliding-window convention).
    public var window: Int?
    /// ALiBi slopes, one per query head: adds −slope·|position(i) − j| to the scaled score.
    public var alibiSlopes: [Float]?
    /// Absolute position of query row 0 (the KV-cache length during generation).
    public var queryOffset: Int
    /// Score scale, usually 1/√head_dim.
    public var scale: Float
    public var kernel: AttentionKernel
    /// Use only the first `keyLength` rows of k and v along time (a KV cache with spare
    /// capacity); nil means all.
    public var keyLength: Int?
    /// Scores become `softcap · tanh(score / softcap)` after scaling, before the mask (Gemma 2).
    public var softcap: Float?
    /// Attention dropout (training): each weight after the softmax is dropped with this
    /// probability and the kept ones are scaled by 1/(1 − p). The mask is regenerated from
    /// `dropoutSeed` in the backward (`tk_dropout_row`), never stored; both kernels drop the same
    /// weights for the same seed.
    public var dropout: Float
    public var dropoutSeed: UInt64

    public init(causal: Bool = true, window: Int? = nil, alibiSlopes: [Float]? = nil, queryOffset: Int = 0,
                scale: Float, kernel: AttentionKernel = .defaultTiled, keyLength: Int? = nil, softcap: Float? = nil,
                dropout: Float = 0, dropoutSeed: UInt64 = 0) {
        self.dropout = dropout
        self.dropoutSeed = dropoutSeed
        self.keyLength = keyLength
        self.softcap = softcap
        self.causal = causal
        self.window = window
        self.alibiSlopes = alibiSlopes
        self.queryOffset = queryOffset
        self.scale = scale
        self.kernel = kernel
    }
}

extension Tensor {
    /// Scaled dot-product attention with grouped KV heads (MHA, GQA and MQA by `kvHeads`).
    ///
    /// Layouts: q `[B, Tq, H, D]`, k and v `[B, Tk, KVH, D]` (the projection outputs, no
    /// transposes), result `[B, Tq, H, D]`. Query head h reads KV head `h / (H / KVH)`.
    ///
    /// `sinks` `[H]` (gpt-oss): a learned logit per head that joins every row's softmax
    /// denominator without a value, so a head can attend to nothing; it gets a gradient
    /// `−Σ_rows exp(sink − lse) · (dO · O)`.
    public static func attention(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor? = nil, options: AttentionOptions) throws -> Tensor {
        try attentionWithLSE(q: q, k: k, v: v, sinks: sinks, options: options).out
    }

    /// Attention that also returns the per-row log-sum-exp `[B, H, Tq]` of the masked scores
    /// (the sink included).
    public static func attentionWithLSE(q: Tensor, k: Tensor, v: Tensor, sinks: Tensor? = nil, options o: AttentionOptions) throws
        -> (out: Tensor, lse: Tensor)
    {
        guard q.rank == 4, k.rank == 4, v.rank == 4, k.shape == v.shape,
              q.shape[0] == k.shape[0], q.shape[3] == k.shape[3], k.shape[2] > 0,
              q.shape[2] % k.shape[2] == 0
        else { throw TensorError.shapeMismatch(op: "attention(q, k)", lhs: q.shape, rhs: k.shape) }
        let (b, tq, h, d) = (q.shape[0], q.shape[1], q.shape[2], q.shape[3])
        let (cap, kvh) = (k.shape[1], k.shape[2])
        let tk = o.keyLength ?? cap
        guard tk >= 0, tk <= cap else {
            throw TensorError.invalidArgument(op: "attention", message: "key length \(tk) outside 0...\(cap)")
        }
        if let slopes = o.alibiSlopes, slopes.count != h {
            throw TensorError.invalidArgument(op: "attention", message: "\(slopes.count) ALiBi slopes for \(h) heads")
        }
        if let sinks, sinks.shape != [q.shape[2]] {
            throw TensorError.shapeMismatch(op: "attention sinks", lhs: sinks.shape, rhs: [q.shape[2]])
        }
        if let c = o.softcap, !(c > 0 && c.isFinite) {
            throw TensorError.invalidArgument(op: "attention", message: "softcap must be a positive finite number, got \(c)")
        }
        guard o.dropout >= 0, o.dropout < 1 else {
            throw TensorError.invalidArgument(op: "attention", message: "dropout must be in [0, 1), got \(o.dropout)")
        }
        if let w = o.window, w <= 0 {
            throw TensorError.invalidArgument(op: "attention", message: "window must be positive, got \(w)")
        }
        if o.causal && o.queryOffset + tq > tk {
            throw TensorError.invalidArgument(
                op: "attention", message: "queries at positions up to \(o.queryOffset + tq - 1) but only \(tk) keys")
        }
        let slopes = TensorStorage(o.alibiSlopes ?? [])
        var params = tk_attention(
            B: Int32(b), Tq: Int32(tq), Tk: Int32(tk), H: Int32(h), KVH: Int32(kvh), D: Int32(d),
            causal: o.causal ? 1 : 0, window: Int32(o.window ?? 0), q_offset: Int32(o.queryOffset),
            alibi: nil, scale: o.scale, tile_q: 64, tile_k: 64, tk_stride: Int32(cap), softcap: o.softcap ?? 0, sinks: nil,
            dropout: o.dropout, dropout_seed: o.dropoutSeed)
        if case .tiled(let tq, let tkk) = o.kernel {
            guard tq > 0, tkk > 0 else {
                throw TensorError.invalidArgument(op: "attention", message: "tile sizes must be positive")
            }
            params.tile_q = Int32(tq)
            params.tile_k = Int32(tkk)
        }
        var out = Tensor(storage: TensorStorage(count: b * tq * h * d, zeroed: false), shape: [b, tq, h, d])
        let lse = Tensor(storage: TensorStorage(count: b * h * tq, zeroed: false), shape: [b, h, tq])
        let keep = (q.storage, k.storage, v.storage, out.storage, lse.storage, slopes, sinks?.storage)
        let pq = UnsafeSendablePointer(q.storage.pointer), pk = UnsafeSendablePointer(k.storage.pointer)
        let pv = UnsafeSendablePointer(v.storage.pointer), po = UnsafeSendablePointer(out.storage.pointer)
        let pl = UnsafeSendablePointer(lse.storage.pointer)
        let ps = UnsafeSendablePointer(slopes.pointer)
        if o.alibiSlopes != nil { params.alibi = UnsafePointer(ps.pointer) }
        if let sinks { params.sinks = UnsafePointer(sinks.storage.pointer) }
        let inputs = [q, k, v] + (sinks.map { [$0] } ?? [])
        let box = AttentionParamsBox(params)
        @Sendable func withParams<R>(_ body: (UnsafePointer<tk_attention>) -> R) -> R { box.with(body) }
        /// delta[b,h,i] = rowsum(dO ∘ O) `[B, H, Tq]` for the gradient `g` of the output.
        @Sendable func rowDeltas(_ g: UnsafeMutablePointer<Float>) -> TensorStorage {
            let delta = TensorStorage(count: b * h * tq, zeroed: false)
            let pd = UnsafeSendablePointer(delta.pointer), pg = UnsafeSendablePointer(g)
            Parallel.forRange(b * tq * h, costPerItem: d) { r in
                withParams { tk_attention_backward_delta($0, po.pointer, pg.pointer, pd.pointer,
                                                         Int32(r.lowerBound), Int32(r.upperBound)) }
            }
            return delta
        }
        /// d(sink_h) = −Σ_{b,i} exp(sink_h − lse[b,h,i]) · delta[b,h,i].
        @Sendable func sinkGradient(_ node: Node?, _ delta: UnsafePointer<Float>) {
            guard let node, let sinks else { return }
            let g = node.gradBuffer(), s = sinks.storage.pointer, l = pl.pointer
            for hi in 0..<h {
                var total = 0.0
                for bi in 0..<b {
                    for i in 0..<tq {
                        let r = (bi * h + hi) * tq + i
                        if l[r] != -.infinity { total -= Double(Foundation.exp(s[hi] - l[r]) * delta[r]) }
                    }
                }
                g[hi] += Float(total)
            }
        }
        switch o.kernel {
        case .tiled:
            let items = withParams { Int(tk_attention_forward_items($0)) }
            Parallel.forRange(items, costPerItem: 1 << 20) { r in
                withParams { tk_attention_forward_tiled($0, pq.pointer, pk.pointer, pv.pointer, po.pointer, pl.pointer,
                                                        Int32(r.lowerBound), Int32(r.upperBound)) }
            }
            record(&out, inputs) { g, nodes in
                withExtendedLifetime(keep) {}
                let delta = rowDeltas(g)
                let pd = UnsafeSendablePointer(delta.pointer), pg = UnsafeSendablePointer(g)
                // dq/dk/dv accumulate into the inputs' gradient buffers (scratch when an input needs
                // none); new buffers are not zero-filled here: the kernel clears each item's slices.
                var clear: Int32 = 0
                func target(_ i: Int, _ count: Int) -> (UnsafeSendablePointer<Float>, TensorStorage?) {
                    if let n = nodes[i] {
                        let (buffer, fresh) = n.gradBufferForOverwrite()
                        if fresh { clear |= 1 << Int32(i) }
                        return (UnsafeSendablePointer(buffer), nil)
                    }
                    let s = TensorStorage(count: count, zeroed: false)
                    clear |= 1 << Int32(i)
                    return (UnsafeSendablePointer(s.pointer), s)
                }
                let (dq, s0) = target(0, q.count), (dk, s1) = target(1, k.count), (dv, s2) = target(2, v.count)
                let items = withParams { Int(tk_attention_backward_items($0)) }
                let clearing = clear
                Parallel.forRange(items, costPerItem: 1 << 20) { r in
                    withParams { tk_attention_backward_tiled($0, pq.pointer, pk.pointer, pv.pointer, pg.pointer,
                                                             pl.pointer, pd.pointer, dq.pointer, dk.pointer, dv.pointer,
                                                             clearing, Int32(r.lowerBound), Int32(r.upperBound)) }
                }
                sinkGradient(nodes.count > 3 ? nodes[3] : nil, delta.pointer)
                withExtendedLifetime((delta, s0, s1, s2)) {}
            }
        case .naive:
            // P: [B, H, Tq, Tk], the O(T²) matrix the naive kernel keeps for backward.
            let probs = TensorStorage(count: b * h * tq * tk, zeroed: false)
            let pp = UnsafeSendablePointer(probs.pointer)
            // With a softcap: d(capped)/d(score) for every entry, for backward.
            let capGrad = o.softcap != nil ? TensorStorage(count: b * h * tq * tk, zeroed: false) : nil
            let pc = capGrad.map { UnsafeSendablePointer($0.pointer) }
            // With dropout: the weights after their mask, Z = P · mask / (1 − p), which V meets.
            let dropped = o.dropout > 0 ? TensorStorage(count: b * h * tq * tk, zeroed: false) : nil
            let pz = UnsafeSendablePointer((dropped ?? probs).pointer)
            let group = h / kvh
            for bi in 0..<b {
                for hi in 0..<h {
                    let qp = pq.pointer + bi * tq * h * d + hi * d
                    let kp = pk.pointer + bi * cap * kvh * d + (hi / group) * d
                    let sp = pp.pointer + (bi * h + hi) * tq * tk
                    // S[Tq, Tk] = Q Kᵀ (unscaled; scale, mask and softmax follow per row)
                    BLAS.gemm(transA: false, transB: true, m: tq, n: tk, k: d, alpha: 1, a: qp, lda: h * d,
                              b: kp, ldb: kvh * d, beta: 0, c: sp, ldc: tk)
                    Parallel.forRange(tq, costPerItem: tk * 8) { r in
                        withParams { tk_attention_masked_softmax($0, Int32(hi), pp.pointer + (bi * h + hi) * tq * tk,
                                                                 pc.map { $0.pointer + (bi * h + hi) * tq * tk },
                                                                 pl.pointer + (bi * h + hi) * tq, 1,
                                                                 Int32(r.lowerBound), Int32(r.upperBound)) }
                    }
                    let zp = pz.pointer + (bi * h + hi) * tq * tk
                    if dropped != nil {
                        zp.update(from: sp, count: tq * tk)
                        withParams { tk_attention_dropout_rows($0, Int32(bi), Int32(hi), zp, Int32(tk), 0, Int32(tq)) }
                    }
                    // O[Tq, D] = Z V (Z = P without dropout)
                    BLAS.gemm(transA: false, transB: false, m: tq, n: d, k: tk, alpha: 1, a: zp, lda: tk,
                              b: pv.pointer + bi * cap * kvh * d + (hi / group) * d, ldb: kvh * d, beta: 0,
                              c: po.pointer + bi * tq * h * d + hi * d, ldc: h * d)
                }
            }
            record(&out, inputs) { g, nodes in
                withExtendedLifetime((keep, probs, capGrad, dropped)) {}
                if nodes.count > 3, nodes[3] != nil {
                    let delta = rowDeltas(g)
                    withExtendedLifetime(delta) { sinkGradient(nodes[3], delta.pointer) }  // the pointer must not outlive it
                }
                let dS = TensorStorage(count: tq * tk, zeroed: false)
                let pds = UnsafeSendablePointer(dS.pointer)
                for bi in 0..<b {
                    for hi in 0..<h {
                        let off = (bi * h + hi) * tq * tk
                        let qo = bi * tq * h * d + hi * d, ko = bi * cap * kvh * d + (hi / group) * d
                        let gp = g + qo
                        // dV[Tk, D] += Zᵀ dO
                        if let nv = nodes[2] {
                            BLAS.gemm(transA: true, transB: false, m: tk, n: d, k: tq, alpha: 1, a: pz.pointer + off,
                                      lda: tk, b: gp, ldb: h * d, beta: 1, c: nv.gradBuffer() + ko, ldc: kvh * d)
                        }
                        // dP[Tq, Tk] = dO Vᵀ (times the mask with dropout), then dS = P ∘ (dP − rowsum(dP∘P)) · scale
                        BLAS.gemm(transA: false, transB: true, m: tq, n: tk, k: d, alpha: 1, a: gp, lda: h * d,
                                  b: pv.pointer + ko, ldb: kvh * d, beta: 0, c: pds.pointer, ldc: tk)
                        Parallel.forRange(tq, costPerItem: tk * 3) { r in
                            if dropped != nil {
                                withParams { tk_attention_dropout_rows($0, Int32(bi), Int32(hi), pds.pointer, Int32(tk),
                                                                       Int32(r.lowerBound), Int32(r.upperBound)) }
                            }
                            tk_softmax_backward_rows(pp.pointer + off, pds.pointer, Int32(tk), o.scale,
                                                     Int32(r.lowerBound), Int32(r.upperBound))
                            if let pc {  // through the softcap: × (1 − tanh²)
                                for i in r.lowerBound * tk..<r.upperBound * tk { pds.pointer[i] *= pc.pointer[off + i] }
                            }
                        }
                        // dQ[Tq, D] += dS K ; dK[Tk, D] += dSᵀ Q
                        if let nq = nodes[0] {
                            BLAS.gemm(transA: false, transB: false, m: tq, n: d, k: tk, alpha: 1, a: pds.pointer,
                                      lda: tk, b: pk.pointer + ko, ldb: kvh * d, beta: 1, c: nq.gradBuffer() + qo, ldc: h * d)
                        }
                        if let nk = nodes[1] {
                            BLAS.gemm(transA: true, transB: false, m: tk, n: d, k: tq, alpha: 1, a: pds.pointer,
                                      lda: tk, b: pq.pointer + qo, ldb: h * d, beta: 1, c: nk.gradBuffer() + ko, ldc: kvh * d)
                        }
                    }
                }
            }
        }
        return (out, lse)
    }
}

/// The C parameter block, shared read-only by the parallel workers of one call.
final class AttentionParamsBox: @unchecked Sendable {
    var params: tk_attention
    init(_ p: tk_attention) { params = p }
    func with<R>(_ body: (UnsafePointer<tk_attention>) -> R) -> R {
        var p = params
        return Swift.withUnsafePointer(to: &p) { body($0) }
    }
}
