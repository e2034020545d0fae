import CKernels

/// Rotary embedding layouts.
public enum RoPELayout: String, Sendable, Codable, CaseIterable {
    /// HF/Qwen/NeoX `rotate_half`: pairs (i, i + r/2).
    case half
    /// RoFormer/Meta: pairs (2i, 2i + 1).
    case interleaved
}

extension Tensor {
    /// Rotary position embedding on x `[B, T, H, D]` at positions `offset ..< offset+T`.
    ///
    /// `cos`, `sin` are `[P, r/2]` tables (one column per frequency, already multiplied by any
    /// attention factor such as YaRN's); the first `r` dims of each head rotate, the rest pass through.
    /// ```
    /// half:        x'_i = x_i·cos φ_i − x_{i+r/2}·sin φ_i,   x'_{i+r/2} = x_{i+r/2}·cos φ_i + x_i·sin φ_i
    /// interleaved: x'_{2i} = x_{2i}·cos φ_i − x_{2i+1}·sin φ_i, x'_{2i+1} = x_{2i+1}·cos φ_i + x_{2i}·sin φ_i
    /// backward:    the transposed rotation (φ → −φ)
    /// ```
    public static func rope(_ x: Tensor, cos: Tensor, sin: Tensor, offset: Int, layout: RoPELayout) throws -> Tensor {
        guard x.rank == 4, cos.rank == 2, cos.shape == sin.shape else {
            throw TensorError.shapeMismatch(op: "rope", lhs: x.shape, rhs: cos.shape)
        }
        let (b, t, h, d) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
        let half = cos.shape[1], r = 2 * half
        guard r <= d else { throw TensorError.shapeMismatch(op: "rope(rotary dims)", lhs: x.shape, rhs: cos.shape) }
        guard offset >= 0, offset + t <= cos.shape[0] else {
            throw TensorError.invalidArgument(
                op: "rope", message: "positions \(offset)..<\(offset + t) exceed the table of \(cos.shape[0])")
        }
        var out = Tensor(storage: TensorStorage(count: x.count, zeroed: false), shape: x.shape)
        let px = UnsafeSendablePointer(x.storage.pointer), po = UnsafeSendablePointer(out.storage.pointer)
        let pc = UnsafeSendablePointer(cos.storage.pointer), ps = UnsafeSendablePointer(sin.storage.pointer)
        let interleaved = layout == .interleaved
        // dir = +1 forward, −1 backward (transpose of the rotation).
        @Sendable func rotate(_ srcPtr: UnsafePointer<Float>, _ dstPtr: UnsafeMutablePointer<Float>, dir: Float, accumulate: Bool) {
            let src = UnsafeSendablePointer(UnsafeMutablePointer(mutating: srcPtr)), dst = UnsafeSendablePointer(dstPtr)
            Parallel.forRange(b * t, costPerItem: h * d * 2) { rows in
                tk_rope_rows(src.pointer, dst.pointer, pc.pointer, ps.pointer, Int32(t), Int32(h), Int32(d), Int32(half), Int32(offset),
                             interleaved ? 1 : 0, dir, accumulate ? 1 : 0, Int32(rows.lowerBound), Int32(rows.upperBound))
            }
        }
        rotate(px.pointer, po.pointer, dir: 1, accumulate: false)
        let keep = (cos.storage, sin.storage)
        record(&out, [x]) { g, nodes in
            withExtendedLifetime(keep) {}
            let (gx, fresh) = nodes[0]!.gradBufferForOverwrite()
            rotate(g, gx, dir: -1, accumulate: !fresh)
        }
        return out
    }

    /// Rows of a 2-D tensor by index (`index_select` on axis 0); repeated indices accumulate in backward.
    public func gatherRows(_ indices: [Int32]) throws -> Tensor {
        try Tensor.embedding(self, ids: indices, shape: [indices.count])
    }

    /// `out[indices[i]] += values[i]` into a zero `[rows, C]` tensor (`index_add` on axis 0).
    public static func scatterAddRows(_ values: Tensor, indices: [Int32], rows: Int) throws -> Tensor {
        guard values.rank == 2, values.shape[0] == indices.count else {
            throw TensorError.shapeMismatch(op: "scatterAddRows", lhs: values.shape, rhs: [indices.count])
        }
        if let bad = indices.first(where: { $0 < 0 || Int($0) >= rows }) {
            throw TensorError.invalidArgument(op: "scatterAddRows", message: "row index \(bad) outside 0..<\(rows)")
        }
        let c = values.shape[1]
        var out = Tensor(zeros: [rows, c])
        let pv = values.storage.pointer, po = out.storage.pointer
        for (i, idx) in indices.enumerated() {
            let d = po + Int(idx) * c, s = pv + i * c
            for j in 0..<c { d[j] += s[j] }
        }
        record(&out, [values]) { g, nodes in
            let gv = nodes[0]!.gradBuffer()
            for (i, idx) in indices.enumerated() {
                let d = gv + i * c, s = g + Int(idx) * c
                for j in 0..<c { d[j] += s[j] }
            }
        }
        return out
    }
}
