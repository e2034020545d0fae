import COpenBLAS
import Dispatch

/// Thin wrappers over `cblas_sgemm` (row-major). No copies: transposes are BLAS flags.
///
/// Threading is ours, not OpenBLAS's: OpenBLAS runs single-threaded (`BLASRuntime` sets it), and a
/// large product is cut into `threads` contiguous blocks of rows of C (or of columns, when C has
/// few rows), each computed by one single-threaded `cblas_sgemm` on its own core. On 2 cores this
/// measured 10–45 % faster than OpenBLAS's own two threads on the training shapes (2048×384·384ᵀ:
/// 4.5 → 3.4 ms; 2048×384·128ᵀ: 2.2 → 1.2 ms), and with no BLAS threads spinning between calls our
/// elementwise loops get both cores back.
public enum BLAS {
    /// Blocks a large product is split into (default: `Parallel.workers`; `BLASRuntime.setThreads`).
    /// Its first use also makes OpenBLAS itself single-threaded, before any product runs.
    nonisolated(unsafe) public static var threads: Int = {
        openblas_set_num_threads(1)
        return Parallel.workers
    }()

    /// Multiply-adds (m·n·k) below which a product runs on the calling thread only (~20 µs).
    nonisolated(unsafe) public static var minimumSplitWork = 1 << 21

    /// C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, with op = transpose when flagged.
    /// A is stored [m,k] (or [k,m] when `transA`), B is [k,n] (or [n,k] when `transB`).
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        gemm(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda, b: b, ldb: ldb,
             beta: beta, c: c, ldc: ldc, parts: threads, minimumWork: minimumSplitWork)
    }

    /// `gemm` split into at most `parts` blocks when m·n·k ≥ `minimumWork` (tests force the split).
    @inlinable
    public static func gemm(
        transA: Bool, transB: Bool, m: Int, n: Int, k: Int, alpha: Float,
        a: UnsafePointer<Float>, lda: Int, b: UnsafePointer<Float>, ldb: Int,
        beta: Float, c: UnsafeMutablePointer<Float>, ldc: Int, parts: Int, minimumWork: Int
    ) {
        guard parts > 1, m &* n &* k >= minimumWork else {
            gemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        // Blocks are multiples of 16 rows/columns (whole micro-tiles, 64-byte aligned columns).
        let unit = 16
        let byRows = m >= parts * unit * 2 || m >= n
        let extent = byRows ? m : n
        let blocks = min(parts, max(1, extent / unit))
        guard blocks > 1 else {
            gemmSerial(transA: transA, transB: transB, m: m, n: n, k: k, alpha: alpha, a: a, lda: lda,
                       b: b, ldb: ldb, beta: beta, c: c, ldc: ldc)
            return
        }
        let size = ((extent + blocks - 1) / blocks + unit - 1) / unit * unit
        let pa = UnsafeSendablePointer(UnsafeMutablePointer(mutating: a))
        let pb = UnsafeSendablePointer(UnsafeMutablePointer(mutating: b))
        let pc = UnsafeSendablePointer(c)
        DispatchQueue.concurrentPerform(iterations: blocks) { i in
            let lo = i * size, hi = min(extent, lo + size)
            guard lo < hi else { return }
            if byRows {
                // Rows lo..<hi of C need rows lo..<hi of op(A).
                let ai = transA ? pa.pointer + lo : pa.pointer + lo * lda
                gemmSerial(transA: transA, transB: transB, m: hi - lo, n: n, k: k, alpha: alpha, a: ai, lda: lda,
                           b: pb.pointer, ldb: ldb, beta: beta, c: pc.pointer + lo * ldc, ldc: ldc)
            } else {
                // Columns lo..<hi of C need columns lo..<hi of op(B).
                let bi = transB ? pb.pointer + lo * ldb : pb.pointer + lo
                gemmSerial(transA: transA, transB: transB, m: m, n: hi - lo, k: k, alpha: alpha, a: pa.pointer, lda: lda,
                           b: bi, ldb: ldb, beta: beta, c: pc.pointer + lo, ldc: ldc)
            }
        }
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
                cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            } else {  // B stored [k, n]: y = Bᵀ · a
                cblas_sgemv(CblasRowMajor, CblasTrans, Int32(k), Int32(n), alpha, b, Int32(ldb), a, incA, beta, c, 1)
            }
            return
        }
        cblas_sgemm(
            CblasRowMajor, transA ? CblasTrans : CblasNoTrans, transB ? CblasTrans : CblasNoTrans,
            Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
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
