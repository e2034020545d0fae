import CKernels

extension Tensor {
    /// LayerNorm over the last axis with optional affine weight and bias `[C]`.
    ///
    /// ```
    /// μ = mean(x), rstd = 1/√(var(x) + eps), n = (x − μ)·rstd, y = n·w + b
    /// dn = dy·w
    /// dx = rstd · (dn − mean(dn) − n·mean(dn·n))
    /// dw += Σ_rows dy·n,  db += Σ_rows dy
    /// ```
    public static func layerNorm(_ x: Tensor, weight: Tensor?, bias: Tensor?, eps: Float) throws -> Tensor {
        let (rows, c) = x.lastAxisRows
        for p in [weight, bias].compactMap({ $0 }) where p.shape != [c] {
            throw TensorError.shapeMismatch(op: "layerNorm", lhs: x.shape, rhs: p.shape)
        }
        var out = Tensor(storage: TensorStorage(count: x.count, zeroed: false), shape: x.shape)
        let stats = TensorStorage(count: rows * 2, zeroed: false)  // mean, rstd per row
        let px = UnsafeSendablePointer(x.storage.pointer), py = UnsafeSendablePointer(out.storage.pointer)
        let ps = UnsafeSendablePointer(stats.pointer)
        let pw = weight.map { UnsafeSendablePointer($0.storage.pointer) }
        let pb = bias.map { UnsafeSendablePointer($0.storage.pointer) }
        Parallel.forRange(rows, costPerItem: c * 4) { r in
            tk_layernorm_forward(px.pointer, pw?.pointer, pb?.pointer, eps, Int32(c), py.pointer, ps.pointer,
                                 Int32(r.lowerBound), Int32(r.upperBound))
        }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        if let bias { inputs.append(bias) }
        let hasW = weight != nil, hasB = bias != nil
        let keep = (x.storage, weight?.storage, stats)
        record(&out, inputs) { g, nodes in
            withExtendedLifetime(keep) {}
            let gp = UnsafeSendablePointer(g)
            if let nx = nodes[0] {
                let (buffer, fresh) = nx.gradBufferForOverwrite()
                let gx = UnsafeSendablePointer(buffer), accumulate: Int32 = fresh ? 0 : 1
                Parallel.forRange(rows, costPerItem: c * 6) { r in
                    tk_layernorm_backward(px.pointer, gp.pointer, pw?.pointer, ps.pointer, Int32(c), gx.pointer, accumulate,
                                          Int32(r.lowerBound), Int32(r.upperBound))
                }
            }
            var k = 1
            if hasW {
                if let nw = nodes[k] {
                    Kernels.addNormWeightGradient(x: px, g: gp, stats: ps, layerNorm: true, rows: rows, columns: c, into: nw.gradBuffer())
                }
                k += 1
            }
            if hasB, let nb = nodes[k] {
                Kernels.addColumnSums(g, rows: rows, cols: c, into: nb.gradBuffer())
            }
        }
        return out
    }

    /// RMSNorm over the last axis with HF semantics: normalise in Float32, then multiply by the
    /// weight (`Qwen3RMSNorm`, `LlamaRMSNorm`). Pass `weight: nil` for no affine scale.
    ///
    /// ```
    /// rstd = 1/√(mean(x²) + eps), n = x·rstd, y = n·w
    /// dn = dy·w
    /// dx = rstd · (dn − n·mean(dn·n))
    /// dw += Σ_rows dy·n
    /// ```
    public static func rmsNorm(_ x: Tensor, weight: Tensor?, eps: Float) throws -> Tensor {
        let (rows, c) = x.lastAxisRows
        if let weight, weight.shape != [c] {
            throw TensorError.shapeMismatch(op: "rmsNorm", lhs: x.shape, rhs: weight.shape)
        }
        var out = Tensor(storage: TensorStorage(count: x.count, zeroed: false), shape: x.shape)
        let rstdS = TensorStorage(count: rows, zeroed: false)
        let px = UnsafeSendablePointer(x.storage.pointer), py = UnsafeSendablePointer(out.storage.pointer)
        let pr = UnsafeSendablePointer(rstdS.pointer)
        let pw = weight.map { UnsafeSendablePointer($0.storage.pointer) }
        Parallel.forRange(rows, costPerItem: c * 3) { r in
            tk_rmsnorm_forward(px.pointer, pw?.pointer, eps, Int32(c), py.pointer, pr.pointer,
                               Int32(r.lowerBound), Int32(r.upperBound))
        }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        let keep = (x.storage, weight?.storage, rstdS)
        record(&out, inputs) { g, nodes in
            withExtendedLifetime(keep) {}
            let gp = UnsafeSendablePointer(g)
            if let nx = nodes[0] {
                let (buffer, fresh) = nx.gradBufferForOverwrite()
                let gx = UnsafeSendablePointer(buffer)
                Parallel.forRange(rows, costPerItem: c * 4) { r in
                    tk_rmsnorm_backward(px.pointer, gp.pointer, pw?.pointer, pr.pointer, Int32(c), gx.pointer, fresh ? 0 : 1,
                                        Int32(r.lowerBound), Int32(r.upperBound))
                }
            }
            if nodes.count > 1, let nw = nodes[1] {
                Kernels.addNormWeightGradient(x: px, g: gp, stats: pr, layerNorm: false, rows: rows, columns: c, into: nw.gradBuffer())
            }
        }
        return out
    }
}

extension Kernels {
    /// Rows per block of `addRowBlockSums` (fixed, so a sum does not depend on the cores).
    static let rowBlock = 256

    /// dst[j] += Σ_rows f(rows)[j] for a reduction over rows whose per-block part `partial(rows,
    /// into)` adds the rows' contributions into a zeroed row of `columns` floats: fixed blocks of
    /// `rowBlock` rows go in parallel, each reading whole rows, and their partial rows are then added
    /// in block order, so the result is the same on any number of cores. (Split by columns instead,
    /// QK-norm's 64-wide rows gave each worker 8 floats of every row.)
    static func addRowBlockSums(rows: Int, columns c: Int, into dst: UnsafeMutablePointer<Float>,
                                _ partial: @escaping @Sendable (_ rows: Range<Int>, _ into: UnsafeMutablePointer<Float>) -> Void) {
        let blocks = (rows + rowBlock - 1) / rowBlock
        guard blocks > 1 else { partial(0..<rows, dst); return }
        let partials = TensorStorage(count: blocks * c)
        let pp = UnsafeSendablePointer(partials.pointer)
        Parallel.forRange(blocks, costPerItem: rowBlock * c) { range in
            for block in range {
                let r0 = block * rowBlock
                partial(r0..<Swift.min(rows, r0 + rowBlock), pp.pointer + block * c)
            }
        }
        for block in 0..<blocks {
            let row = partials.pointer + block * c
            for j in 0..<c { dst[j] += row[j] }
        }
    }

    /// A norm's weight gradient, gw[j] += Σ_rows g[row, j] · x̂[row, j], with x̂ the normalised
    /// input (`stats`: LayerNorm's (mean, rstd) pairs or RMSNorm's rstd per row).
    static func addNormWeightGradient(x: UnsafeSendablePointer<Float>, g: UnsafeSendablePointer<Float>, stats: UnsafeSendablePointer<Float>,
                                      layerNorm: Bool, rows: Int, columns c: Int, into gw: UnsafeMutablePointer<Float>) {
        let kind: Int32 = layerNorm ? 1 : 0, statsPerRow = layerNorm ? 2 : 1
        addRowBlockSums(rows: rows, columns: c, into: gw) { r, into in
            tk_norm_weight_grad(x.pointer + r.lowerBound * c, g.pointer + r.lowerBound * c, stats.pointer + r.lowerBound * statsPerRow,
                                kind, Int32(r.count), Int32(c), into)
        }
    }

    /// dst[c] += Σ_r src[r, c] (a bias gradient).
    public static func addColumnSums(_ src: UnsafePointer<Float>, rows: Int, cols: Int, into dst: UnsafeMutablePointer<Float>) {
        let s = UnsafeSendablePointer(UnsafeMutablePointer(mutating: src))
        addRowBlockSums(rows: rows, columns: cols, into: dst) { r, into in
            tk_add_column_sums(s.pointer + r.lowerBound * cols, Int32(r.count), Int32(cols), into)
        }
    }
}
