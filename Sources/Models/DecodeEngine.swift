import Foundation
import CKernels
import Layers
import TensorCore
import ToolkitSupport

/// How the decode engine stores the weight matrices.
public enum DecodeWeightFormat: String, CaseIterable, Sendable, Codable {
    /// The model's own Float32 weights (no copy); results equal the tensor path to rounding.
    case f32
    /// bfloat16 copies (round to nearest even), Float32 arithmetic: half the bytes per token.
    case bf16
    /// int8 with one Float32 scale per output row (symmetric, weight-only, as torchao's
    /// `int8_weight_only`), Float32 activations and arithmetic: a quarter of the bytes per token.
    case int8
}

/// Single-sequence decoding without the tensor machinery: each new token runs through C kernels
/// (matrix-vector products split over a persistent thread pool, one-row norms, rotary embedding,
/// attention of one query over the KV cache), with every buffer allocated once.
///
/// Decoding one token reads every weight once, so the speed is set by the bytes of the weights
/// (`format`) and by per-token overheads, which this path removes. Norms, biases, embeddings and
/// the KV cache stay Float32 in every format. The prompt is processed by the tensor path
/// (matrix-matrix products), which fills the same `KVCache`.
///
/// Supported: dense decoders (GELU or SwiGLU MLPs, LayerNorm or RMSNorm, QK-norm, GQA, sliding
/// windows, learned / rotary / ALiBi / no positions). `DecodeEngine.unsupportedReason(_:)` says why
/// a model is not (MoE layers, adapters); callers then use the tensor path.
///
/// The engine reads the parameters it was built from: f32 in place, bf16/int8 as copies made at
/// init. Build a new engine after changing the weights (`step` refuses once a parameter's storage
/// has been replaced, e.g. by loading a checkpoint or merging an adapter).
///
/// One engine runs one step at a time (its scratch buffers are shared between steps); steps of
/// different engines are serialised by the kernels' thread pool.
public final class DecodeEngine {
    public let model: DecoderModel
    public let format: DecodeWeightFormat

    enum Norm {
        case layer(weight: UnsafePointer<Float>?, bias: UnsafePointer<Float>?, eps: Float)
        case rms(weight: UnsafePointer<Float>, eps: Float)
    }

    enum MLP {
        case gelu(fcIn: tk_matrix, fcOut: tk_matrix, exact: Bool)
        case swiglu(gate: tk_matrix, up: tk_matrix, down: tk_matrix)
    }

    struct Block {
        var inputNorm: Norm
        var qkv: [tk_matrix]
        var o: tk_matrix
        var qNorm: Norm?
        var kNorm: Norm?
        var postNorm: Norm
        var mlp: MLP
        var window: Int
        var slopes: UnsafePointer<Float>?
    }

    private let blocks: [Block]
    private let finalNorm: Norm
    private let head: tk_matrix
    private let embedding: UnsafePointer<Float>
    private let learnedPositions: UnsafePointer<Float>?
    private let rope: (cos: UnsafePointer<Float>, sin: UnsafePointer<Float>, half: Int, interleaved: Bool)?
    private let weights: WeightStore
    /// The model's parameters and their storage when the engine was built (staleness check).
    private let parameters: [(Parameter, TensorStorage)]
    private let scratch: UnsafeMutablePointer<Float>
    private let dims: ModelDimensions
    private let intermediate: Int
    /// Bytes of weight matrices read per token (norms, biases and the KV cache not included).
    public var matrixBytes: Int { weights.matrixBytes }

    /// Why `model` cannot use this path, or nil when it can.
    public static func unsupportedReason(_ model: DecoderModel) -> String? {
        for (i, b) in model.layers.enumerated() {
            if b.mlp is MoE { return "layer \(i) is a mixture of experts" }
            if !(b.mlp is GELUMLP || b.mlp is SwiGLUMLP) { return "layer \(i) has an MLP kind the engine does not know" }
            for norm in [b.inputNorm, b.postAttentionNorm] where !(norm is LayerNorm || norm is RMSNorm) {
                return "layer \(i) has a norm kind the engine does not know"
            }
            let a = b.attention
            let linears: [Linear] = [a.qProj, a.kProj, a.vProj, a.oProj] + WeightStore.linears(b.mlp)
            if linears.contains(where: { $0.adapter != nil }) { return "layer \(i) has an adapter (e.g. LoRA); merge it first" }
        }
        if !(model.norm is LayerNorm || model.norm is RMSNorm) { return "the final norm kind is unknown to the engine" }
        switch model.position {
        case is LearnedPositions, is RotaryEmbedding, is ALiBiPositions, is NoPositions: break
        default: return "the positional encoding is unknown to the engine"
        }
        if model.lmHead?.adapter != nil { return "the LM head has an adapter" }
        return nil
    }

    public init(model: DecoderModel, format: DecodeWeightFormat = .f32) throws {
        if let reason = Self.unsupportedReason(model) {
            throw ToolkitError("the decode engine does not support this model: \(reason)")
        }
        self.model = model
        self.format = format
        dims = model.dims
        tk_pool_configure(Int32(Parallel.workers))  // takes effect before the pool's first use
        var matrices = [model.outputWeight.value]
        for b in model.layers {
            let a = b.attention
            matrices += ([a.qProj, a.kProj, a.vProj, a.oProj] + WeightStore.linears(b.mlp)).map(\.weight.value)
        }
        guard model.embedTokens.weight.shape == [dims.vocabSize, dims.hiddenSize],
              model.outputWeight.shape == [dims.vocabSize, dims.hiddenSize]
        else {
            throw ToolkitError("the decode engine needs embeddings and an LM head of [\(dims.vocabSize), \(dims.hiddenSize)]")
        }
        parameters = model.namedParameters().map { ($0.parameter, $0.parameter.value.storage) }
        let w = WeightStore(format: format, matrices: matrices)
        weights = w
        embedding = w.pin(model.embedTokens.weight.value)
        finalNorm = w.norm(model.norm)
        head = try w.matrix(model.outputWeight.value, bias: nil)
        learnedPositions = (model.position as? LearnedPositions).map { w.pin($0.weight.value) }
        rope = (model.position as? RotaryEmbedding).map { r in
            (w.pin(r.cos), w.pin(r.sin), r.cos.shape[1], r.layout == .interleaved)
        }
        blocks = try model.layers.map { b in
            let a = b.attention
            let mlp: MLP
            if let m = b.mlp as? GELUMLP {
                mlp = .gelu(fcIn: try w.matrix(m.fcIn), fcOut: try w.matrix(m.fcOut), exact: m.approximation == .exact)
            } else {
                let m = b.mlp as! SwiGLUMLP  // checked by unsupportedReason
                mlp = .swiglu(gate: try w.matrix(m.gateProj), up: try w.matrix(m.upProj), down: try w.matrix(m.downProj))
            }
            return Block(
                inputNorm: w.norm(b.inputNorm), qkv: [try w.matrix(a.qProj), try w.matrix(a.kProj), try w.matrix(a.vProj)],
                o: try w.matrix(a.oProj), qNorm: a.qNorm.map { w.norm($0) }, kNorm: a.kNorm.map { w.norm($0) },
                postNorm: w.norm(b.postAttentionNorm), mlp: mlp, window: a.window ?? 0,
                slopes: a.position.attentionSlopes(heads: a.heads).map { w.copy($0) })
        }
        // The widest MLP activation (fc_in rows, or the gate's for SwiGLU).
        intermediate = blocks.map { b -> Int in
            switch b.mlp {
            case .gelu(let fcIn, _, _): return Int(fcIn.rows)
            case .swiglu(let gate, _, _): return Int(gate.rows)
            }
        }.max() ?? 0
        let d = dims
        let count = 2 * d.hiddenSize + 2 * d.heads * d.headDim + 2 * d.kvHeads * d.headDim + 2 * intermediate
            + d.vocabSize + d.heads * d.contextLength + 2 * max(d.heads, d.kvHeads)
        scratch = UnsafeMutablePointer<Float>.allocate(capacity: count)
        scratch.initialize(repeating: 0, count: count)
    }

    deinit { scratch.deallocate() }

    /// The training path's norm kernels over `rows` rows of width `width` (y may be x); `stats`
    /// holds their per-row statistics (2 floats per row).
    private func apply(_ n: Norm, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, width: Int, rows: Int = 1,
                       stats: UnsafeMutablePointer<Float>) {
        switch n {
        case .layer(let w, let b, let eps): tk_layernorm_forward(x, w, b, eps, Int32(width), y, stats, 0, Int32(rows))
        case .rms(let w, let eps): tk_rmsnorm_forward(x, w, eps, Int32(width), y, stats, 0, Int32(rows))
        }
    }

    /// y_i (+)= W_i · x (+ b_i) for up to three matrices in one parallel job (no allocation).
    private func gemv(_ a: tk_matrix, _ ya: UnsafeMutablePointer<Float>, _ b: tk_matrix? = nil, _ yb: UnsafeMutablePointer<Float>? = nil,
                      _ c: tk_matrix? = nil, _ yc: UnsafeMutablePointer<Float>? = nil, x: UnsafePointer<Float>, accumulate: Bool,
                      geluTanh: Bool = false) {
        var mats = (a, b ?? a, c ?? a)
        var ys: (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) = (ya, yb, yc)
        let count: Int32 = c != nil ? 3 : (b != nil ? 2 : 1)
        withUnsafePointer(to: &mats) { m in
            withUnsafePointer(to: &ys) { y in
                m.withMemoryRebound(to: tk_matrix.self, capacity: 3) { mp in
                    y.withMemoryRebound(to: UnsafeMutablePointer<Float>?.self, capacity: 3) { yp in
                        tk_gemv_parallel(mp, count, x, yp, accumulate ? 1 : 0, Int32(geluTanh ? TK_ACT_GELU_TANH : TK_ACT_NONE))
                    }
                }
            }
        }
    }

    /// Runs `token` at position `cache.length` (batch 1): stores its keys and values in `cache`,
    /// advances it, and returns the next-token logits (valid until the next call).
    public func step(token: Int32, cache: KVCache) throws -> UnsafeBufferPointer<Float> {
        let d = dims, c = d.hiddenSize, hd = d.headDim
        let pos = cache.length
        guard !parameters.contains(where: { $0.0.value.storage !== $0.1 }) else {
            throw ToolkitError("decode engine: the model's weights were replaced after the engine was built; build a new one")
        }
        guard cache.batch == 1, cache.kvHeads == d.kvHeads, cache.headDim == hd, cache.layers == blocks.count else {
            throw ToolkitError("decode engine: the KV cache does not belong to this model (batch \(cache.batch))")
        }
        guard pos < cache.capacity, pos < d.contextLength else {
            throw ToolkitError("decode engine: position \(pos) is beyond the cache (\(cache.capacity)) or the context (\(d.contextLength))")
        }
        guard token >= 0, Int(token) < d.vocabSize else {
            throw ToolkitError("token id \(token) is outside the vocabulary (0..<\(d.vocabSize))")
        }
        var p = scratch
        func take(_ n: Int) -> UnsafeMutablePointer<Float> { defer { p += n }; return p }
        let x = take(c), xn = take(c), q = take(d.heads * hd), attn = take(d.heads * hd)
        let k = take(d.kvHeads * hd), v = take(d.kvHeads * hd), h1 = take(intermediate), h2 = take(intermediate)
        let logits = take(d.vocabSize), scores = take(d.heads * d.contextLength), stats = take(2 * max(d.heads, d.kvHeads))

        x.update(from: embedding + Int(token) * c, count: c)
        if let lp = learnedPositions { for i in 0..<c { x[i] += lp[pos * c + i] } }
        let row = d.kvHeads * hd
        for (layer, b) in blocks.enumerated() {
            apply(b.inputNorm, x, xn, width: c, stats: stats)
            gemv(b.qkv[0], q, b.qkv[1], k, b.qkv[2], v, x: xn, accumulate: false)
            if let qn = b.qNorm, let kn = b.kNorm {
                apply(qn, q, q, width: hd, rows: d.heads, stats: stats)  // per head, in place
                apply(kn, k, k, width: hd, rows: d.kvHeads, stats: stats)
            }
            if let r = rope {
                tk_rope_row(q, Int32(d.heads), Int32(hd), r.cos + pos * r.half, r.sin + pos * r.half, Int32(r.half), r.interleaved ? 1 : 0)
                tk_rope_row(k, Int32(d.kvHeads), Int32(hd), r.cos + pos * r.half, r.sin + pos * r.half, Int32(r.half), r.interleaved ? 1 : 0)
            }
            let (kc, vc) = cache.storage(layer: layer)
            (kc + pos * row).update(from: k, count: row)
            (vc + pos * row).update(from: v, count: row)
            var problem = tk_decode_attention(
                H: Int32(d.heads), KVH: Int32(d.kvHeads), D: Int32(hd), position: Int32(pos), window: Int32(b.window),
                alibi: b.slopes, scale: 1 / Float(hd).squareRoot())
            tk_decode_attention_run(&problem, q, kc, vc, attn, scores)
            gemv(b.o, x, x: attn, accumulate: true)
            apply(b.postNorm, x, xn, width: c, stats: stats)
            switch b.mlp {
            case .gelu(let fcIn, let fcOut, let exact):
                gemv(fcIn, h1, x: xn, accumulate: false, geluTanh: !exact)  // tanh GELU fused into the rows
                if exact { for i in 0..<Int(fcIn.rows) { h1[i] = Kernels.geluExact(h1[i]) } }
                gemv(fcOut, x, x: h1, accumulate: true)
            case .swiglu(let gate, let up, let down):
                gemv(gate, h1, up, h2, x: xn, accumulate: false)
                tk_swiglu_forward(h1, h2, h1, 0, Int(gate.rows))
                gemv(down, x, x: h1, accumulate: true)
            }
        }
        apply(finalNorm, x, xn, width: c, stats: stats)
        gemv(head, logits, x: xn, accumulate: false)
        cache.advance(by: 1)
        return UnsafeBufferPointer(start: logits, count: d.vocabSize)
    }
}

/// The weights as the engine reads them: Float32 tensors pinned in place, or converted copies it owns.
private final class WeightStore {
    let format: DecodeWeightFormat
    private(set) var matrixBytes = 0
    private var keepAlive: [TensorStorage] = []
    private var owned: [UnsafeMutableRawPointer] = []
    /// One block for all converted matrices, on transparent huge pages where the kernel allows
    /// (a decoding step walks through all of it; 4 KiB pages would miss the TLB on most rows).
    private var arena: UnsafeMutableRawPointer?
    private var arenaBytes = 0, arenaUsed = 0

    init(format: DecodeWeightFormat, matrices: [Tensor]) {
        self.format = format
        guard format != .f32 else { return }
        for m in matrices { arenaBytes += Self.aligned(Self.bytes(format, rows: m.shape[0], count: m.count)) }
        let huge = 2 << 20
        arenaBytes = (arenaBytes + huge - 1) / huge * huge
        let p = UnsafeMutableRawPointer.allocate(byteCount: arenaBytes, alignment: huge)
        SystemPolicy.adviseHugePages(p, bytes: arenaBytes)
        arena = p
    }

    deinit {
        for p in owned { p.deallocate() }
        arena?.deallocate()
    }

    private static func aligned(_ n: Int) -> Int { (n + 63) / 64 * 64 }

    private static func bytes(_ format: DecodeWeightFormat, rows: Int, count: Int) -> Int {
        switch format {
        case .f32: return 4 * count
        case .bf16: return 2 * count
        case .int8: return aligned(count) + 4 * rows
        }
    }

    /// `bytes` from the arena (sized in init for exactly these matrices).
    private func take(_ bytes: Int) -> UnsafeMutableRawPointer {
        let p = arena! + arenaUsed
        arenaUsed += Self.aligned(bytes)
        precondition(arenaUsed <= arenaBytes, "decode engine arena overflow")
        return p
    }

    static func linears(_ mlp: any FeedForward) -> [Linear] {
        if let m = mlp as? GELUMLP { return [m.fcIn, m.fcOut] }
        if let m = mlp as? SwiGLUMLP { return [m.gateProj, m.upProj, m.downProj] }
        return []
    }

    func pin(_ t: Tensor) -> UnsafePointer<Float> {
        keepAlive.append(t.storage)
        return UnsafePointer(t.storage.pointer)
    }

    func copy(_ values: [Float]) -> UnsafePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        owned.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    func norm(_ n: any Normalization) -> DecodeEngine.Norm {
        if let l = n as? LayerNorm { return .layer(weight: pin(l.weight.value), bias: l.bias.map { pin($0.value) }, eps: l.eps) }
        let r = n as! RMSNorm  // checked by DecodeEngine.unsupportedReason
        return .rms(weight: pin(r.weight.value), eps: r.eps)
    }

    func matrix(_ l: Linear) throws -> tk_matrix { try matrix(l.weight.value, bias: l.bias?.value) }

    /// The weight in this store's format (Float32 weights are used in place).
    func matrix(_ w: Tensor, bias: Tensor?) throws -> tk_matrix {
        let rows = Int32(w.shape[0]), cols = Int32(w.shape[1]), n = w.count
        var m = tk_matrix()
        m.rows = rows
        m.cols = cols
        m.bias = bias.map { pin($0) }
        switch format {
        case .f32:
            m.format = Int32(TK_W_F32)
            m.data = UnsafeRawPointer(pin(w))
            matrixBytes += 4 * n
        case .bf16:
            let p = take(2 * n).bindMemory(to: UInt16.self, capacity: n)
            tk_to_bf16(w.storage.pointer, n, p)
            m.format = Int32(TK_W_BF16)
            m.data = UnsafeRawPointer(p)
            matrixBytes += 2 * n
        case .int8:
            let q = take(n).bindMemory(to: Int8.self, capacity: n)
            let s = take(4 * Int(rows)).bindMemory(to: Float.self, capacity: Int(rows))
            guard tk_quantize_q8(w.storage.pointer, rows, cols, q, s) == 0 else {
                throw ToolkitError("int8 weights: a [\(rows), \(cols)] matrix has a NaN or infinite value")
            }
            m.format = Int32(TK_W_Q8)
            m.data = UnsafeRawPointer(q)
            m.scales = UnsafePointer(s)
            matrixBytes += n + 4 * Int(rows)
        }
        return m
    }
}
