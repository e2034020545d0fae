import COpenBLAS

/// Thin wrappers over `cblas_sgemm` (row-major). No copies: transposes are BLAS flags.
public enum BLAS {
    /// C[m,n] = alpha · op(A) · op(B) + beta · C, row-major, with op = transpose when flagged.
    /// A is stored [m,k] (or [k,m] when `transA`), B is [k,n] (or [n,k] when `transB`).
    @inlinable
    public static func gemm(
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
