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
            for row in r {
                let xr = px.pointer + row * c, yr = py.pointer + row * c
                let mean = Kernels.sum(xr, c) / Float(c)
                var v: Float = 0
                for j in 0..<c { let d = xr[j] - mean; v += d * d }
                let rstd = 1 / (v / Float(c) + eps).squareRoot()
                ps[2 * row] = mean
                ps[2 * row + 1] = rstd
                for j in 0..<c {
                    var n = (xr[j] - mean) * rstd
                    if let pw { n *= pw[j] }
                    if let pb { n += pb[j] }
                    yr[j] = n
                }
            }
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
                let gx = UnsafeSendablePointer(nx.gradBuffer())
                Parallel.forRange(rows, costPerItem: c * 6) { r in
                    for row in r {
                        let xr = px.pointer + row * c, gr = gp.pointer + row * c, dx = gx.pointer + row * c
                        let mean = ps[2 * row], rstd = ps[2 * row + 1]
                        // Two reductions, then one accumulation pass.
                        var sumDn: Float = 0, sumDnN: Float = 0
                        for j in 0..<c {
                            let n = (xr[j] - mean) * rstd
                            let dn = gr[j] * (pw?[j] ?? 1)
                            sumDn += dn
                            sumDnN += dn * n
                        }
                        let mDn = sumDn / Float(c), mDnN = sumDnN / Float(c)
                        for j in 0..<c {
                            let n = (xr[j] - mean) * rstd
                            let dn = gr[j] * (pw?[j] ?? 1)
                            dx[j] += rstd * (dn - mDn - n * mDnN)
                        }
                    }
                }
            }
            var k = 1
            if hasW {
                if let nw = nodes[k] {
                    let gw = UnsafeSendablePointer(nw.gradBuffer())
                    Parallel.forRange(c, costPerItem: rows * 2) { cr in
                        for row in 0..<rows {
                            let xr = px.pointer + row * c, gr = gp.pointer + row * c
                            let mean = ps[2 * row], rstd = ps[2 * row + 1]
                            for j in cr { gw[j] += gr[j] * (xr[j] - mean) * rstd }
                        }
                    }
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
            for row in r {
                let xr = px.pointer + row * c, yr = py.pointer + row * c
                let rstd = 1 / (Kernels.dot(xr, xr, c) / Float(c) + eps).squareRoot()
                pr[row] = rstd
                if let pw {
                    for j in 0..<c { yr[j] = (xr[j] * rstd) * pw[j] }
                } else {
                    for j in 0..<c { yr[j] = xr[j] * rstd }
                }
            }
        }
        var inputs = [x]
        if let weight { inputs.append(weight) }
        let keep = (x.storage, weight?.storage, rstdS)
        record(&out, inputs) { g, nodes in
            withExtendedLifetime(keep) {}
            let gp = UnsafeSendablePointer(g)
            if let nx = nodes[0] {
                let gx = UnsafeSendablePointer(nx.gradBuffer())
                Parallel.forRange(rows, costPerItem: c * 4) { r in
                    for row in r {
                        let xr = px.pointer + row * c, gr = gp.pointer + row * c, dx = gx.pointer + row * c
                        let rstd = pr[row]
                        var s: Float = 0
                        for j in 0..<c { s += gr[j] * (pw?[j] ?? 1) * xr[j] * rstd }
                        let m = s / Float(c)
                        for j in 0..<c {
                            let dn = gr[j] * (pw?[j] ?? 1)
                            dx[j] += rstd * (dn - xr[j] * rstd * m)
                        }
                    }
                }
            }
            if nodes.count > 1, let nw = nodes[1] {
                let gw = UnsafeSendablePointer(nw.gradBuffer())
                Parallel.forRange(c, costPerItem: rows * 2) { cr in
                    for row in 0..<rows {
                        let xr = px.pointer + row * c, gr = gp.pointer + row * c, rstd = pr[row]
                        for j in cr { gw[j] += gr[j] * xr[j] * rstd }
                    }
                }
            }
        }
        return out
    }
}
