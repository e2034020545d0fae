extension Tensor {
    /// Same values, new shape (shares storage). One dimension may be -1.
    public func reshaped(_ newShape: [Int]) throws -> Tensor {
        var s = newShape
        if let i = s.firstIndex(of: -1) {
            let rest = s.enumerated().filter { $0.offset != i }.reduce(1) { $0 * $1.element }
            guard rest > 0, count % rest == 0 else {
                throw TensorError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
            }
            s[i] = count / rest
        }
        guard s.allSatisfy({ $0 >= 0 }), Shape.count(s) == count else {
            throw TensorError.shapeMismatch(op: "reshape", lhs: shape, rhs: newShape)
        }
        var out = Tensor(storage: storage, shape: s)
        // The gradient is the output's gradient with the input's shape: the same buffer.
        Tensor.recordPassingGradient(&out, [self]) { g, nodes in nodes[0]!.accumulate(taking: g) }
        return out
    }

    /// Axes reordered: output axis i is input axis `perm[i]` (copies).
    public func permuted(_ perm: [Int]) throws -> Tensor {
        guard perm.count == rank, Set(perm) == Set(0..<rank) else {
            throw TensorError.invalidArgument(op: "permute", message: "\(perm) is not a permutation of the axes of \(shape)")
        }
        let outShape = perm.map { shape[$0] }
        let inStrides = Shape.strides(shape)
        // Input strides seen in output order: walk the output, gather from the input.
        let gatherStrides = perm.map { inStrides[$0] }
        var out = Tensor(storage: TensorStorage(count: count, zeroed: false), shape: outShape)
        Tensor.permuteCopy(src: storage.pointer, dst: out.storage.pointer, shape: outShape, srcStrides: gatherStrides, accumulate: false)
        Tensor.record(&out, [self]) { g, nodes in
            Tensor.permuteScatter(grad: g, into: nodes[0]!.gradBuffer(), shape: outShape, dstStrides: gatherStrides)
        }
        return out
    }

    /// Swaps two axes.
    public func transposed(_ a: Int = -2, _ b: Int = -1) throws -> Tensor {
        let x = try Shape.axis(a, rank: rank, op: "transpose"), y = try Shape.axis(b, rank: rank, op: "transpose")
        var p = Array(0..<rank)
        p.swapAt(x, y)
        return try permuted(p)
    }

    /// dst[o] (=|+=) src[gather(o)], walking `shape` in row-major order.
    static func permuteCopy(src: UnsafePointer<Float>, dst: UnsafeMutablePointer<Float>, shape: [Int], srcStrides: [Int], accumulate: Bool) {
        BroadcastWalker(stridesOut: shape, a: srcStrides).forEach { o, ia, _ in
            if accumulate { dst[o] += src[ia] } else { dst[o] = src[ia] }
        }
    }

    /// dx[gather(o)] += g[o].
    static func permuteScatter(grad g: UnsafePointer<Float>, into dx: UnsafeMutablePointer<Float>, shape: [Int], dstStrides: [Int]) {
        BroadcastWalker(stridesOut: shape, a: dstStrides).forEach { o, ia, _ in dx[ia] += g[o] }
    }

    /// Elements `range` along `axis` (copies).
    public func slice(axis: Int, _ range: Range<Int>) throws -> Tensor {
        let ax = try Shape.axis(axis, rank: rank, op: "slice")
        guard range.lowerBound >= 0, range.upperBound <= shape[ax] else {
            throw TensorError.invalidArgument(op: "slice", message: "range \(range) out of bounds for axis \(ax) of \(shape)")
        }
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        let n = shape[ax], m = range.count, lo = range.lowerBound
        var outShape = shape
        outShape[ax] = m
        var out = Tensor(storage: TensorStorage(count: outer * m * inner, zeroed: false), shape: outShape)
        let src = storage.pointer, dst = out.storage.pointer
        for o in 0..<outer {
            (dst + o * m * inner).update(from: src + (o * n + lo) * inner, count: m * inner)
        }
        Tensor.record(&out, [self]) { g, nodes in
            let gx = nodes[0]!.gradBuffer()
            for o in 0..<outer {
                let s = g + o * m * inner, d = gx + (o * n + lo) * inner
                for i in 0..<(m * inner) { d[i] += s[i] }
            }
        }
        return out
    }

    /// Concatenation along `axis`; all other dimensions must agree.
    public static func concat(_ parts: [Tensor], axis: Int) throws -> Tensor {
        guard let first = parts.first else {
            throw TensorError.invalidArgument(op: "concat", message: "no tensors")
        }
        let ax = try Shape.axis(axis, rank: first.rank, op: "concat")
        for p in parts {
            var a = p.shape, b = first.shape
            guard a.count == b.count else { throw TensorError.shapeMismatch(op: "concat", lhs: first.shape, rhs: p.shape) }
            a[ax] = 0; b[ax] = 0
            if a != b { throw TensorError.shapeMismatch(op: "concat", lhs: first.shape, rhs: p.shape) }
        }
        let outer = first.shape[..<ax].reduce(1, *), inner = first.shape[(ax + 1)...].reduce(1, *)
        let sizes = parts.map { $0.shape[ax] }
        let total = sizes.reduce(0, +)
        var outShape = first.shape
        outShape[ax] = total
        var out = Tensor(storage: TensorStorage(count: outer * total * inner, zeroed: false), shape: outShape)
        let dst = out.storage.pointer
        var offset = 0
        for (p, m) in zip(parts, sizes) {
            let src = p.storage.pointer
            for o in 0..<outer {
                (dst + (o * total + offset) * inner).update(from: src + o * m * inner, count: m * inner)
            }
            offset += m
        }
        record(&out, parts) { g, nodes in
            var offset = 0
            for (node, m) in zip(nodes, sizes) {
                defer { offset += m }
                guard let node else { continue }
                let gx = node.gradBuffer()
                for o in 0..<outer {
                    let s = g + (o * total + offset) * inner, d = gx + o * m * inner
                    for i in 0..<(m * inner) { d[i] += s[i] }
                }
            }
        }
        return out
    }

    /// Splits along `axis` into consecutive parts of the given sizes.
    public func split(axis: Int, sizes: [Int]) throws -> [Tensor] {
        let ax = try Shape.axis(axis, rank: rank, op: "split")
        guard sizes.reduce(0, +) == shape[ax], sizes.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(op: "split", message: "sizes \(sizes) do not add up to axis \(ax) of \(shape)")
        }
        var lo = 0
        return try sizes.map { s in
            defer { lo += s }
            return try slice(axis: ax, lo..<(lo + s))
        }
    }
}

extension BroadcastWalker {
    /// Walks `out` with one strided operand (the second stride set is unused).
    init(stridesOut out: [Int], a strides: [Int]) {
        shape = out
        sa = strides
        sb = [Int](repeating: 0, count: out.count)
    }
}
