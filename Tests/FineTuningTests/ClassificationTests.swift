import Foundation
import Testing
import _TestSupport
@testable import FineTuning
@testable import Layers
@testable import Models
@testable import TensorCore
@testable import Training

@Suite(.serialized) struct ClassificationTests {
    /// CE(linear(h[b, len_b − 1]), y) against float64 finite differences for the hidden states and the head.
    @Test func lastTokenLossGradients() throws {
        let (b, t, c, n) = (3, 4, 5, 3)
        let lengths = [2, 4, 1], labels: [Int32] = [1, 2, 0]
        let inputs = [GradCheck.random([b, t, c], seed: 1), GradCheck.random([n, c], seed: 2), GradCheck.random([n], seed: 3)]
        let report = try GradCheck.check(inputs) { x in
            try Tensor.crossEntropy(logits: SequenceClassifier.lastTokenLogits(hidden: x[0], lengths: lengths, weight: x[1], bias: x[2]),
                                    targets: labels)
        } reference: { v in
            var total = 0.0
            for row in 0..<b {
                let h = (0..<c).map { v[0][(row * t + lengths[row] - 1) * c + $0] }
                let logits = (0..<n).map { k in (0..<c).reduce(v[2][k]) { $0 + v[1][k * c + $1] * h[$1] } }
                total -= logSoftmax(logits)[Int(labels[row])]
            }
            return [total / Double(b)]
        }
        #expect(report.passed, "\(report)")
    }

    @Test func trainableScopes() throws {
        let m = try tinyModel()
        let last = try TrainableScope(parsing: "last:1").apply(to: m).map(\.name)
        #expect(!last.isEmpty && last.allSatisfy { $0.hasPrefix("model.layers.1.") || $0.hasPrefix("model.norm.") })
        #expect(last.contains("model.norm.weight"))
        #expect(try TrainableScope(parsing: "head").apply(to: m).isEmpty)
        #expect(try TrainableScope(parsing: "all").apply(to: m).count == m.namedParameters().count)
        #expect(throws: (any Error).self) { try TrainableScope(parsing: "last:0") }
    }

    @Test func csvAndLabels() throws {
        let rows = try CSV.parse("text,label\n\"hello, \"\"world\"\"\",pos\nbye,neg\r\n\n", path: "x.csv")
        #expect(rows == [["text", "label"], ["hello, \"world\"", "pos"], ["bye", "neg"]])
        #expect(throws: (any Error).self) { try CSV.parse("a,\"b\n", path: "x.csv") }
        #expect(LabelledTexts(texts: ["a", "b"], labels: ["2", "0"]).classNames() == ["0", "1", "2"])
        #expect(LabelledTexts(texts: ["a", "b"], labels: ["pos", "neg"]).classNames() == ["neg", "pos"])
    }

    /// Label = whether the FIRST token is below 16 — the last token must gather it through attention.
    /// Variable lengths with right padding exercise the last-non-pad pooling.
    @Test func learnsSyntheticTaskWellAboveChance() throws {
        var rng = SplitMix64(seed: 11)
        func example() -> ([Int32], Int32) {
            let len = 3 + rng.nextInt(below: 6)
            let s = randomTokens(len, 1..<32, &rng)
            return (s, s[0] < 16 ? 1 : 0)
        }
        let train = (0..<256).map { _ in example() }, val = (0..<128).map { _ in example() }
        let clf = try SequenceClassifier(model: try tinyModel(), labels: ["no", "yes"], padID: 0, seed: 1)
        let params = TrainableScope.all.apply(to: clf.model) + clf.headParameters
        let sampler = EpochSampler(count: train.count, seed: 1)
        let before = try clf.evaluate(val.map(\.0), labels: val.map(\.1), batchSize: 64)
        let result = try fineTune(clf.model, params, settings(steps: 120, lr: 3e-3, batch: 16), step: { step, _ in
            let idx = sampler.batch(step - 1, size: 16)
            let (l, acc) = try clf.loss(idx.map { train[$0].0 }, labels: idx.map { train[$0].1 })
            return StepOutput(loss: l, metrics: ["accuracy": acc])
        }, validate: { try clf.evaluate(val.map(\.0), labels: val.map(\.1), batchSize: 64) })
        let acc = result.validation["val_accuracy"]!
        #expect(acc > 0.85, "validation accuracy \(acc) (before \(before["accuracy"]!))")
        #expect(result.validation["val_loss"]! < before["loss"]!)

        // Save / load round trip keeps the predictions.
        let dir = tempDir("clf")
        try clf.save(to: dir)
        let again = try SequenceClassifier.load(dir)
        #expect(again.labels == ["no", "yes"])
        let p1 = try clf.probabilities(val[0].0), p2 = try again.probabilities(val[0].0)
        #expect(zip(p1, p2).allSatisfy { abs($0 - $1) < Tolerance.fewRoundings })
        // Right padding does not change a sequence's prediction.
        let alone = try GradMode.withoutGrad { try clf.logits([val[0].0]).scalars }
        let padded = try GradMode.withoutGrad { try clf.logits([val[0].0, Array(repeating: 5, count: 20)]).scalars }
        #expect(zip(alone, padded.prefix(2)).allSatisfy { abs($0 - $1) < Tolerance.Model.logits })
    }
}
