import Foundation
import Testing
import _TestSupport
@testable import FineTuning
@testable import Layers
@testable import Models
@testable import TensorCore
@testable import Training

@Suite(.serialized) struct DPOTests {
    /// L = mean −(1−ε)·log σ(βz) − ε·log σ(−βz) against float64 finite differences for all four inputs.
    @Test func lossGradients() throws {
        let beta: Float = 0.7, eps: Float = 0.1
        let inputs = (1...4).map { GradCheck.random([5], seed: UInt64($0), low: -3, high: 3) }
        let report = try GradCheck.check(inputs) { x in
            try DPO.loss(policyChosen: x[0], policyRejected: x[1], referenceChosen: x[2], referenceRejected: x[3],
                         beta: beta, labelSmoothing: eps).loss
        } reference: { v in
            func logSigmoid(_ x: Double) -> Double { -Foundation.log(1 + Foundation.exp(-x)) }
            var total = 0.0
            for i in 0..<5 {
                let z = Double(beta) * ((v[0][i] - v[1][i]) - (v[2][i] - v[3][i]))
                total += -(1 - Double(eps)) * logSigmoid(z) - Double(eps) * logSigmoid(-z)
            }
            return [total / 5]
        }
        #expect(report.passed, "\(report)")
        // Metrics: rewards β(πθ − πref), margin, accuracy.
        let o = try DPO.loss(policyChosen: Tensor(shape: [2], values: [-1, -2]), policyRejected: Tensor(shape: [2], values: [-3, -1]),
                             referenceChosen: Tensor(shape: [2], values: [-2, -2]), referenceRejected: Tensor(shape: [2], values: [-2, -2]),
                             beta: 0.5)
        let bound = Tolerance.fewRoundings
        #expect(abs(o.chosenReward - 0.25) < bound && abs(o.rejectedReward - 0.0) < bound && abs(o.margin - 0.25) < bound)
        #expect(o.accuracy == 0.5)
    }

    /// Sequence log-probs from logits (mean and sum over response targets) against float64 references.
    @Test func responseLogProbGradients() throws {
        let (r, t, v) = (2, 4, 5)
        let targets: [Int32] = [-100, 2, 4, -100, -100, -100, 1, 0]
        for reduction in LogProbReduction.allCases {
            let report = try GradCheck.check([GradCheck.random([r, t, v], seed: 3, low: -2, high: 2)]) { x in
                try DPO.responseLogProbs(logits: x[0], targets: targets, reduction: reduction)
            } reference: { x in
                (0..<r).map { row in
                    var total = 0.0, n = 0
                    for i in 0..<t where targets[row * t + i] != -100 {
                        total += logSoftmax((0..<v).map { x[0][(row * t + i) * v + $0] })[Int(targets[row * t + i])]
                        n += 1
                    }
                    return reduction == .mean ? total / Double(n) : total
                }
            }
            #expect(report.passed, "\(reduction): \(report)")
        }
        #expect(throws: (any Error).self) {
            try DPO.responseLogProbs(logits: Tensor(zeros: [1, 2, 3]), targets: [-100, -100], reduction: .mean)
        }
    }

    /// Chosen responses use tokens 40..<60, rejected ones 10..<30: the policy learns to prefer the first.
    @Test func preferenceAccuracyAndMarginGrow() throws {
        var rng = SplitMix64(seed: 21)
        let pairs = (0..<32).map { _ in
            PreferencePair(prompt: randomTokens(4, 1..<10, &rng), chosen: randomTokens(4, 40..<60, &rng),
                           rejected: randomTokens(4, 10..<30, &rng))
        }
        let train = Array(pairs.prefix(24)), val = Array(pairs.suffix(8))
        let policy = try tinyModel(seed: 3)
        let dpo = try DPOTrainer(policy: policy, beta: 0.5, reduction: .mean, padID: 0)
        let start = try dpo.evaluate(val, batchSize: 8)
        #expect(abs(start["reward_margin"]!) < Tolerance.fewRoundings && abs(start["loss"]! - Foundation.log(2)) < Tolerance.Model.loss)
        let sampler = EpochSampler(count: train.count, seed: 2)
        var margins: [Double] = []
        let result = try fineTune(policy, TrainableScope.all.apply(to: policy), settings(steps: 30, lr: 2e-3), step: { step, _ in
            let o = try dpo.step(sampler.batch(step - 1, size: 8).map { train[$0] })
            margins.append(o.margin)
            return StepOutput(loss: o.loss, metrics: o.metrics)
        }, validate: { try dpo.evaluate(val, batchSize: 8) })
        #expect(result.stop == .finished)
        #expect(dpo.reference.namedParameters().allSatisfy { !$0.parameter.isTrainable })
        let end = result.validation
        #expect(end["val_preference_accuracy"]! >= 0.99, "\(end)")
        #expect(end["val_reward_margin"]! > 0.5, "\(end)")
        #expect(end["val_loss"]! < 0.5 * Foundation.log(2), "\(end)")
        #expect(margins.suffix(5).reduce(0, +) > margins.prefix(5).reduce(0, +))
    }

    /// DPO through LoRA adapters: the reference (copied before attaching) stays the base, only adapters move.
    @Test func dpoWithLoRAAdapters() throws {
        var rng = SplitMix64(seed: 5)
        let pairs = (0..<16).map { _ in
            PreferencePair(prompt: randomTokens(3, 1..<10, &rng), chosen: randomTokens(3, 40..<60, &rng), rejected: randomTokens(3, 10..<30, &rng))
        }
        let policy = try tinyModel(seed: 4, extra: ["model.init_std=0.3"])
        let dpo = try DPOTrainer(policy: policy, beta: 0.5, reduction: .sum, padID: 0)
        let base = ModelIO.hostTensors(policy)
        let lora = try LoRAModel(attachingTo: policy, config: LoRAConfig(rank: 4, alpha: 8, targets: LoRAConfig.moduleNames, seed: 2))
        let result = try fineTune(policy, lora.trainableParameters, settings(steps: 20, lr: 1e-2), step: { step, _ in
            let o = try dpo.step(EpochSampler(count: 16, seed: 1).batch(step - 1, size: 8).map { pairs[$0] })
            return StepOutput(loss: o.loss, metrics: o.metrics)
        }, validate: { try dpo.evaluate(pairs, batchSize: 8) })
        #expect(result.validation["val_reward_margin"]! > 0.5 && result.validation["val_preference_accuracy"]! >= 0.9, "\(result.validation)")
        for (name, t) in ModelIO.hostTensors(policy) { #expect(t.values == base[name]!.values, "\(name) moved") }
        #expect(ModelIO.hostTensors(dpo.reference).allSatisfy { $0.value.values == base[$0.key]!.values })
    }
}
