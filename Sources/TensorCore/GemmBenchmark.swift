import ToolkitSupport

/// Measures `cblas_sgemm` throughput on random matrices (used by `toolkit doctor` and
/// `toolkit bench gemm`).
public enum GemmBenchmark {
    public struct Result: Codable, Sendable {
        public var m: Int, n: Int, k: Int
        public var repeats: Int
        /// Median GFLOP/s over the repeats (2·m·n·k flops per product).
        public var gflops: Double
        public var medianSeconds: Double
        public var allGflops: [Double]
    }

    /// Runs `repeats` timed products after one warm-up; each timed sample lasts at least
    /// `minSampleSeconds` (small shapes are looped).
    public static func run(m: Int, n: Int, k: Int, repeats: Int = 7, minSampleSeconds: Double = 0.05)
        -> Result
    {
        var rng = SplitMix64(seed: 42)
        let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k)
        let b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
        let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
        defer { a.deallocate(); b.deallocate(); c.deallocate() }
        for i in 0..<(m * k) { a[i] = Float(rng.nextUniform() - 0.5) }
        for i in 0..<(k * n) { b[i] = Float(rng.nextUniform() - 0.5) }
        func once() {
            BLAS.gemm(
                transA: false, transB: false, m: m, n: n, k: k, alpha: 1, a: a, lda: k, b: b,
                ldb: n, beta: 0, c: c, ldc: n)
        }
        once()
        // Calibrate the inner loop count.
        let t0 = monotonicSeconds()
        once()
        let single = max(monotonicSeconds() - t0, 1e-7)
        let inner = max(1, Int((minSampleSeconds / single).rounded(.up)))
        var samples: [Double] = []
        for _ in 0..<max(1, repeats) {
            let s = monotonicSeconds()
            for _ in 0..<inner { once() }
            samples.append((monotonicSeconds() - s) / Double(inner))
        }
        let flops = 2.0 * Double(m) * Double(n) * Double(k)
        let med = Stats.median(samples)
        return Result(
            m: m, n: n, k: k, repeats: samples.count, gflops: flops / med / 1e9,
            medianSeconds: med, allGflops: samples.map { flops / $0 / 1e9 })
    }
}
