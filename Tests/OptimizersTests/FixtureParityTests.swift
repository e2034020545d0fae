import Foundation
import Layers
import Optimizers
import TensorCore
import Testing

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

    /// Muon against the same update with Newton–Schulz in float64 (derivation; u = 2⁻²⁴):
    /// - NS iteration = three fp32 GEMMs with inner dimension k ≤ 16 (W is 16×8) on operands of
    ///   magnitude ≤ 1 (X has unit Frobenius norm, so ‖A‖ = ‖XXᵀ‖ ≤ 1). The BLAS kernel fixes the
    ///   summation order (AVX-512 and AVX2 kernels block differently), so the error is a rounding
    ///   walk: √k·u per dot product (Higham's rule of thumb for the γ_k = k·u worst case), scaled by
    ///   the coefficients: (|a| + |b|·√16 + |c|·(√8 + √16))·u ≈ (3.4 + 19.1 + 13.9)·u ≈ 36u a step.
    /// - Later iterations amplify it by |p′(σ)| = |a + 3bσ² + 5cσ⁴|: about 3 while the singular
    ///   values are small (σ ≈ 1/√8 after normalising), at most 1.6 on [0.7, 1.2] where they
    ///   settle. Summed over the five iterations: 3·3·1.6·1.6 + 3·1.6·1.6 + 3·1.6 + 1.6 + 1 ≈ 36.
    /// - So |ΔO| ≲ 36·36u ≈ 1300u ≈ 7.7e-5, and W moves by lr·√max(1, rows/cols) = 0.02·√2 times
    ///   that: ≈ 2.2e-6 a step; five independent steps ≈ √5·2.2e-6 ≈ 4.9e-6 (the fp32 gradient,
    ///   with inner dimension 32, adds √32·u·|W| ≈ 3e-7).
    /// - Bound 5e-6 (measured: 4e-7 with OpenBLAS SkylakeX, 1.4e-6 with Haswell). Against the fp32
    ///   NS reference both sides round independently: √2 · 5e-6 ≈ 7e-6. Against torch's bfloat16
    ///   NS (u_bf16 = 2⁻⁸) the fixture records 8.8e-4.
    static let muonVsFloat64 = 5e-6
    static let muonVsFloat32 = 7e-6

    static let runs: [Run] = [
        Run(name: "sgd", references: [("sgd", 1e-6)]) { try SGD($0.named, learningRate: 0.05) },
        Run(name: "sgd_momentum", references: [("sgd_momentum", 1e-6)]) {
            try SGD($0.named, learningRate: 0.05, momentum: 0.9, weightDecay: 0.01)
        },
        Run(name: "sgd_nesterov", references: [("sgd_nesterov", 1e-6)]) {
            try SGD($0.named, learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01)
        },
        Run(name: "adam", references: [("adam", 1e-6)]) { try Adam($0.named, learningRate: 0.01) },
        Run(name: "adam_l2", references: [("adam_l2", 1e-6)]) {
            try Adam($0.named, learningRate: 0.01, weightDecay: 0.1)
        },
        Run(name: "adamw", references: [("adamw", 1e-6)]) {
            try AdamW($0.named, learningRate: 0.01, weightDecay: 0.1)
        },
        // torch.optim.Muon runs Newton–Schulz in bfloat16: loose against it, tight against the
        // same update with NS in float32 / float64.
        Run(
            name: "muon",
            references: [("muon_ns_fp32", muonVsFloat32), ("muon_ns_fp64", muonVsFloat64), ("muon", 5e-3)],
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
