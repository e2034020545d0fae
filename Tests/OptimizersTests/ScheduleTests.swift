import Optimizers
import Testing
import _TestSupport

@Suite struct ScheduleTests {
    func close(_ a: Double, _ b: Double) -> Bool { abs(a - b) <= Tolerance.double }

    @Test func cosineWarmupThenDecayToMinimum() throws {
        let s = try LRSchedule(.cosine, warmupSteps: 10, totalSteps: 110, minRatio: 0.1)
        #expect(close(s.multiplier(at: 0), 0.1))  // (0 + 1) / 10
        #expect(close(s.multiplier(at: 4), 0.5))
        #expect(close(s.multiplier(at: 9), 1))  // warm-up ends at the peak
        #expect(close(s.multiplier(at: 10), 1))  // decay starts at the peak
        #expect(close(s.multiplier(at: 60), 0.1 + 0.9 * 0.5))  // half-way: cos(π/2) = 0
        #expect(close(s.multiplier(at: 110), 0.1))
        #expect(close(s.multiplier(at: 500), 0.1))  // past the end: min
        #expect(close(s.learningRate(at: 60, peak: 6e-4), 6e-4 * 0.55))
        // Monotone non-increasing after warm-up.
        for t in 10..<120 { #expect(s.multiplier(at: t + 1) <= s.multiplier(at: t)) }
    }

    @Test func linearDecay() throws {
        let s = try LRSchedule(.linear, warmupSteps: 0, totalSteps: 100, minRatio: 0)
        #expect(close(s.multiplier(at: 0), 1))
        #expect(close(s.multiplier(at: 25), 0.75))
        #expect(close(s.multiplier(at: 100), 0))
    }

    @Test func warmupStableDecay() throws {
        let sqrt = try LRSchedule(
            .wsd(decayFraction: 0.2, shape: .sqrt), warmupSteps: 10, totalSteps: 100)
        #expect(sqrt.decayStart == 80)
        #expect(close(sqrt.multiplier(at: 9), 1))
        #expect(close(sqrt.multiplier(at: 50), 1))
        #expect(close(sqrt.multiplier(at: 80), 1))
        #expect(close(sqrt.multiplier(at: 90), 1 - 0.5.squareRoot()))
        #expect(close(sqrt.multiplier(at: 100), 0))
        let linear = try LRSchedule(
            .wsd(decayFraction: 0.5, shape: .linear), warmupSteps: 0, totalSteps: 100, minRatio: 0.2
        )
        #expect(linear.decayStart == 50)
        #expect(close(linear.multiplier(at: 49), 1))
        #expect(close(linear.multiplier(at: 75), 0.2 + 0.8 * 0.5))
        #expect(close(linear.multiplier(at: 100), 0.2))
    }

    @Test func constantWithWarmup() throws {
        let s = LRSchedule.constant(warmupSteps: 5)
        #expect(close(s.multiplier(at: 0), 0.2))
        #expect(close(s.multiplier(at: 4), 1))
        #expect(close(s.multiplier(at: 1_000_000), 1))
        #expect(close(LRSchedule.constant().multiplier(at: 0), 1))
    }

    @Test func invalidSchedulesThrow() {
        #expect(throws: OptimizerError.self) {
            try LRSchedule(.cosine, warmupSteps: 20, totalSteps: 10)
        }
        #expect(throws: OptimizerError.self) {
            try LRSchedule(.cosine, warmupSteps: -1, totalSteps: 10)
        }
        #expect(throws: OptimizerError.self) {
            try LRSchedule(.linear, totalSteps: 10, minRatio: 1.5)
        }
        #expect(throws: OptimizerError.self) {
            try LRSchedule(.wsd(decayFraction: 1.2, shape: .sqrt), totalSteps: 10)
        }
    }
}
