@preconcurrency import CKernels

/// Dropout masks without stored masks: every mask bit is a hash of (seed, row, column)
/// (`tk_dropout_row` in CKernels), regenerated in the backward. A forward that is replayed with the
/// same seed (activation checkpointing) drops the same elements.
public enum Dropout {
    /// The probabilities a mask accepts: [0, 1).
    public static func check(_ p: Float, _ what: String) throws {
        guard p >= 0, p < 1 else {
            throw TensorError.invalidArgument(op: what, message: "dropout probability must be in [0, 1), got \(p)")
        }
    }

    /// 1 where mask row `row` of `seed` keeps columns `column ..< column + count`, else 0. Element
    /// i of `Tensor.dropout` is row i / 1024, column i % 1024; attention weight (b, h, i, j) is
    /// row (b·H + h)·Tq + i, column j.
    public static func keeps(seed: UInt64, row: UInt64, column: Int = 0, count: Int, p: Float) -> [Float] {
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { tk_dropout_mask(seed, row, UInt32(column), Int32(count), p, $0.baseAddress!) }
        return out
    }

    /// Mixes a seed with a site number (a layer and a place in it) into an independent seed.
    public static func seed(_ base: UInt64, _ site: UInt64) -> UInt64 {
        var g = SplitMix64(seed: base ^ (site &* 0xD6E8_FEB8_6659_FD93))
        return g.next()
    }
}

extension Tensor {
    /// Inverted dropout: each element is zeroed with probability `p` and the others are scaled by
    /// 1/(1 − p), so the expectation is `self`. The mask comes from `seed` (`Dropout`); the
    /// backward multiplies the gradient by the same mask. `p == 0` returns `self`.
    public func dropout(_ p: Float, seed: UInt64) throws -> Tensor {
        try Dropout.check(p, "dropout")
        guard p > 0, count > 0 else { return self }
        let scale = 1 / (1 - p), n = count
        var out = Tensor(storage: TensorStorage(count: n, zeroed: false), shape: shape)
        let px = UnsafeSendablePointer(storage.pointer), po = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(n, costPerItem: 8) { r in
            tk_dropout(px.pointer, po.pointer, r.lowerBound, r.upperBound, seed, p, scale, 0)
        }
        Tensor.record(&out, [self]) { g, nodes in
            // The same mask on the gradient, written into a new gradient buffer or added to one.
            let (gx, fresh) = nodes[0]!.gradBufferForOverwrite()
            let pg = UnsafeSendablePointer(g), pgx = UnsafeSendablePointer(gx)
            Parallel.forRange(n, costPerItem: 8) { r in
                tk_dropout(pg.pointer, pgx.pointer, r.lowerBound, r.upperBound, seed, p, scale, fresh ? 0 : 1)
            }
        }
        return out
    }
}
