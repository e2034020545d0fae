import TensorCore

/// Finite-difference gradient checking against a float64 reference.
///
/// 1. The Float32 op runs on leaves and is compared with `reference` (Double) on the same inputs.
/// 2. A fixed random projection R reduces the output to a scalar, `L = Σ out·R`, so upstream
///    gradients are not all ones; `backward()` gives the analytic Float32 gradients.
/// 3. Central differences of `Σ reference(x)·R` in Double (eps 1e-6, PyTorch's default) give the
///    numerical gradient for up to `maxCoordinates` coordinates per input.
public enum GradCheck {
    public struct Report: CustomStringConvertible {
        public var forwardMaxError: Double = 0
        public var gradientMaxError: Double = 0
        public var worst: String = ""
        public var passed: Bool = true
        public var description: String {
            "forward max error \(forwardMaxError), gradient max error \(gradientMaxError) \(worst)"
        }
    }

    /// Checks `op` against `reference`. `differentiable` selects which inputs are checked (all by
    /// default); the others are constants.
    public static func check(
        _ inputs: [Tensor],
        differentiable: [Bool]? = nil,
        atol: Double = Tolerance.FiniteDifference.float64Absolute, rtol: Double = Tolerance.FiniteDifference.float64Relative,
        maxCoordinates: Int = 64, seed: UInt64 = 1,
        op: ([Tensor]) throws -> Tensor,
        reference: ([[Double]]) -> [Double]
    ) throws -> Report {
        let diff = differentiable ?? Array(repeating: true, count: inputs.count)
        let leaves = zip(inputs, diff).map { $1 ? $0.requiringGrad() : $0.detached() }
        let out = try op(leaves)
        let xs = inputs.map { $0.scalars.map(Double.init) }
        let ref = reference(xs)
        var report = Report()
        guard ref.count == out.count else {
            report.passed = false
            report.worst = "reference has \(ref.count) values, op \(out.count) (shape \(out.shape))"
            return report
        }
        for (a, b) in zip(out.scalars, ref) {
            let e = abs(Double(a) - b)
            let tol = atol + rtol * abs(b)
            if e > report.forwardMaxError { report.forwardMaxError = e }
            if !(e <= tol) { report.passed = false; report.worst = "forward: \(a) vs \(b)" }
        }
        var rng = SplitMix64(seed: seed)
        let r = (0..<out.count).map { _ in rng.nextUniform() * 2 - 1 }
        let rt = try Tensor(shape: out.shape, values: r.map(Float.init))
        let loss = try (out * rt).sum()
        try loss.backward()
        func projected(_ xs: [[Double]]) -> Double {
            zip(reference(xs), r).reduce(0) { $0 + $1.0 * $1.1 }
        }
        let eps = Tolerance.FiniteDifference.float64Step
        for (i, leaf) in leaves.enumerated() where diff[i] {
            let g = leaf.grad?.scalars ?? [Float](repeating: 0, count: leaf.count)
            let n = xs[i].count
            let coords: [Int] =
                n <= maxCoordinates ? Array(0..<n) : (0..<maxCoordinates).map { _ in rng.nextInt(below: n) }
            for j in coords {
                var plus = xs, minus = xs
                plus[i][j] += eps
                minus[i][j] -= eps
                let numeric = (projected(plus) - projected(minus)) / (2 * eps)
                let e = abs(Double(g[j]) - numeric)
                if e > report.gradientMaxError { report.gradientMaxError = e }
                if !(e <= atol + rtol * abs(numeric)) {
                    report.passed = false
                    report.worst = "input \(i) coordinate \(j): analytic \(g[j]) vs numeric \(numeric)"
                }
            }
        }
        return report
    }

    /// Random tensor of `shape` with values in [low, high).
    public static func random(_ shape: [Int], seed: UInt64, low: Float = -1, high: Float = 1) -> Tensor {
        var rng = SplitMix64(seed: seed)
        return Tensor.uniform(shape, low: low, high: high, rng: &rng)
    }
}

extension GradCheck {
    /// Float32 central-difference check of d(Σ f()·R)/dθ for tensors whose values are shared with
    /// `f` (module parameters or inputs): for components built from already-checked ops.
    /// `leaves` are tensors on the tape (`requiringGrad` or parameter values); f must read them.
    public static func checkFloat32(
        _ leaves: [Tensor], eps: Float = Tolerance.FiniteDifference.float32Step, atol: Double = Tolerance.FiniteDifference.float32Absolute,
        rtol: Double = Tolerance.FiniteDifference.float32Relative,
        maxCoordinates: Int = 24, seed: UInt64 = 3, _ f: () throws -> Tensor
    ) throws -> Report {
        let out = try f()
        var rng = SplitMix64(seed: seed)
        let r = (0..<out.count).map { _ in Float(rng.nextUniform() * 2 - 1) }
        let rt = try Tensor(shape: out.shape, values: r)
        try (out * rt).sum().backward()
        func loss() throws -> Double {
            let y = try GradMode.withoutGrad { try f() }.scalars
            return zip(y, r).reduce(0.0) { $0 + Double($1.0) * Double($1.1) }
        }
        var report = Report()
        for (i, leaf) in leaves.enumerated() {
            let g = leaf.grad?.scalars ?? [Float](repeating: 0, count: leaf.count)
            let p = leaf.storage.pointer
            let coords = leaf.count <= maxCoordinates ? Array(0..<leaf.count) : (0..<maxCoordinates).map { _ in rng.nextInt(below: leaf.count) }
            for j in coords {
                let old = p[j]
                p[j] = old + eps
                let lp = try loss()
                p[j] = old - eps
                let lm = try loss()
                p[j] = old
                let numeric = (lp - lm) / Double(2 * eps)
                let e = abs(Double(g[j]) - numeric)
                if e > report.gradientMaxError { report.gradientMaxError = e }
                if !(e <= atol + rtol * abs(numeric)) {
                    report.passed = false
                    report.worst = "leaf \(i) coordinate \(j): analytic \(g[j]) vs numeric \(numeric)"
                }
            }
        }
        return report
    }
}
