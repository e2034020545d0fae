/// Errors from tensor operations on user-provided shapes or values.
public enum TensorError: Error, CustomStringConvertible, Equatable {
    /// Two shapes that an operation cannot combine; names both.
    case shapeMismatch(op: String, lhs: [Int], rhs: [Int])
    /// A shape or argument that is invalid for an operation.
    case invalidArgument(op: String, message: String)

    public var description: String {
        switch self {
        case .shapeMismatch(let op, let lhs, let rhs):
            return "\(op): shape mismatch \(lhs) vs \(rhs)"
        case .invalidArgument(let op, let message):
            return "\(op): \(message)"
        }
    }
}

/// Shape helpers (row-major, contiguous).
public enum Shape {
    /// Number of elements of a shape (1 for a scalar `[]`).
    @inlinable public static func count(_ shape: [Int]) -> Int { shape.reduce(1, *) }

    /// Row-major strides.
    @inlinable public static func strides(_ shape: [Int]) -> [Int] {
        var s = [Int](repeating: 1, count: shape.count)
        var acc = 1
        for i in stride(from: shape.count - 1, through: 0, by: -1) {
            s[i] = acc
            acc *= shape[i]
        }
        return s
    }

    /// NumPy broadcasting of two shapes, or nil when incompatible.
    public static func broadcast(_ a: [Int], _ b: [Int]) -> [Int]? {
        let n = max(a.count, b.count)
        var out = [Int](repeating: 1, count: n)
        for i in 0..<n {
            let da = i < n - a.count ? 1 : a[i - (n - a.count)]
            let db = i < n - b.count ? 1 : b[i - (n - b.count)]
            if da == db || db == 1 {
                out[i] = da
            } else if da == 1 {
                out[i] = db
            } else {
                return nil
            }
        }
        return out
    }

    /// Strides of `shape` seen through the broadcast `outShape` (0 on broadcast axes).
    static func broadcastStrides(_ shape: [Int], to outShape: [Int]) -> [Int] {
        let own = strides(shape)
        let lead = outShape.count - shape.count
        return (0..<outShape.count).map { i in
            i < lead ? 0 : (shape[i - lead] == 1 && outShape[i] != 1 ? 0 : own[i - lead])
        }
    }

    /// Normalises a possibly negative axis; throws when out of range.
    static func axis(_ axis: Int, rank: Int, op: String) throws -> Int {
        let a = axis < 0 ? axis + rank : axis
        guard a >= 0, a < max(rank, 1) else {
            throw TensorError.invalidArgument(op: op, message: "axis \(axis) out of range for rank \(rank)")
        }
        return a
    }
}

/// Walks the elements of a broadcast result in row-major order, yielding the flat offsets of the
/// output and of the two operands.
@usableFromInline struct BroadcastWalker {
    let shape: [Int]
    let sa: [Int]
    let sb: [Int]

    init(out: [Int], a: [Int], b: [Int]) {
        shape = out
        sa = Shape.broadcastStrides(a, to: out)
        sb = Shape.broadcastStrides(b, to: out)
    }

    @inline(__always) func forEach(_ body: (Int, Int, Int) -> Void) {
        let n = Shape.count(shape)
        if n == 0 { return }
        let r = shape.count
        if r == 0 { body(0, 0, 0); return }
        var idx = [Int](repeating: 0, count: r)
        var oa = 0, ob = 0
        let last = r - 1
        let lastN = shape[last], lastA = sa[last], lastB = sb[last]
        var o = 0
        while o < n {
            var ia = oa, ib = ob
            for _ in 0..<lastN {
                body(o, ia, ib)
                o += 1; ia += lastA; ib += lastB
            }
            // Advance the odometer over the leading axes.
            var d = last - 1
            while d >= 0 {
                idx[d] += 1
                oa += sa[d]; ob += sb[d]
                if idx[d] < shape[d] { break }
                oa -= sa[d] * shape[d]; ob -= sb[d] * shape[d]
                idx[d] = 0
                d -= 1
            }
            if d < 0 { break }
        }
    }
}
