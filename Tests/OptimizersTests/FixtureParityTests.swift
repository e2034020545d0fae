import Foundation
import Layers
import Optimizers
import TensorCore
import Testing
import _TestSupport

/// Five steps of each optimizer on the fixture problem, compared with PyTorch at every step:
/// the loss, both gradients (evaluated before the step) and both parameters (after it).
@Suite struct FixtureParityTests {
    struct Run: Sendable, CustomStringConvertible {
        let name: String
        /// Fixture runs this one is compared with, with the tolerance for each.
        let references: [(run: String, tolerance: Double)]
        /// Fixture runs whose `grad_b` accumulates over steps: torch's `muon` run leaves `b` out
        /// of the optimizer, so its `zero_grad()` never clears `b.grad`.
        var accumulatedGradB: Set<String> = []
        let make: @Sendable (RegressionProblem) throws -> any Optimizer
        var description: String { name }
    }

    // Bounds and their derivations: `Tolerance.Optimizer` (Sources/_TestSupport/Tolerance.swift).

    static let runs: [Run] = [
        Run(name: "sgd", references: [("sgd", Tolerance.Optimizer.fixtureStep)]) { try SGD($0.named, learningRate: 0.05) },
        Run(name: "sgd_momentum", references: [("sgd_momentum", Tolerance.Optimizer.fixtureStep)]) {
            try SGD($0.named, learningRate: 0.05, momentum: 0.9, weightDecay: 0.01)
        },
        Run(name: "sgd_nesterov", references: [("sgd_nesterov", Tolerance.Optimizer.fixtureStep)]) {
            try SGD($0.named, learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        },
        Run(name: "adam", references: [("adam", Tolerance.Optimizer.fixtureStep)]) { try Adam($0.named, learningRate: 0.01) },
        Run(name: "adam_l2", references: [("adam_l2", Tolerance.Optimizer.fixtureStep)]) {
            try Adam($0.named, learningRate: 0.01, weightDecay: 0.1)
        },
        Run(name: "adamw", references: [("adamw", Tolerance.Optimizer.fixtureStep)]) {
            try AdamW($0.named, learningRate: 0.01, weightDecay: 0.1)
        },
        // torch.optim.Muon runs Newton–Schulz in bfloat16: loose against it, tight against the
        // same update with NS in float32 / float64.
        Run(
            name: "muon",
            references: [
                ("muon_ns_fp32", Tolerance.Optimizer.muonVsFloat32), ("muon_ns_fp64", Tolerance.Optimizer.muonVsFloat64),
                ("muon", Tolerance.Optimizer.muonVsTorchBFloat16),
            ],
            accumulatedGradB: ["muon"]
        ) {
            try Muon([("W", $0.w)], learningRate: 0.02, weightDecay: 0.1, momentum: 0.95)
        },
    ]

    @Test(arguments: runs)
    func matchesPyTorch(_ run: Run) throws {
        let file = try SafetensorsF32.fixture()
        let problem = try RegressionProblem(file)
        let optimizer = try run.make(problem)
        var worst = Array(repeating: [String: Double](), count: run.references.count)
        var gradBSum = [Float](repeating: 0, count: problem.b.count)
        for t in 1...5 {
            let loss = try problem.lossAndGradients()
            let gradW = try #require(problem.w.grad).scalars
            let gradB = try #require(problem.b.grad).scalars
            gradBSum = zip(gradBSum, gradB).map { $0 + $1 }
            try optimizer.step()
            for (r, (ref, tolerance)) in run.references.enumerated() {
                let prefix = "\(ref).step\(t)."
                let diffs = [
                    "loss": maxAbsDifference([loss], try file.values(prefix + "loss")),
                    "grad_W": maxAbsDifference(gradW, try file.values(prefix + "grad_W")),
                    "grad_b": maxAbsDifference(
                        run.accumulatedGradB.contains(ref) ? gradBSum : gradB,
                        try file.values(prefix + "grad_b")),
                    "W": maxAbsDifference(values(problem.w), try file.values(prefix + "W")),
                    "b": maxAbsDifference(values(problem.b), try file.values(prefix + "b")),
                ]
                for (key, d) in diffs.sorted(by: { $0.key < $1.key }) {
                    #expect(d <= tolerance, "\(prefix)\(key): max |diff| \(d) > \(tolerance)")
                    worst[r][key] = max(worst[r][key] ?? 0, d)
                }
            }
        }
        for (r, ref) in run.references.enumerated() {
            let summary = worst[r].sorted { $0.key < $1.key }.map { "\($0.key) \($0.value)" }
            print("optimizer parity \(run.name) vs \(ref.run), max |diff| over 5 steps: \(summary)")
        }
    }

    /// Muon leaves parameters it does not own untouched (the fixture's `b`).
    @Test func muonOnlyUpdatesItsParameters() throws {
        let file = try SafetensorsF32.fixture()
        let problem = try RegressionProblem(file)
        let muon = try Muon([("W", problem.w)], learningRate: 0.02)
        _ = try problem.lossAndGradients()
        try muon.step()
        #expect(values(problem.b) == (try file.values("b0")))
        #expect(values(problem.w) != (try file.values("W0")))
    }
}
