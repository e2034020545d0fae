import Testing
import _TestSupport
@testable import TensorCore

@Suite struct AutogradTests {
    @Test func gradientsAccumulateAcrossBackwardCallsUntilZeroed() throws {
        let w = try Tensor(shape: [3], values: [1, 2, 3]).requiringGrad()
        for _ in 0..<2 { try (w * w).sum().backward() }
        #expect(w.grad?.scalars == [4, 8, 12])
        w.zeroGrad()
        #expect(w.grad == nil)
        try (w * 3).sum().backward()
        #expect(w.grad?.scalars == [3, 3, 3])
    }

    @Test func noGradScopeRecordsNothing() throws {
        let w = try Tensor(shape: [2], values: [1, 2]).requiringGrad()
        let y = try GradMode.withoutGrad { try (w * w).sum() }
        #expect(y.node == nil)
        #expect(throws: TensorError.self) { try y.backward() }
        #expect(w.grad == nil)
    }

    @Test func tensorUsedTwiceGetsBothContributions() throws {
        let x = try Tensor(shape: [2], values: [3, 4]).requiringGrad()
        let y = try (x * x + x).sum()  // d/dx = 2x + 1
        try y.backward()
        #expect(x.grad?.scalars == [7, 9])
    }

    @Test func shapeMismatchNamesBothShapes() {
        let a = Tensor(zeros: [2, 3]), b = Tensor(zeros: [4])
        do {
            _ = try a + b
            Issue.record("expected an error")
        } catch let e as TensorError {
            #expect(e.description.contains("[2, 3]") && e.description.contains("[4]"))
        } catch { Issue.record("unexpected \(error)") }
        #expect(throws: TensorError.self) { try a.matmul(Tensor(zeros: [2, 3])) }
        #expect(throws: TensorError.self) { try a.reshaped([5]) }
    }

    @Test func backwardNeedsAScalar() throws {
        let x = Tensor(zeros: [2]).requiringGrad()
        #expect(throws: TensorError.self) { try (x * 2).backward() }
    }

    @Test func seededInitialisersAreReproducible() {
        var r1 = SplitMix64(seed: 3), r2 = SplitMix64(seed: 3)
        #expect(Tensor.randn([10], rng: &r1).scalars == Tensor.randn([10], rng: &r2).scalars)
        var r3 = SplitMix64(seed: 4)
        let u = Tensor.uniform([1000], low: -2, high: 2, rng: &r3).scalars
        #expect(u.allSatisfy { $0 >= -2 && $0 < 2 })
        var r4 = SplitMix64(seed: 5)
        let n = Tensor.randn([20000], mean: 1, std: 2, rng: &r4).scalars.map(Double.init)
        let mean = n.reduce(0, +) / Double(n.count)
        let std = (n.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(n.count)).squareRoot()
        #expect(abs(mean - 1) < Tolerance.Statistics.randnMoments && abs(std - 2) < Tolerance.Statistics.randnMoments)
    }

    @Test func largeElementwiseUsesParallelPathCorrectly() throws {
        // Force the parallel path (any threshold gives the same results, so other tests are unaffected).
        let saved = Parallel.minimumParallelWork
        Parallel.minimumParallelWork = 1
        defer { Parallel.minimumParallelWork = saved }
        let x = GradCheck.random([300, 257], seed: 9)
        let y = try (x * x).sum(axes: [1])
        let xs = x.scalars
        for row in [0, 150, 299] {
            let ref = (0..<257).reduce(0.0) { $0 + Double(xs[row * 257 + $1] * xs[row * 257 + $1]) }
            #expect(abs(Double(y.scalars[row]) - ref) < Tolerance.Reduction.rowSumVsFloat64)
        }
    }
}
