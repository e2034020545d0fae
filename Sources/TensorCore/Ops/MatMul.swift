import CKernels

extension Tensor {
    /// Batched matrix product `op(A) · op(B)` through `cblas_sgemm`, with transposes as BLAS flags.
    ///
    /// Shapes: A `[..., M, K]` (or `[..., K, M]` with `transposeA`), B `[..., K, N]` (or
    /// `[..., N, K]` with `transposeB`). Batch dimensions must be equal, or one operand is 2-D and
    /// is shared by every batch. Result `[..., M, N]`.
    ///
    /// ```
    /// dA = dC · op(B)ᵀ   (stored back in A's layout)
    /// dB = op(A)ᵀ · dC   (stored back in B's layout)
    /// ```
    public func matmul(_ other: Tensor, transposeA: Bool = false, transposeB: Bool = false) throws -> Tensor {
        let a = self, b = other
        guard a.rank >= 2, b.rank >= 2 else {
            throw TensorError.shapeMismatch(op: "matmul", lhs: a.shape, rhs: b.shape)
        }
        let m = transposeA ? a.shape[a.rank - 1] : a.shape[a.rank - 2]
        let k = transposeA ? a.shape[a.rank - 2] : a.shape[a.rank - 1]
        let kb = transposeB ? b.shape[b.rank - 1] : b.shape[b.rank - 2]
        let n = transposeB ? b.shape[b.rank - 2] : b.shape[b.rank - 1]
        let batchA = Array(a.shape.dropLast(2)), batchB = Array(b.shape.dropLast(2))
        guard k == kb, batchA == batchB || batchA.isEmpty || batchB.isEmpty else {
            throw TensorError.shapeMismatch(op: "matmul", lhs: a.shape, rhs: b.shape)
        }
        let batchShape = batchA.isEmpty ? batchB : batchA
        let batches = Shape.count(batchShape)
        let strideA = batchA.isEmpty ? 0 : m * k, strideB = batchB.isEmpty ? 0 : k * n
        // Every element is written by a beta = 0 product (k = 0 is handled in BLAS.gemm).
        var out = Tensor(storage: TensorStorage(count: batches * m * n, zeroed: false), shape: batchShape + [m, n])
        let pa = a.storage.pointer, pb = b.storage.pointer, pc = out.storage.pointer
        let lda = transposeA ? m : k, ldb = transposeB ? k : n
        if strideB == 0 && !transposeA && batches > 1 {
            // Shared B: fold the batch into M for one large GEMM.
            BLAS.gemm(transA: false, transB: transposeB, m: batches * m, n: n, k: k, alpha: 1,
                      a: pa, lda: lda, b: pb, ldb: ldb, beta: 0, c: pc, ldc: n)
        } else {
            for i in 0..<batches {
                BLAS.gemm(transA: transposeA, transB: transposeB, m: m, n: n, k: k, alpha: 1,
                          a: pa + i * strideA, lda: lda, b: pb + i * strideB, ldb: ldb, beta: 0,
                          c: pc + i * m * n, ldc: n)
            }
        }
        let keep = (a.storage, b.storage)
        Tensor.record(&out, [a, b]) { g, nodes in
            withExtendedLifetime(keep) {}
            if let na = nodes[0] {
                let ga = na.gradBuffer()
                if strideB == 0 && !transposeA && batches > 1 {
                    // dA[(B·M), K] += dC[(B·M), N] · op(B)ᵀ
                    BLAS.gemm(transA: false, transB: !transposeB, m: batches * m, n: k, k: n, alpha: 1,
                              a: g, lda: n, b: pb, ldb: ldb, beta: 1, c: ga, ldc: k)
                } else {
                    for i in 0..<batches {
                        let gi = g + i * m * n, bi = pb + i * strideB, gai = ga + i * strideA
                        if !transposeA {
                            // dA[M,K] += dC[M,N] · op(B)ᵀ[N,K]
                            BLAS.gemm(transA: false, transB: !transposeB, m: m, n: k, k: n, alpha: 1,
                                      a: gi, lda: n, b: bi, ldb: ldb, beta: 1, c: gai, ldc: k)
                        } else {
                            // A stored [K,M]: dA += op(B)[K,N] · dCᵀ[N,M]
                            BLAS.gemm(transA: transposeB, transB: true, m: k, n: m, k: n, alpha: 1,
                                      a: bi, lda: ldb, b: gi, ldb: n, beta: 1, c: gai, ldc: m)
                        }
                    }
                }
            }
            if let nb = nodes[1] {
                let gb = nb.gradBuffer()
                for i in 0..<batches {
                    let gi = g + i * m * n, ai = pa + i * strideA, gbi = gb + i * strideB
                    if !transposeB {
                        // dB[K,N] += op(A)ᵀ[K,M] · dC[M,N]
                        BLAS.gemm(transA: !transposeA, transB: false, m: k, n: n, k: m, alpha: 1,
                                  a: ai, lda: lda, b: gi, ldb: n, beta: 1, c: gbi, ldc: n)
                    } else {
                        // B stored [N,K]: dB += dCᵀ[N,M] · op(A)[M,K]
                        BLAS.gemm(transA: true, transB: transposeA, m: n, n: k, k: m, alpha: 1,
                                  a: gi, lda: n, b: ai, ldb: lda, beta: 1, c: gbi, ldc: k)
                    }
                }
            }
        }
        return out
    }

    /// `x · Wᵀ + b` over the last axis: x `[..., in]`, W `[out, in]`, b `[out]` → `[..., out]`.
    /// One GEMM forward; backward computes dx, dW and db with beta = 1 accumulation.
    public static func linear(_ x: Tensor, weight w: Tensor, bias: Tensor? = nil) throws -> Tensor {
        guard x.rank >= 1, w.rank == 2, x.shape[x.rank - 1] == w.shape[1] else {
            throw TensorError.shapeMismatch(op: "linear", lhs: x.shape, rhs: w.shape)
        }
        let inF = w.shape[1], outF = w.shape[0]
        if let bias, bias.shape != [outF] {
            throw TensorError.shapeMismatch(op: "linear(bias)", lhs: w.shape, rhs: bias.shape)
        }
        let rows = x.count / Swift.max(inF, 1)
        var out = Tensor(storage: TensorStorage(count: rows * outF, zeroed: false), shape: Array(x.shape.dropLast()) + [outF])
        let px = x.storage.pointer, pw = w.storage.pointer, py = out.storage.pointer
        if let bias {
            // Each row starts as the bias; the GEMM then adds x · Wᵀ (beta = 1).
            let pbias = UnsafeSendablePointer(bias.storage.pointer), pout = UnsafeSendablePointer(py)
            Parallel.forRange(rows, costPerItem: outF) { r in
                for row in r { (pout.pointer + row * outF).update(from: pbias.pointer, count: outF) }
            }
        }
        BLAS.gemm(transA: false, transB: true, m: rows, n: outF, k: inF, alpha: 1, a: px, lda: inF,
                  b: pw, ldb: inF, beta: bias == nil ? 0 : 1, c: py, ldc: outF)
        var inputs = [x, w]
        if let bias { inputs.append(bias) }
        let keep = (x.storage, w.storage)
        record(&out, inputs) { g, nodes in
            withExtendedLifetime(keep) {}
            // dx[rows,in] += dY[rows,out] · W[out,in]
            // (A new gradient buffer is written with beta = 0 instead of being zeroed first.)
            let dx = nodes[0].map { nx in
                let (c, fresh) = nx.gradBufferForOverwrite()
                return BLAS.Product(transA: false, transB: false, m: rows, n: inF, k: outF, a: g, lda: outF,
                                    b: pw, ldb: inF, beta: fresh ? 0 : 1, c: c, ldc: inF)
            }
            // dW[out,in] += dYᵀ[out,rows] · x[rows,in]
            let dw = nodes[1].map { nw in
                let (c, fresh) = nw.gradBufferForOverwrite()
                return BLAS.Product(transA: true, transB: false, m: outF, n: inF, k: rows, a: g, lda: outF,
                                    b: px, ldb: inF, beta: fresh ? 0 : 1, c: c, ldc: inF)
            }
            BLAS.accumulate(dx, dw)
            if nodes.count > 2, let nb = nodes[2] {
                // db[out] += Σ_rows dY
                Kernels.addColumnSums(g, rows: rows, cols: outF, into: nb.gradBuffer())
            }
        }
        return out
    }
}
