import CKernels
import TensorCore
import ToolkitSupport

/// How the fast decoder stores the weight matrices.
public enum DecodeWeightFormat: String, CaseIterable, Sendable, Codable {
    /// The model's own Float32 weights (no copy); results equal the tensor path to rounding.
    case f32
    /// bfloat16 copies (round to nearest even), Float32 arithmetic: half the bytes per token.
    case bf16
    /// int8 with one Float32 scale per output row (symmetric, weight-only, as torchao's
    /// `int8_weight_only`), Float32 activations and arithmetic: a quarter of the bytes per token.
    case int8
}

/// Why a component has no single-token decode step (the fast decoder then refuses the model and
/// `generate` prints this reason before using the tensor path).
public struct DecodeUnsupported: Error, CustomStringConvertible {
    public let reason: String
    public init(_ reason: String) { self.reason = reason }
    public var description: String { reason }
}

/// One weight matrix as the decode kernels read it (`tk_matrix`: f32, bf16 or int8 rows).
public typealias DecodeMatrix = tk_matrix

/// The weights of a model lowered for single-token decoding: Float32 tensors pinned in place, or
/// bf16/int8 copies in one arena on transparent huge pages (a step walks through all of it, and
/// 4 KiB pages would miss the TLB on most rows). Components lower themselves through it
/// (`decodeStep(_:)`), so the engine never needs to know their types.
///
/// `lower(format:_:)` runs the lowering twice for converted formats: once measuring the arena,
/// once filling it.
public final class DecodeWeights {
    public let format: DecodeWeightFormat
    /// True in the measuring pass: `matrix` only counts bytes and returns an empty matrix.
    public let measuring: Bool
    /// Bytes of weight matrices read per token (norms, biases and the KV cache not included).
    public private(set) var matrixBytes = 0
    private var keepAlive: [TensorStorage] = []
    private var owned: [UnsafeMutableRawPointer] = []
    private var arena: UnsafeMutableRawPointer?
    private var arenaBytes = 0, arenaUsed = 0

    private init(format: DecodeWeightFormat, measuring: Bool, arenaBytes: Int) {
        self.format = format
        self.measuring = measuring
        guard arenaBytes > 0 else { return }
        let huge = 2 << 20
        self.arenaBytes = (arenaBytes + huge - 1) / huge * huge
        let p = UnsafeMutableRawPointer.allocate(byteCount: self.arenaBytes, alignment: huge)
        SystemPolicy.adviseHugePages(p, bytes: self.arenaBytes)
        arena = p
    }

    deinit {
        for p in owned { p.deallocate() }
        arena?.deallocate()
    }

    /// Lowers with `body` into weights of `format`. A `DecodeUnsupported` thrown by a component
    /// propagates unchanged.
    public static func lower<T>(format: DecodeWeightFormat, _ body: (DecodeWeights) throws -> T) throws -> (T, DecodeWeights) {
        var arena = 0
        if format != .f32 {
            let probe = DecodeWeights(format: format, measuring: true, arenaBytes: 0)
            _ = try body(probe)
            arena = probe.arenaUsed
        }
        let w = DecodeWeights(format: format, measuring: false, arenaBytes: arena)
        return (try body(w), w)
    }

    /// Only checks that every component can lower itself (f32: nothing is copied).
    public static func check(_ body: (DecodeWeights) throws -> Void) throws {
        try body(DecodeWeights(format: .f32, measuring: true, arenaBytes: 0))
    }

    private static func aligned(_ n: Int) -> Int { (n + 63) / 64 * 64 }

    /// `bytes` from the arena (sized by the measuring pass for exactly these matrices).
    private func take(_ bytes: Int) -> UnsafeMutableRawPointer {
        defer { arenaUsed += Self.aligned(bytes) }
        guard !measuring else { return UnsafeMutableRawPointer(bitPattern: 64)! }
        precondition(arenaUsed + Self.aligned(bytes) <= arenaBytes, "decode arena overflow: the lowering changed between passes")
        return arena! + arenaUsed
    }

    /// A Float32 tensor read in place (kept alive as long as these weights).
    public func pin(_ t: Tensor) -> UnsafePointer<Float> {
        keepAlive.append(t.storage)
        return UnsafePointer(t.storage.pointer)
    }

    /// A copy of `values` owned by these weights.
    public func copy(_ values: [Float]) -> UnsafePointer<Float> {
        let p = UnsafeMutablePointer<Float>.allocate(capacity: max(values.count, 1))
        p.initialize(from: values, count: values.count)
        owned.append(UnsafeMutableRawPointer(p))
        return UnsafePointer(p)
    }

    /// A linear layer's weight and bias. A layer carrying an adapter cannot be decoded (its
    /// output is not `W·x + b`); merge the adapter first.
    public func matrix(_ l: Linear) throws -> DecodeMatrix {
        guard l.adapter == nil else { throw DecodeUnsupported("a projection has an adapter (e.g. LoRA); merge it first") }
        return try matrix(l.weight.value, bias: l.bias?.value)
    }

    /// The weight in this store's format (Float32 weights are used in place).
    public func matrix(_ w: Tensor, bias: Tensor?) throws -> DecodeMatrix {
        let rows = Int32(w.shape[0]), cols = Int32(w.shape[1]), n = w.count
        var m = tk_matrix()
        m.rows = rows
        m.cols = cols
        switch format {
        case .f32:
            matrixBytes += 4 * n
            guard !measuring else { return m }
            m.bias = bias.map { pin($0) }
            m.format = Int32(TK_W_F32)
            m.data = UnsafeRawPointer(pin(w))
        case .bf16:
            matrixBytes += 2 * n
            let p = take(2 * n)
            guard !measuring else { return m }
            m.bias = bias.map { pin($0) }
            tk_to_bf16(w.storage.pointer, n, p.bindMemory(to: UInt16.self, capacity: n))
            m.format = Int32(TK_W_BF16)
            m.data = UnsafeRawPointer(p)
        case .int8:
            matrixBytes += n + 4 * Int(rows)
            let q = take(n), s = take(4 * Int(rows))
            guard !measuring else { return m }
            m.bias = bias.map { pin($0) }
            let scales = s.bindMemory(to: Float.self, capacity: Int(rows))
            guard tk_quantize_q8(w.storage.pointer, rows, cols, q.bindMemory(to: Int8.self, capacity: n), scales) == 0 else {
                throw ToolkitError("int8 weights: a [\(rows), \(cols)] matrix has a NaN or infinite value")
            }
            m.format = Int32(TK_W_Q8)
            m.data = UnsafeRawPointer(q)
            m.scales = UnsafePointer(scales)
        }
        return m
    }
}

/// The decode kernels the lowered components call (no allocation, no tensors).
public enum DecodeKernels {
    /// y_i (+)= W_i · x (+ b_i) for up to three matrices in one parallel job; `geluTanh` applies
    /// the tanh GELU to every output row as it is written. With `vectors` > 1, x is
    /// `[vectors, cols]` and each y_i `[vectors, rows_i]` (batched decoding: the weights are read
    /// from memory once for all vectors, and each vector's result is the single-vector one, bit for bit).
    public static func gemv(_ a: DecodeMatrix, _ ya: UnsafeMutablePointer<Float>, _ b: DecodeMatrix? = nil,
                            _ yb: UnsafeMutablePointer<Float>? = nil, _ c: DecodeMatrix? = nil,
                            _ yc: UnsafeMutablePointer<Float>? = nil, x: UnsafePointer<Float>, vectors: Int = 1,
                            accumulate: Bool, geluTanh: Bool = false) {
        var mats = (a, b ?? a, c ?? a)
        var ys: (UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?, UnsafeMutablePointer<Float>?) = (ya, yb, yc)
        let count: Int32 = c != nil ? 3 : (b != nil ? 2 : 1)
        withUnsafePointer(to: &mats) { m in
            withUnsafePointer(to: &ys) { y in
                m.withMemoryRebound(to: tk_matrix.self, capacity: 3) { mp in
                    y.withMemoryRebound(to: UnsafeMutablePointer<Float>?.self, capacity: 3) { yp in
                        tk_gemv_batch(mp, count, x, yp, Int32(vectors), accumulate ? 1 : 0,
                                      Int32(geluTanh ? TK_ACT_GELU_TANH : TK_ACT_NONE))
                    }
                }
            }
        }
    }
}

/// A normalisation lowered for decoding: `rows` rows of `width` from `x` to `y` (`y` may be `x`);
/// `stats` has room for 2 floats per row.
public struct DecodeNorm {
    public let apply: (_ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>, _ width: Int, _ rows: Int,
                       _ stats: UnsafeMutablePointer<Float>) -> Void
    public init(_ apply: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, Int, UnsafeMutablePointer<Float>) -> Void) {
        self.apply = apply
    }
}

/// A positional encoding lowered for decoding one token at `position`.
public struct DecodePositions {
    /// Adds the position to the token's embedding row (learned absolute positions).
    public var embed: ((_ x: UnsafeMutablePointer<Float>, _ position: Int) -> Void)?
    /// Rotates `heads` rows of `headDim` queries or keys in place (rotary encodings).
    public var rotate: ((_ x: UnsafeMutablePointer<Float>, _ heads: Int, _ headDim: Int, _ position: Int) -> Void)?
    public init(embed: ((UnsafeMutablePointer<Float>, Int) -> Void)? = nil,
                rotate: ((UnsafeMutablePointer<Float>, Int, Int, Int) -> Void)? = nil) {
        self.embed = embed
        self.rotate = rotate
    }
}

/// A feed-forward lowered for decoding: `run(x, out, rows, scratch)` adds the block's output for
/// the `rows` normalised rows `x` (`[rows, hidden]`) to `out`, using `scratch`
/// (`rows · scratchFloats` floats) for its activations.
public struct DecodeFeedForward {
    public let scratchFloats: Int
    public let run: (_ x: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, _ rows: Int,
                     _ scratch: UnsafeMutablePointer<Float>) -> Void
    public init(scratchFloats: Int,
                run: @escaping (UnsafePointer<Float>, UnsafeMutablePointer<Float>, Int, UnsafeMutablePointer<Float>) -> Void) {
        self.scratchFloats = scratchFloats
        self.run = run
    }
}

/// The sequences of one decoding step: row r is the next token of the sequence whose keys and
/// values are in `caches[r]`, at position `positions[r]` (each sequence has its own cache and
/// length; continuous batching puts sequences of different lengths in one step).
public struct DecodeRows {
    public let caches: [KVCache]
    public let positions: [Int]
    public var count: Int { caches.count }
    public init(caches: [KVCache]) {
        self.caches = caches
        positions = caches.map(\.length)
    }
}
