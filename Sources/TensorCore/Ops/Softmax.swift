@preconcurrency import CKernels
import Foundation

extension Tensor {
    /// Rows of the last axis: (rows, width).
    var lastAxisRows: (rows: Int, width: Int) {
        let c = shape.last ?? 1
        return (c == 0 ? 0 : count / c, c)
    }

    /// Softmax over the last axis.
    ///
    /// ```
    /// y = exp(x − max x) / Σ exp(x − max x)
    /// dx = y ∘ (dy − Σ dy∘y)
    /// ```
    public func softmax() -> Tensor {
        let (rows, c) = lastAxisRows
        var out = Tensor(storage: TensorStorage(count: count, zeroed: false), shape: shape)
        let px = UnsafeSendablePointer(storage.pointer), py = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(rows, costPerItem: c * 8) { r in
            tk_softmax_rows(px.pointer, py.pointer, Int32(c), Int32(r.lowerBound), Int32(r.upperBound))
        }
        let y = out.storage
        Tensor.record(&out, [self]) { g, nodes in
            let gx = UnsafeSendablePointer(nodes[0]!.gradBuffer()), gp = UnsafeSendablePointer(g)
            let yp = UnsafeSendablePointer(y.pointer)
            Parallel.forRange(rows, costPerItem: c * 3) { r in
                for row in r {
                    let yr = yp.pointer + row * c, gr = gp.pointer + row * c, dx = gx.pointer + row * c
                    let s = Kernels.dot(yr, gr, c)
                    for j in 0..<c { dx[j] += yr[j] * (gr[j] - s) }
                }
            }
        }
        return out
    }

    /// Log-softmax over the last axis.
    ///
    /// ```
    /// y = x − logsumexp(x)
    /// dx = dy − softmax(x) · Σ dy
    /// ```
    public func logSoftmax() -> Tensor {
        let (rows, c) = lastAxisRows
        var out = Tensor(storage: TensorStorage(count: count, zeroed: false), shape: shape)
        let px = UnsafeSendablePointer(storage.pointer), py = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(rows, costPerItem: c * 8) { r in
            for row in r {
                let xr = px.pointer + row * c, yr = py.pointer + row * c
                var lse: Float = 0
                tk_logsumexp_rows(xr, &lse, Int32(c), 0, 1)
                for j in 0..<c { yr[j] = xr[j] - lse }
            }
        }
        let y = out.storage
        Tensor.record(&out, [self]) { g, nodes in
            let gx = UnsafeSendablePointer(nodes[0]!.gradBuffer()), gp = UnsafeSendablePointer(g)
            let yp = UnsafeSendablePointer(y.pointer)
            Parallel.forRange(rows, costPerItem: c * 8) { r in
                for row in r {
                    let yr = yp.pointer + row * c, gr = gp.pointer + row * c, dx = gx.pointer + row * c
                    let s = Kernels.sum(gr, c)
                    for j in 0..<c { dx[j] += gr[j] - Foundation.exp(yr[j]) * s }
                }
            }
        }
        return out
    }

    /// Mean cross-entropy of `logits` `[..., V]` against integer `targets` (one per row);
    /// rows whose target equals `ignoreIndex` are skipped, as in `torch.nn.functional.cross_entropy`.
    /// The mean is over the counted rows (NaN when none, as in PyTorch).
    ///
    /// Fused: forward keeps only the per-row log-sum-exp; backward recomputes
    /// `dlogits = (softmax − onehot) · dLoss / count` without another copy of the logits.
    public static func crossEntropy(logits: Tensor, targets: [Int32], ignoreIndex: Int32 = -100) throws -> Tensor {
        let (rows, v) = logits.lastAxisRows
        guard targets.count == rows else {
            throw TensorError.shapeMismatch(op: "crossEntropy", lhs: logits.shape, rhs: [targets.count])
        }
        if let bad = targets.first(where: { $0 != ignoreIndex && ($0 < 0 || Int($0) >= v) }) {
            throw TensorError.invalidArgument(op: "crossEntropy", message: "target \(bad) outside 0..<\(v)")
        }
        let lse = TensorStorage(count: rows, zeroed: false)
        let losses = TensorStorage(count: rows)
        let px = UnsafeSendablePointer(logits.storage.pointer)
        let pl = UnsafeSendablePointer(lse.pointer), pls = UnsafeSendablePointer(losses.pointer)
        let pt = TargetBox(targets)
        Parallel.forRange(rows, costPerItem: v * 8) { r in
            tk_cross_entropy_forward(px.pointer, pt.pointer, ignoreIndex, Int32(v), pl.pointer, pls.pointer,
                                     Int32(r.lowerBound), Int32(r.upperBound))
        }
        let counted = targets.reduce(0) { $0 + ($1 == ignoreIndex ? 0 : 1) }
        var total = 0.0
        for i in 0..<rows { total += Double(pls[i]) }
        var out = Tensor(scalar: counted == 0 ? .nan : Float(total / Double(counted)))
        let keep = (logits.storage, lse)
        record(&out, [logits]) { g, nodes in
            withExtendedLifetime(keep) {}
            guard counted > 0 else { return }
            let scale = g[0] / Float(counted)
            let (buffer, fresh) = nodes[0]!.gradBufferForOverwrite()
            let gx = UnsafeSendablePointer(buffer)
            withExtendedLifetime(pt) {}
            Parallel.forRange(rows, costPerItem: v * 8) { r in
                tk_cross_entropy_backward(px.pointer, pt.pointer, ignoreIndex, Int32(v), pl.pointer, scale, gx.pointer, fresh ? 0 : 1,
                                          Int32(r.lowerBound), Int32(r.upperBound))
            }
        }
        return out
    }
}

/// Targets as a C int array kept alive for a backward closure.
final class TargetBox: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int32>
    init(_ values: [Int32]) {
        pointer = .allocate(capacity: max(values.count, 1))
        values.withUnsafeBufferPointer { if let b = $0.baseAddress { pointer.update(from: b, count: values.count) } }
    }
    deinit { pointer.deallocate() }
}
