import Layers
import Optimizers
import TensorCore
import Testing
import _TestSupport

/// Muon on shapes the fixture does not cover (wide, square), against a float64 reference.
@Suite struct MuonTests {
    /// One Muon step in Double for a [rows, cols] matrix; returns the new values and buffer.
    static func referenceStep(
        p: [Double], g: [Double], buf: [Double], rows: Int, cols: Int, lr: Double, wd: Double,
        mu: Double, nesterov: Bool, scale: Double
    ) -> (p: [Double], buf: [Double]) {
        let newBuf = zip(buf, g).map { mu * $0 + (1 - mu) * $1 }
        let u = nesterov ? zip(g, newBuf).map { (1 - mu) * $0 + mu * $1 } : newBuf
        let t = rows > cols
        let m = min(rows, cols)
        let n = max(rows, cols)
        var x = [Double](repeating: 0, count: m * n)
        for i in 0..<rows {
            for j in 0..<cols { x[t ? j * rows + i : i * cols + j] = u[i * cols + j] }
        }
        let norm = max(x.reduce(0) { $0 + $1 * $1 }.squareRoot(), 1e-7)
        x = x.map { $0 / norm }
        func mul(_ a: [Double], _ b: [Double], _ r: Int, _ k: Int, _ c: Int) -> [Double] {
            var out = [Double](repeating: 0, count: r * c)
            for i in 0..<r {
                for l in 0..<k { for j in 0..<c { out[i * c + j] += a[i * k + l] * b[l * c + j] } }
            }
            return out
        }
        for _ in 0..<5 {
            var xt = [Double](repeating: 0, count: m * n)
            for i in 0..<m { for j in 0..<n { xt[j * m + i] = x[i * n + j] } }
            let a = mul(x, xt, m, n, m)
            let aa = mul(a, a, m, m, m)
            let b = zip(a, aa).map { -4.7750 * $0 + 2.0315 * $1 }
            let bx = mul(b, x, m, m, n)
            x = zip(x, bx).map { 3.4445 * $0 + $1 }
        }
        var out = p.map { $0 * (1 - lr * wd) }
        for i in 0..<rows {
            for j in 0..<cols {
                out[i * cols + j] -= lr * scale * x[t ? j * rows + i : i * cols + j]
            }
        }
        return (out, newBuf)
    }

    @Test(arguments: [(8, 16, true), (12, 12, false), (20, 6, true)])
    func matchesFloat64Reference(_ shape: (Int, Int, Bool)) throws {
        let (rows, cols, nesterov) = shape
        var rng = SplitMix64(seed: UInt64(rows * 100 + cols))
        let w = Parameter(Tensor.randn([rows, cols], std: 0.5, rng: &rng))
        let target = Tensor.randn([rows, cols], rng: &rng)
        for adjustment in [Muon.LearningRateAdjustment.original, .matchRMSAdamW] {
            try w.assign(Tensor.randn([rows, cols], std: 0.5, rng: &rng))
            let muon = try Muon(
                [("w", w)], learningRate: 0.05, weightDecay: 0.1, momentum: 0.9, nesterov: nesterov,
                adjustment: adjustment)
            var p = values(w).map(Double.init)
            var buf = [Double](repeating: 0, count: rows * cols)
            var worst = 0.0
            for _ in 0..<3 {
                w.zeroGrad()
                // L = Σ (w − target)²  ⇒  g = 2·(w − target)
                let d = try w.value - target
                try (d * d).sum().backward()
                let g = try #require(w.grad).scalars.map(Double.init)
                try muon.step()
                (p, buf) = Self.referenceStep(
                    p: p, g: g, buf: buf, rows: rows, cols: cols, lr: 0.05, wd: 0.1, mu: 0.9,
                    nesterov: nesterov, scale: muon.learningRateScale(rows: rows, cols: cols))
                worst = max(worst, maxAbsDifference(values(w), p.map(Float.init)))
                p = values(w).map(Double.init)  // follow the Float32 trajectory
            }
            #expect(worst < Tolerance.Optimizer.muonStepVsFloat64, "\(rows)x\(cols) \(adjustment): \(worst)")
        }
        let scale = try Muon([("w", w)], adjustment: .matchRMSAdamW).learningRateScale(
            rows: rows, cols: cols)
        #expect(abs(scale - 0.2 * Double(max(rows, cols)).squareRoot()) < Tolerance.double)
    }

    /// After five iterations the singular values lie roughly in [0.5, 1.5] (not exactly 1).
    @Test func newtonSchulzApproximatelyOrthogonalises() throws {
        var rng = SplitMix64(seed: 7)
        let m = 6
        let n = 10
        var x = Tensor.randn([m, n], rng: &rng).scalars
        var scratch = [Float](repeating: 0, count: m * n)
        var gram = [Float](repeating: 0, count: m * m)
        var poly = gram
        x.withUnsafeMutableBufferPointer { xp in
            scratch.withUnsafeMutableBufferPointer { sp in
                gram.withUnsafeMutableBufferPointer { gp in
                    poly.withUnsafeMutableBufferPointer { pp in
                        NewtonSchulz.orthogonalize(
                            xp.baseAddress!, m: m, n: n, coefficients: (3.4445, -4.7750, 2.0315),
                            steps: 5,
                            epsilon: 1e-7, scratch: sp.baseAddress!, gram: gp.baseAddress!,
                            polynomial: pp.baseAddress!)
                    }
                }
            }
        }
        // Diagonal of X·Xᵀ = squared row norms ≈ squared singular values in a random basis.
        for i in 0..<m {
            let rowNorm2 = (0..<n).reduce(Float(0)) { $0 + x[i * n + $1] * x[i * n + $1] }
            #expect(rowNorm2 > 0.25 && rowNorm2 < 2.25, "row \(i): \(rowNorm2)")
        }
    }
}
