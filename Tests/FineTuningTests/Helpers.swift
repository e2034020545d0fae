import Foundation
import Optimizers
import _TestSupport
@testable import FineTuning
@testable import Models
@testable import TensorCore
@testable import Training

let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

func tempDir(_ tag: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("ft-\(tag)-\(UUID())").path
}

/// A 2-layer Qwen3-style model (64 wide, context 32) with a small vocabulary.
func tinyModel(vocab: Int = 64, seed: Int = 0, extra: [String] = []) throws -> DecoderModel {
    try ModelBuilder.build(Recipe.load("\(recipesDir)/nano-qwen3.yaml",
                                       overrides: ["model.vocab_size=\(vocab)", "model.context_length=32", "model.seed=\(seed)"] + extra))
}

func settings(steps: Int, lr: Double = 3e-3, batch: Int = 8) -> TrainSettings {
    var s = TrainSettings()
    s.steps = steps
    s.lr = lr
    s.batchSize = batch
    s.warmup = 0
    s.schedule = "constant"
    s.weightDecay = 0
    return s
}

/// Bytes as token ids (vocabulary 256): enough for template and masking tests.
func byteEncode(_ s: String) -> [Int32] { s.utf8.map { Int32($0) } }

/// Double-precision log-softmax of one row.
func logSoftmax(_ row: [Double]) -> [Double] {
    let m = row.max() ?? 0
    let lse = m + Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) })
    return row.map { $0 - lse }
}

/// Random token ids in `range`.
func randomTokens(_ n: Int, _ range: Range<Int>, _ rng: inout SplitMix64) -> [Int32] {
    (0..<n).map { _ in Int32(range.lowerBound + rng.nextInt(below: range.count)) }
}

/// Runs the one training loop (`Trainer`) on a fine-tuning objective, validating at the end.
func fineTune(_ model: DecoderModel, _ params: [NamedParameter], _ s: TrainSettings,
              step: @escaping (_ step: Int, _ micro: Int) throws -> StepOutput,
              validate: (() throws -> [String: Double])? = nil) throws -> TrainingSummary {
    let t = try Trainer(objective: FineTuneObjective(model: model, parameters: params, step: { s, m, _ in try step(s, m) }, validate: validate),
                        settings: s)
    t.evaluateAtEnd = true
    return try t.run()
}
