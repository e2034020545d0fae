import Layers
import Optimizers
import TensorCore
import Testing
import _TestSupport

@Suite struct OptimizerStateTests {
    typealias Factory = @Sendable (RegressionProblem) throws -> any Optimizer

    static let factories: [(String, Factory)] = [
        (
            "sgd_nesterov",
            {
                try SGD(
                    $0.named, learningRate: 0.05, momentum: 0.9, nesterov: true, weightDecay: 0.01)
            }
        ),
        ("adam_l2", { try Adam($0.named, learningRate: 0.01, weightDecay: 0.1) }),
        (
            "muon+adamw",
            {
                try MultiOptimizer.muonWithAdamW(
                    $0.named, muonLearningRate: 0.02, muonWeightDecay: 0.1, adamLearningRate: 0.01)
            }
        ),
    ]

    /// Two steps, save, restore into fresh parameters and a fresh optimizer, three more steps:
    /// bit-identical to five uninterrupted steps.
    @Test(arguments: 0..<factories.count)
    func roundTripContinuesBitIdentically(_ which: Int) throws {
        let (name, make) = Self.factories[which]
        let file = try SafetensorsF32.fixture()
        let a = try RegressionProblem(file)
        let optA = try make(a)
        for _ in 0..<2 {
            _ = try a.lossAndGradients()
            try optA.step()
        }
        let saved = optA.stateTensors()

        let b = try RegressionProblem(file)
        try b.w.assign(a.w.value)
        try b.b.assign(a.b.value)
        let optB = try make(b)
        try optB.loadStateTensors(saved)
        #expect(optB.stateTensors() == saved, "\(name)")

        for _ in 0..<3 {
            let la = try a.lossAndGradients()
            let lb = try b.lossAndGradients()
            #expect(la == lb)
            try optA.step()
            try optB.step()
        }
        #expect(values(a.w) == values(b.w), "\(name)")
        #expect(values(a.b) == values(b.b), "\(name)")
        #expect(optA.stateTensors() == optB.stateTensors(), "\(name)")
    }

    @Test func stateKeysAndShapes() throws {
        let p = try RegressionProblem(try SafetensorsF32.fixture())
        let opt = try MultiOptimizer([try Muon([("W", p.w)]), try AdamW([("b", p.b)])])
        #expect(opt.stateTensors().isEmpty)  // nothing before the first step
        _ = try p.lossAndGradients()
        try opt.step()
        let state = opt.stateTensors()
        #expect(
            Set(state.keys) == [
                "W.momentum_buffer", "W.step", "b.exp_avg", "b.exp_avg_sq", "b.step",
            ])
        #expect(state["W.momentum_buffer"]?.shape == [16, 8] && state["b.exp_avg"]?.shape == [8])
        #expect(state["b.step"] == StateTensor(shape: [], values: [1]))
        // First Adam step: exp_avg = (1 − β1)·g.
        let g = try #require(p.b.grad).scalars
        let m = try #require(state["b.exp_avg"]).values
        for i in 0..<8 { #expect(abs(m[i] - 0.1 * g[i]) <= Tolerance.Optimizer.adamFirstMoment) }
    }

    @Test func badStateIsRejectedAndLeavesStateUnchanged() throws {
        let p = try RegressionProblem(try SafetensorsF32.fixture())
        let opt = try MultiOptimizer([
            try SGD([("W", p.w)], learningRate: 0.1, momentum: 0.9), try Adam([("b", p.b)]),
        ])
        _ = try p.lossAndGradients()
        try opt.step()
        let good = opt.stateTensors()

        var unknown = good
        unknown["c.exp_avg"] = StateTensor(shape: [8], values: Array(repeating: 0, count: 8))
        #expect(throws: OptimizerError.unknownStateKey(key: "c.exp_avg")) {
            try opt.loadStateTensors(unknown)
        }

        var wrongShape = good
        wrongShape["b.exp_avg"] = StateTensor(shape: [4, 2], values: Array(repeating: 0, count: 8))
        #expect(throws: OptimizerError.self) { try opt.loadStateTensors(wrongShape) }

        var incomplete = good
        incomplete["b.exp_avg_sq"] = nil
        #expect(throws: OptimizerError.self) { try opt.loadStateTensors(incomplete) }

        var badStep = good
        badStep["W.step"] = StateTensor(shape: [], values: [1.5])
        #expect(throws: OptimizerError.self) { try opt.loadStateTensors(badStep) }

        // A bad key in the second group must not have changed the first.
        var mixed = good
        mixed["W.momentum_buffer"] = StateTensor(
            shape: [16, 8], values: Array(repeating: 7, count: 128))
        mixed["b.step"] = StateTensor(shape: [], values: [0])
        #expect(throws: OptimizerError.self) { try opt.loadStateTensors(mixed) }
        #expect(opt.stateTensors() == good)

        // An empty state resets.
        try opt.loadStateTensors([:])
        #expect(opt.stateTensors().isEmpty)
    }

    @Test func parametersWithoutGradientAreSkipped() throws {
        let p = try RegressionProblem(try SafetensorsF32.fixture())
        let extra = Parameter(Tensor(shape: [3], repeating: 1))
        let opt = try Adam(p.named + [("extra", extra)], learningRate: 0.1)
        _ = try p.lossAndGradients()
        try opt.step()
        #expect(values(extra) == [1, 1, 1])
        #expect(opt.stateTensors()["extra.step"] == nil && opt.stateTensors()["b.step"] != nil)
    }
}
