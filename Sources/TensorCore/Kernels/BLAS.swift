import CKernels
import CPlatform
import Dispatch
import Foundation

/// Thin wrappers over the platform seam's `tk_sgemm` (CBLAS `sgemm`, row-major). Transposes are BLAS
/// flags; the one copy is a narrow C's, computed transposed (`narrowColumns`).
///
/// Threading is ours, not OpenBLAS's: OpenBLAS runs single-threaded (`BLASRuntime` sets it), and a
/// large product is cut into `threads` contiguous blocks of rows of C (or of columns, when C has
/// few rows), each computed by one single-threaded BLAS `sgemm` on its own core. On 2 cores this
/// measured 10–45 % faster than OpenBLAS's own two threads on the training shapes (2048×384·384ᵀ:
/// 4.5 → 3.4 ms; 2048×384·128ᵀ: 2.2 → 1.2 ms), and with no BLAS threads spinning between calls our
/// elementwise loops get both cores back.
public enum BLAS {
    /// Blocks a large product is split into (default: `Parallel.workers`; `BLASRuntime.setThreads`).
    /// Its first use also makes OpenBLAS itself single-threaded, before any product runs.
    nonisolated(unsafe) public static var threads: Int = {
        tk_blas_set_threads(1)
        tk_pool_configure(Int32(Parallel.workers))  // before the pool's first use
        return Parallel.workers
    }()

    /// Multiply-adds (m·n·k) below which a product runs on the calling thread only (~20 µs).
    nonisolated(unsafe) public static var minimumSplitWork = 1 << 21

    /// C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, with op = transpose when flagged.
    /// A is stored [m,k] (or [k,m] when `transA`), B is [k,n] (or [n,k] when `transB`).
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        let parts = threads  // first use also configures OpenBLAS and the pool the GEMV path uses
        if m == 1, transB, ldb == k, !transA || lda == 1, alpha == 1, beta == 0 || beta == 1,
           n <= Int(Int32.max), k <= Int(Int32.max) {
            // One row against a [n, k] weight (a linear layer while decoding on the tensor path):
            // the decoder's AVX-512 matrix-vector kernel, rows split over the spinning pool.
            // (OpenBLAS's single-threaded sgemv measured ~25 % slower per token.)
            var mat = tk_matrix(rows: Int32(n), cols: Int32(k), format: Int32(TK_W_F32), data: b, scales: nil, bias: nil)
            var y: UnsafeMutablePointer<Float>? = c
            tk_gemv_parallel(&mat, 1, a, &y, beta == 1 ? 1 : 0, Int32(TK_ACT_NONE))
            return
        }
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
             beta: beta, c: c, ldc: ldc, parts: parts, minimumWork: minimumSplitWork)
    }

    /// Products below this many multiply-adds (~0.2 ms on one core) are split over the spinning
    /// `tk_pool` (hand-off in ~1 µs, as decoding and prompts need); larger ones over Dispatch, whose
    /// workers sleep between jobs and so never compete with the elementwise loops of training.
    nonisolated(unsafe) public static var spinningPoolWork = 1 << 24

    /// `gemm` split into at most `parts` blocks when m·n·k ≥ `minimumWork` (tests force the split;
    /// `narrow` is `narrowColumns` unless a test compares both paths).
    static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int, minimumWork: Int,
        narrowColumns narrow: Int = BLAS.narrowColumns
    ) {
        if narrow > 0, n >= 32, n <= narrow, m >= 4 &* n, k >= 32 {
            gemmTransposed(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                           b: b, ldb: ldb, beta: beta, c: c, ldc: ldc, parts: parts, minimumWork: minimumWork)
            return
        }
        // A matrix-vector product (m = 1) streams the matrix from memory: weigh each element as ~32
        // multiply-adds of a cache-blocked GEMM, so decoding-sized products are split too.
        let work = m == 1 ? n &* k &* 32 : m &* n &* k
        guard parts > 1, work >= minimumWork else {
            gemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        // Blocks are multiples of 16 rows/columns (whole micro-tiles, 64-byte aligned columns).
        let unit = 16
        let byRows = m >= parts * unit * 2 || m >= n
        let extent = byRows ? m : n
        let blocks = min(parts, max(1, extent / unit))
        var job = SplitGEMM(
            transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
            beta: beta, c: c, ldc: ldc, byRows: byRows, extent: extent,
            size: ((extent + blocks - 1) / blocks + unit - 1) / unit * unit)
        if blocks <= 1 {
            job.run(block: 0)
        } else if work < spinningPoolWork {
            withUnsafeMutablePointer(to: &job) { jp in
                tk_pool_for(Int32(blocks), { ctx, begin, end in
                    let j = ctx!.assumingMemoryBound(to: SplitGEMM.self)
                    for i in begin..<end { j.pointee.run(block: Int(i)) }
                }, jp)
            }
        } else {
            let shared = job
            DispatchQueue.concurrentPerform(iterations: blocks) { i in shared.run(block: i) }
        }
    }

    /// Products whose C has at most this many columns (and at least 4× as many rows) are computed
    /// as Cᵀ = op(B)ᵀ · op(A)ᵀ into a scratch buffer and transposed into C (0 turns this off;
    /// `TOOLKIT_GEMM_NARROW` overrides). On the AVX2-only AMD EPYC (avx2 ) of session 12, OpenBLAS 0.3.21
    /// ran such products at under half speed: 2048×n×384, one thread, Haswell kernel, n = 128:
    /// 17 GFLOP/s, n = 256: 14, n = 320: 13, against 39–41 from n = 352 on (whatever m and k; a
    /// cliff in C's contiguous dimension, which points at the driver's blocking, not verified), and
    /// the transposed product n×2048×384 ran at 32–36. `qwen3-small`'s k_proj and v_proj (n = 128) are
    /// such products. The transpose reads and writes m·n floats once, a few per cent of the
    /// product's time.
    nonisolated(unsafe) public static var narrowColumns: Int =
        Int(ProcessInfo.processInfo.environment["TOOLKIT_GEMM_NARROW"] ?? "") ?? 320

    /// Rows of C per transposed block: the scratch is at most 320 × 4096 floats (5 MiB), whatever m is.
    static let narrowBlockRows = 4096

    /// `gemm` for a narrow C: for each block of up to `narrowBlockRows` rows of C, Cᵀ[n,rows] =
    /// op(B)ᵀ · op(A)ᵀ (the same products of rows and columns, each summed over k in the same order),
    /// then C = beta · C + (Cᵀ)ᵀ in 16-row blocks.
    private static func gemmTransposed(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int, minimumWork: Int
    ) {
        for lo in stride(from: 0, to: m, by: narrowBlockRows) {
            // Rows lo..<lo+rows of C need rows lo..<lo+rows of op(A).
            gemmTransposedBlock(transA: transA, transB: transB, m: Swift.min(narrowBlockRows, m - lo), n: n, k: k,
                                alpha: alpha, a: transA ? a + lo : a + lo * lda, lda: lda, b: b, ldb: ldb, beta: beta,
                                c: c + lo * ldc, ldc: ldc, parts: parts, minimumWork: minimumWork)
        }
    }

    private static func gemmTransposedBlock(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int, minimumWork: Int
    ) {
        let scratch = TensorStorage(count: m * n, zeroed: false)
        let t = scratch.pointer
        // op(B)ᵀ is B read with the other transpose flag, and likewise op(A)ᵀ. Never transposed again
        // (a short last block could otherwise qualify the other way round).
        gemm(transA: !transB, transB: !transA, m: n, n: m, k: k, alpha: alpha, a: b, lda: ldb, b: a, ldb: lda,
             beta: 0, c: t, ldc: m, parts: parts, minimumWork: minimumWork, narrowColumns: 0)
        let pt = UnsafeSendablePointer(t), pc = UnsafeSendablePointer(c)
        let block = 16, blocks = (m + block - 1) / block
        let body: @Sendable (Range<Int>) -> Void = { range in
            withExtendedLifetime(scratch) {
                let t = pt.pointer, c = pc.pointer
                for blk in range {
                    let lo = blk * block, hi = Swift.min(m, lo + block)
                    for j in 0..<n {
                        let tj = t + j * m
                        if beta == 0 {
                            for i in lo..<hi { c[i * ldc + j] = tj[i] }
                        } else if beta == 1 {
                            for i in lo..<hi { c[i * ldc + j] += tj[i] }
                        } else {
                            for i in lo..<hi { c[i * ldc + j] = beta * c[i * ldc + j] + tj[i] }
                        }
                    }
                }
            }
        }
        // One part: a product that runs beside another on the other core (`accumulate`).
        if parts > 1 { Parallel.forRange(blocks, costPerItem: block * n, body) } else { body(0..<blocks) }
    }

    /// One block of a split product: rows (or columns) [block·size, (block+1)·size) of C.
    private struct SplitGEMM: @unchecked Sendable {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int
        let alpha: Float
        let a: UnsafePointer<Float>, lda: Int
        let b: UnsafePointer<Float>, ldb: Int
        let beta: Float
        let c: UnsafeMutablePointer<Float>, ldc: Int
        let byRows: Bool
        let extent: Int, size: Int

        func run(block i: Int) {
            let lo = i * size, hi = min(extent, lo + size)
            guard lo < hi else { return }
            if byRows {
                // Rows lo..<hi of C need rows lo..<hi of op(A).
                let ai = transA ? a + lo : a + lo * lda
                BLAS.gemmSerial(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha, a: ai, lda: lda,
                                b: b, ldb: ldb, beta: beta, c: c + lo * ldc, ldc: ldc)
            } else {
                // Columns lo..<hi of C need columns lo..<hi of op(B).
                let bi = transB ? b + lo * ldb : b + lo
                BLAS.gemmSerial(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha, a: a, lda: lda,
                                b: bi, ldb: ldb, beta: beta, c: c + lo, ldc: ldc)
            }
        }
    }

    /// One `C = op(A) · op(B) + beta · C` of a backward pass (alpha = 1; beta 1 accumulates, 0
    /// overwrites a gradient buffer that was just allocated).
    struct Product: @unchecked Sendable {
        let transA: Bool, transB: Bool
        let m: Int, n: Int, k: Int
        let a: UnsafePointer<Float>, lda: Int
        let b: UnsafePointer<Float>, ldb: Int
        let beta: Float
        let c: UnsafeMutablePointer<Float>, ldc: Int

        var work: Int { m &* n &* k }

        func run(parts: Int) {
            BLAS.gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: 1, a: a, lda: lda, b: b, ldb: ldb,
                      beta: beta, c: c, ldc: ldc, parts: parts, minimumWork: BLAS.minimumSplitWork)
        }
    }

    /// Runs two independent products (a linear layer's dX and dW, either may be absent). When both
    /// are large, of similar size and write different buffers, they run side by side, each on half
    /// the cores, instead of one after the other split over all of them: each single-threaded
    /// OpenBLAS call then runs at its full single-core rate (~93 GFLOP/s here) instead of a split
    /// product's ~80–90 per core.
    static func accumulate(_ first: Product?, _ second: Product?) {
        let parts = threads
        if let p0 = first, let p1 = second, parts >= 2, p0.c != p1.c,
           min(p0.work, p1.work) >= minimumSplitWork, max(p0.work, p1.work) <= 2 * min(p0.work, p1.work) {
            let half = parts / 2
            DispatchQueue.concurrentPerform(iterations: 2) { i in
                (i == 0 ? p0 : p1).run(parts: i == 0 ? half : parts - half)
            }
            return
        }
        first?.run(parts: parts)
        second?.run(parts: parts)
    }

    /// One single-threaded BLAS call (`gemm` without the split).
    @inlinable
    public static func gemmSerial(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        guard m > 0, n > 0 else { return }
        if k == 0 {
            // BLAS leaves C scaled by beta; do it ourselves for clarity.
            for i in 0..<m { for j in 0..<n { c[i * ldc + j] = beta == 0 ? 0 : beta * c[i * ldc + j] } }
            return
        }
        if m == 1 {
            // A single row (decoding): a matrix-vector product, without packing the matrix.
            // C[1,n] = op(A)[1,k] · op(B)[k,n]; row i of op(A) has stride lda when A is transposed.
            let incA = Int32(transA ? lda : 1)
            // Some BLAS versions compute 0·y for beta = 0 (NaN stays NaN): clear y first.
            if beta == 0 { c.update(repeating: 0, count: n) }
            if transB {  // B stored [n, k]: y = B · a
                tk_sgemv(0, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            } else {  // B stored [k, n]: y = Bᵀ · a
                tk_sgemv(1, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            }
            return
        }
        tk_sgemm(
            transA ? 1 : 0, transB ? 1 : 0, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// Array convenience used by checks and tests.
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: [Float], lda: Int, b: [Float], ldb: Int, beta: Float, c: inout [Float], ldc: Int
    ) {
        a.withUnsafeBufferPointer { pa in
            b.withUnsafeBufferPointer { pb in
                c.withUnsafeMutableBufferPointer { pc in
                    gemm(
                        transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha,
                        a: pa.baseAddress!, lda: lda, b: pb.baseAddress!, ldb: ldb, beta: beta,
                        c: pc.baseAddress!, ldc: ldc)
                }
            }
        }
    }
}
