import Foundation

/// Naive float64 reference kernels (row-major), the oracles for gradient checks.
public enum Reference {
    /// Row-major strides.
    public static func strides(_ s: [Int]) -> [Int] {
        var r = [Int](repeating: 1, count: s.count)
        var acc = 1
        for i in stride(from: s.count - 1, through: 0, by: -1) { r[i] = acc; acc *= s[i] }
        return r
    }

    /// Multi-index of a flat offset.
    public static func unravel(_ o: Int, _ shape: [Int]) -> [Int] {
        var idx = [Int](repeating: 0, count: shape.count)
        var rem = o
        for i in stride(from: shape.count - 1, through: 0, by: -1) where shape[i] > 0 {
            idx[i] = rem % shape[i]; rem /= shape[i]
        }
        return idx
    }

    /// NumPy-broadcast binary op.
    public static func broadcast(_ a: [Double], _ sa: [Int], _ b: [Double], _ sb: [Int], _ f: (Double, Double) -> Double) -> [Double] {
        let n = max(sa.count, sb.count)
        let pa = [Int](repeating: 1, count: n - sa.count) + sa, pb = [Int](repeating: 1, count: n - sb.count) + sb
        let out = (0..<n).map { max(pa[$0], pb[$0]) }
        let st = strides(out), sta = strides(pa), stb = strides(pb)
        let total = out.reduce(1, *)
        return (0..<total).map { o in
            var ia = 0, ib = 0, rem = o
            for d in 0..<n {
                let i = rem / st[d]; rem %= st[d]
                if pa[d] != 1 { ia += i * sta[d] }
                if pb[d] != 1 { ib += i * stb[d] }
            }
            return f(a[ia], b[ib])
        }
    }

    /// Reduction over `axes` with `f` (sum or max), keeping dims as size 1.
    public static func reduce(_ x: [Double], _ shape: [Int], axes: Set<Int>, initial: Double, _ f: (Double, Double) -> Double) -> [Double] {
        let keep = shape.enumerated().map { axes.contains($0.offset) ? 1 : $0.element }
        var out = [Double](repeating: initial, count: keep.reduce(1, *))
        let sk = strides(keep)
        for o in 0..<x.count {
            let idx = unravel(o, shape)
            var t = 0
            for d in 0..<shape.count where !axes.contains(d) { t += idx[d] * sk[d] }
            out[t] = f(out[t], x[o])
        }
        return out
    }

    /// C = op(A)·op(B) for one matrix pair.
    public static func matmul(_ a: [Double], _ b: [Double], m: Int, n: Int, k: Int, ta: Bool, tb: Bool) -> [Double] {
        var c = [Double](repeating: 0, count: m * n)
        for i in 0..<m { for j in 0..<n {
            var s = 0.0
            for p in 0..<k { s += (ta ? a[p * m + i] : a[i * k + p]) * (tb ? b[j * k + p] : b[p * n + j]) }
            c[i * n + j] = s
        } }
        return c
    }

    /// Applies `f` to each row of width `c`.
    public static func rows(_ x: [Double], _ c: Int, _ f: ([Double]) -> [Double]) -> [Double] {
        stride(from: 0, to: x.count, by: c).flatMap { f(Array(x[$0..<($0 + c)])) }
    }

    public static func softmax(_ r: [Double]) -> [Double] {
        let m = r.max() ?? 0
        let e = r.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    public static func logSumExp(_ r: [Double]) -> Double {
        let m = r.max() ?? 0
        return m + log(r.reduce(0) { $0 + exp($1 - m) })
    }

    public static func geluTanh(_ x: Double) -> Double {
        0.5 * x * (1 + tanh((2 / Double.pi).squareRoot() * (x + 0.044715 * x * x * x)))
    }
    public static func geluExact(_ x: Double) -> Double { 0.5 * x * (1 + erf(x / 2.0.squareRoot())) }
    public static func silu(_ x: Double) -> Double { x / (1 + exp(-x)) }
}
