import Foundation
import Testing
import _TestSupport
@testable import FineTuning
@testable import Layers
@testable import Models
@testable import TensorCore
@testable import Training

@Suite(.serialized) struct SFTTests {
    @Test func templates() throws {
        let p = PromptTemplate.alpaca(instruction: "Add.", input: "1 2")
        #expect(p == "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd.\n\n### Input:\n1 2\n\n### Response:\n")
        #expect(!PromptTemplate.alpaca(instruction: "Hi.", input: "").contains("### Input"))
        let chat = PromptTemplate.chat([("system", "Be brief."), ("user", "Hi"), ("assistant", "Hello")])
        #expect(chat.map(\.text).joined() == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\nHello<|im_end|>\n")
        #expect(chat.filter(\.trainable).map(\.text) == ["Hello<|im_end|>"])
        #expect(throws: (any Error).self) { try SFTData.segments(["messages": [["role": "user", "content": "x"]]], at: "f:1") }
        #expect(throws: (any Error).self) { try SFTData.segments(["instruction": "x"], at: "f:1") }
    }

    /// Prompt and padding targets are −100; response targets are the next tokens; the gradient reaching
    /// the logits at prompt and padding positions is exactly zero, and changing those tokens' targets
    /// cannot change the loss.
    @Test func promptTokensContributeNothing() throws {
        let (segs, eos) = try SFTData.segments(["instruction": "Say hi", "input": "", "output": "hi!"], at: "t")
        #expect(eos)
        let a = MaskedSequence(segments: segs, encode: byteEncode, eos: 255)
        let b = MaskedSequence(segments: [(PromptTemplate.alpaca(instruction: "Longer instruction here", input: "x"), false), ("ok", true)],
                               encode: byteEncode, eos: 255)
        let batch = SequenceBatching.pad([a, b], padID: 0, maxLength: 1000)
        let t = batch.input.count / 2
        for (row, s) in [a, b].enumerated() {
            for i in 0..<t {
                let target = batch.targets[row * t + i]
                if i + 1 < s.ids.count && s.trainable[i + 1] { #expect(target == s.ids[i + 1]) } else { #expect(target == -100) }
            }
        }
        #expect(batch.targets.filter { $0 != -100 }.count == a.trainableCount + b.trainableCount)
        #expect(a.trainableCount == 4)  // "hi!" + EOS

        var rng = SplitMix64(seed: 2)
        let logits = Tensor.randn([2 * t, 256], rng: &rng).requiringGrad()
        try Tensor.crossEntropy(logits: logits, targets: batch.targets).backward()
        let g = logits.grad!.scalars
        for r in 0..<(2 * t) {
            let norm = (0..<256).reduce(Float(0)) { $0 + abs(g[r * 256 + $1]) }
            if batch.targets[r] == -100 { #expect(norm == 0) } else { #expect(norm > 0) }
        }
        // Loss from the model with the prompt targets replaced: identical, since they are masked.
        let model = try tinyModel(vocab: 256, extra: ["model.context_length=200"])
        let l1 = try SFTLoss.loss(model: model, batch: batch).item()
        var unmasked = batch
        unmasked.targets = zip(batch.targets, batch.input.indices).map { $0 == -100 ? Int32($1 % 200) : $0 }
        let maskedAgain = MaskedSequence(ids: a.ids, trainable: a.trainable.map { _ in false })
        #expect(SequenceBatching.pad([maskedAgain], padID: 0, maxLength: 1000).targets.allSatisfy { $0 == -100 })
        let l2 = try SFTLoss.loss(model: model, batch: unmasked).item()
        #expect(l1 != l2)  // the mask matters …
        let manual = try GradMode.withoutGrad { () -> Double in
            let lg = try model(batch.input, batch: 2).scalars
            var total = 0.0, n = 0
            for (r, y) in batch.targets.enumerated() where y != -100 {
                total -= logSoftmax((0..<256).map { Double(lg[r * 256 + $0]) })[Int(y)]
                n += 1
            }
            return total / Double(n)
        }
        #expect(abs(Double(l1) - manual) < Tolerance.Reduction.crossEntropyVsFloat64)  // … and the loss is the mean over response tokens only
    }

    @Test func packingKeepsMasks() throws {
        var rng = SplitMix64(seed: 4)
        let seqs = (0..<5).map { _ -> MaskedSequence in
            let p = 2 + rng.nextInt(below: 4), r = 1 + rng.nextInt(below: 4)
            return MaskedSequence(ids: randomTokens(p + r, 1..<50, &rng), trainable: Array(repeating: false, count: p) + Array(repeating: true, count: r))
        }
        let rows = SequenceBatching.pack(seqs, seqLen: 6, padID: 0)
        let batch = SequenceBatching.stack(rows)
        #expect(batch.input.count == rows.count * 6)
        #expect(batch.targets.filter { $0 != -100 }.count == seqs.reduce(0) { $0 + $1.trainable.filter { $0 }.count })
        let flatIDs = seqs.flatMap(\.ids), flatMask = seqs.flatMap(\.trainable)
        for (i, y) in batch.targets.enumerated() {
            let stream = (i / 6) * 6 + i % 6 + 1
            if y != -100 { #expect(flatMask[stream] && flatIDs[stream] == y) }
        }
    }

    /// Full fine-tuning on instruction-style data: response loss falls.
    @Test func sftLearnsSyntheticTask() throws {
        let model = try tinyModel()
        var rng = SplitMix64(seed: 8)
        let data = (0..<32).map { _ -> MaskedSequence in
            let prompt = randomTokens(4, 10..<60, &rng)
            let response = prompt.reversed().map { $0 }  // respond with the prompt reversed
            return MaskedSequence(ids: [1] + prompt + [2] + response + [3],
                                  trainable: Array(repeating: false, count: 6) + Array(repeating: true, count: 5))
        }
        let train = Array(data.prefix(24))
        let sampler = EpochSampler(count: train.count, seed: 3)
        let before = try SFTLoss.evaluate(model: model, batches: [SequenceBatching.pad(train, padID: 0, maxLength: 31)])
        let out = try fineTune(model, TrainableScope.all.apply(to: model), settings(steps: 60, lr: 3e-3), step: { step, _ in
            let b = SequenceBatching.pad(sampler.batch(step - 1, size: 8).map { train[$0] }, padID: 0, maxLength: 31)
            return StepOutput(loss: try SFTLoss.loss(model: model, batch: b), tokens: b.tokens)
        })
        let after = try SFTLoss.evaluate(model: model, batches: [SequenceBatching.pad(train, padID: 0, maxLength: 31)])
        #expect(out.stop == .finished)
        #expect(after["loss"]! < before["loss"]! * 0.5, "train loss \(before["loss"]!) → \(after["loss"]!)")
    }

    @Test func samplerCoversEachEpoch() {
        let s = EpochSampler(count: 10, seed: 1)
        let epoch = (0..<5).flatMap { s.batch($0, size: 2) }
        #expect(epoch.sorted() == Array(0..<10))
        #expect(s.batch(5, size: 2) + s.batch(6, size: 2) != epoch.prefix(4).map { $0 })
    }
}
