extension Tensor {
    /// Shape with the reduced axes set to 1, plus the normalised axis set.
    private func reducedShape(_ axes: [Int], op: String) throws -> (keep: [Int], axes: Set<Int>) {
        var set = Set<Int>()
        for a in axes { set.insert(try Shape.axis(a, rank: rank, op: op)) }
        let keep = shape.enumerated().map { set.contains($0.offset) ? 1 : $0.element }
        return (keep, set)
    }

    private func finalShape(keep: [Int], axes: Set<Int>, keepDims: Bool) -> [Int] {
        keepDims ? keep : keep.enumerated().filter { !axes.contains($0.offset) }.map(\.element)
    }

    /// Sum over `axes` (all axes when empty is not intended: pass them explicitly, or use `sum()`).
    public func sum(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let (keep, set) = try reducedShape(axes, op: "sum")
        var out = Tensor(zeros: finalShape(keep: keep, axes: set, keepDims: keepDims))
        let px = storage.pointer, po = out.storage.pointer
        if set == [rank - 1], rank >= 1 {
            // Contiguous rows: one SIMD-friendly reduction per row, rows in parallel.
            let c = shape[rank - 1], rows = count / Swift.max(c, 1)
            let sx = UnsafeSendablePointer(px), so = UnsafeSendablePointer(po)
            Parallel.forRange(rows, costPerItem: c) { r in
                for row in r { so[row] = Kernels.sum(sx.pointer + row * c, c) }
            }
        } else {
            BroadcastWalker(out: shape, a: keep, b: shape).forEach { o, ia, _ in po[ia] += px[o] }
        }
        let inShape = shape
        Tensor.record(&out, [self]) { g, nodes in
            let gx = nodes[0]!.gradBuffer()
            BroadcastWalker(out: inShape, a: keep, b: inShape).forEach { o, ia, _ in gx[o] += g[ia] }
        }
        return out
    }

    /// Sum of all elements (a scalar).
    public func sum() -> Tensor {
        // Cannot fail: every axis is in range.
        (try? reshaped([count]).sum(axes: [0])) ?? Tensor(scalar: 0)
    }

    /// Mean over `axes`.
    public func mean(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let (_, set) = try reducedShape(axes, op: "mean")
        let n = set.reduce(1) { $0 * shape[$1] }
        return try sum(axes: axes, keepDims: keepDims) * (1 / Float(Swift.max(n, 1)))
    }

    /// Mean of all elements.
    public func mean() -> Tensor { sum() * (1 / Float(Swift.max(count, 1))) }

    /// Maximum over `axes`; the gradient flows to the first maximal element.
    public func max(axes: [Int], keepDims: Bool = false) throws -> Tensor {
        let (keep, set) = try reducedShape(axes, op: "max")
        guard shape.enumerated().allSatisfy({ !set.contains($0.offset) || $0.element > 0 }) else {
            throw TensorError.invalidArgument(op: "max", message: "reducing an empty axis of \(shape)")
        }
        var out = Tensor(shape: finalShape(keep: keep, axes: set, keepDims: keepDims), repeating: -.infinity)
        let argmax = UnsafeMutablePointer<Int>.allocate(capacity: out.count)
        argmax.initialize(repeating: -1, count: out.count)
        let px = storage.pointer, po = out.storage.pointer
        BroadcastWalker(out: shape, a: keep, b: shape).forEach { o, ia, _ in
            if px[o] > po[ia] || argmax[ia] < 0 { po[ia] = px[o]; argmax[ia] = o }
        }
        let box = IndexBox(argmax, count: out.count)
        Tensor.record(&out, [self]) { g, nodes in
            let gx = nodes[0]!.gradBuffer()
            for i in 0..<box.count { gx[box.pointer[i]] += g[i] }
        }
        if out.node == nil { box.release() }
        return out
    }
}

/// Owns an index buffer captured by a backward closure.
final class IndexBox: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Int>
    let count: Int
    private var released = false
    init(_ p: UnsafeMutablePointer<Int>, count: Int) { pointer = p; self.count = count }
    func release() { if !released { pointer.deallocate(); released = true } }
    deinit { release() }
}

/// Small numeric kernels shared by ops (raw pointers, vectorisable).
public enum Kernels {
    /// Sum of n floats with 16 independent accumulators (vectorises; not strict left-to-right order).
    @inline(__always) public static func sum(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let raw = UnsafeRawPointer(x)
        while i + 16 <= n {
            acc += raw.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        while i < n { s += x[i]; i += 1 }
        return s
    }

    /// Dot product of two float vectors.
    @inline(__always) public static func dot(_ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>, _ n: Int) -> Float {
        var acc = SIMD16<Float>()
        var i = 0
        let rx = UnsafeRawPointer(x), ry = UnsafeRawPointer(y)
        while i + 16 <= n {
            acc += rx.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
                * ry.loadUnaligned(fromByteOffset: i * 4, as: SIMD16<Float>.self)
            i += 16
        }
        var s = acc.sum()
        while i < n { s += x[i] * y[i]; i += 1 }
        return s
    }

    /// Maximum of n floats (n > 0).
    @inline(__always) public static func max(_ x: UnsafePointer<Float>, _ n: Int) -> Float {
        var m = -Float.infinity
        for i in 0..<n where x[i] > m { m = x[i] }
        return m
    }
}
