import Foundation
import Testing
import TokenShards
import _TestSupport
@testable import Layers
@testable import Models
@testable import TensorCore
@testable import Training

private let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

private func tempDir(_ tag: String) -> String {
    FileManager.default.temporaryDirectory.appendingPathComponent("\(tag)-\(UUID())").path
}

/// A small shard directory of a repetitive synthetic "language" a tiny model can learn.
private func makeShards(tokens n: Int = 12_000, vocab: Int = 64) throws -> String {
    let dir = tempDir("shards")
    var opts = ShardWriterOptions()
    opts.shardTokens = 3_000
    let w = try ShardWriter(directory: dir, tokenizer: TokenizerInfo(hash: "test-hash", vocabSize: vocab, eotID: 0), options: opts)
    var rng = SplitMix64(seed: 5)
    var tokens: [UInt32] = []
    while tokens.count < n {
        let start = UInt32(1 + rng.nextInt(below: vocab - 8))
        tokens += (0..<6).map { start + UInt32($0) }  // ascending runs: easy to predict
    }
    try w.append(tokens)
    _ = try w.finish(valFraction: 0.1)
    return dir
}

private func nanoModel(vocab: Int = 64, extra: [String] = []) throws -> DecoderModel {
    try ModelBuilder.build(Recipe.load("\(recipesDir)/nano.yaml", overrides: ["model.vocab_size=\(vocab)"] + extra))
}

private func settings(_ f: (inout TrainSettings) -> Void) -> TrainSettings {
    var s = TrainSettings()
    s.steps = 8
    s.batchSize = 4
    s.seqLen = 32
    s.lr = 3e-3
    s.warmup = 2
    s.evalEvery = 4
    s.evalBatches = 2
    f(&s)
    return s
}

@Suite(.serialized) struct TrainerTests {
    @Test func lossFallsAndMetricsAreLogged() throws {
        let data = try ShardTrainingData(directory: try makeShards(), expectedTokenizerHash: nil, allowMismatch: false)
        let t = try Trainer(model: try nanoModel(), data: data, settings: settings { $0.steps = 30; $0.evalEvery = 10 })
        let out = tempDir("run")
        t.outputDirectory = out
        t.metricsPath = out + "/metrics.jsonl"
        let s = try t.run()
        #expect(s.stop == .finished && s.steps == 30)
        let rows = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(MetricsRow.self, from: Data($0.utf8)) }
        let losses = rows.compactMap(\.loss)
        #expect(losses.count == 30)
        #expect(losses.last! < losses.first! - 1, "loss \(losses.first!) → \(losses.last!)")
        #expect(rows.filter { $0.val_loss != nil }.count == 3)
        #expect(rows.first!.step == 1 && rows.first!.lr! < 3e-3)  // warmup
        #expect(FileManager.default.fileExists(atPath: out + "/step-0000030/optimizer.safetensors"))
    }

    /// Activation checkpointing recomputes each block in the backward: the same gradients bit for
    /// bit (the same ops run on the same values, the same dropout masks from the same seeds), the
    /// same losses, and exact resume still holds.
    @Test(arguments: [[String](), ["model.attention.kernel=naive"], ["model.dropout=0.2"], ["model.dropout=0.2", "model.attention.kernel=naive"]])
    func activationCheckpointingChangesNothingButMemory(extra: [String]) throws {
        let data = try ShardTrainingData(directory: try makeShards(), expectedTokenizerHash: nil, allowMismatch: false)
        let batch = try data.batch(step: 1, micro: 0, settings: settings { _ in }, seqLen: 32)
        var grads: [[[Float]]] = []
        for on in [false, true] {
            let m = try nanoModel(extra: extra)
            m.activationCheckpointing = on
            try m.crossEntropy(batch.input, targets: batch.targets, batch: batch.rows, dropoutSeed: 9).backward()
            grads.append(m.namedParameters().map { $0.parameter.value.grad?.scalars ?? [] })
        }
        #expect(grads[0] == grads[1])
        #expect(grads[0].allSatisfy { !$0.isEmpty })
        var losses: [[Double]] = []
        for on in [false, true] {
            let t = try Trainer(model: try nanoModel(extra: extra), data: data, settings: settings { $0.activationCheckpointing = on })
            var rows: [Double] = []
            t.onStep = { row, _ in rows.append(row.loss ?? .nan) }
            _ = try t.run()
            losses.append(rows)
        }
        #expect(losses[0] == losses[1] && losses[0].count == 8)
    }

    /// The LM head and loss in chunks (each recomputed in the backward) give the one-piece loss and
    /// gradients up to float rounding: the chunk means are weighted sums of the same terms, added
    /// in another order (`Tolerance.Model.loss`, `Tolerance.Model.gradients`).
    @Test func chunkedHeadLossMatchesTheWholeOne() throws {
        let data = try ShardTrainingData(directory: try makeShards(), expectedTokenizerHash: nil, allowMismatch: false)
        let b = try data.batch(step: 1, micro: 0, settings: settings { _ in }, seqLen: 32)
        var targets = b.targets
        for i in stride(from: 0, to: targets.count, by: 7) { targets[i] = -100 }  // ignored positions weigh the chunks unevenly
        var results: [(Float, [[Float]])] = []
        for chunk in [0, 40] {
            let m = try nanoModel()
            let loss: Tensor
            if chunk == 0 {
                loss = try Tensor.crossEntropy(logits: m(b.input, batch: b.rows).reshaped([-1, 64]), targets: targets)
            } else {
                m.activationCheckpointing = true
                loss = try m.crossEntropy(b.input, targets: targets, batch: b.rows, chunk: chunk)
            }
            try loss.backward()
            results.append((loss.item(), m.namedParameters().map { $0.parameter.value.grad?.scalars ?? [] }))
        }
        #expect(abs(results[0].0 - results[1].0) < Float(Tolerance.Model.loss))
        for (g0, g1) in zip(results[0].1, results[1].1) {
            #expect(!g0.isEmpty && g0.count == g1.count)
            #expect(zip(g0, g1).allSatisfy { abs($0 - $1) <= Tolerance.Model.gradients * max(1, abs($0)) })
        }
    }

    /// B4: a time budget is not capped by `steps`, plans its total from the measured step time and
    /// fits the cosine decay into it (the last steps run near min_lr), with about 10 evaluations.
    @Test func aTimeBudgetPlansStepsAndFitsTheDecay() throws {
        let data = try ShardTrainingData(directory: try makeShards(), expectedTokenizerHash: nil, allowMismatch: false)
        let t = try Trainer(model: try nanoModel(), data: data, settings: settings {
            $0.steps = 5  // the recipe's steps: no cap under a time budget
            $0.evalEvery = 0
            $0.schedule = "cosine"
            $0.seqLen = 16
            $0.batchSize = 2
        })
        t.timeBudgetSeconds = 2
        let out = tempDir("budget")
        t.metricsPath = out + "/metrics.jsonl"
        let started = Date()
        let s = try t.run()
        let wall = Date().timeIntervalSince(started)
        #expect(s.stop == .finished)
        #expect(s.steps > 20, "only \(s.steps) steps in 2 s")
        #expect(wall < 2 + 1.5, "ran \(wall) s for a 2 s budget")
        #expect(t.settings.steps == s.steps || wall >= 2, "planned \(t.settings.steps), ran \(s.steps)")
        let rows = try String(contentsOfFile: out + "/metrics.jsonl", encoding: .utf8).split(separator: "\n")
            .map { try JSONDecoder().decode(MetricsRow.self, from: Data($0.utf8)) }
        let lrs = rows.compactMap(\.lr)
        #expect(lrs.max()! == 3e-3 || lrs.max()! > 2.9e-3)
        #expect(lrs.last! < 0.5 * 3e-3, "the decay did not fit the budget: last lr \(lrs.last!)")
        let evals = rows.filter { $0.val_loss != nil }.count
        #expect(evals >= 5 && evals <= 13, "\(evals) evaluations")
    }

    /// Dropout included: its masks are a function of the run's seed, the step and the micro-batch.
    @Test(arguments: [("adamw", [String]()), ("muon", []), ("sgd", []), ("adamw", ["model.dropout=0.2"])])
    func resumeIsBitExact(optimizer: String, extra: [String]) throws {
        let shards = try makeShards()
        let s = settings { $0.optimizer = optimizer; $0.momentum = 0.9; $0.saveEvery = 3 }
        // Uninterrupted run.
        let full = try Trainer(model: try nanoModel(extra: extra), data: ShardTrainingData(directory: shards, expectedTokenizerHash: nil, allowMismatch: false), settings: s)
        let outA = tempDir("a")
        full.outputDirectory = outA
        full.metricsPath = outA + "/m.jsonl"
        _ = try full.run()
        // Interrupted after step 3 (as SIGINT does), then resumed from the checkpoint.
        let first = try Trainer(model: try nanoModel(extra: extra), data: ShardTrainingData(directory: shards, expectedTokenizerHash: nil, allowMismatch: false), settings: s)
        let outB = tempDir("b")
        first.outputDirectory = outB
        first.metricsPath = outB + "/m.jsonl"
        let stop = Flag()
        first.onStep = { row, _ in if row.step == 3 { stop.set() } }
        first.stopRequested = { stop.value }
        let r1 = try first.run()
        #expect(r1.stop == .interrupted && r1.steps == 3)
        let ck = try TrainingCheckpoint.latest(in: outB)
        let second = try Trainer(model: try ModelIO.loadCheckpoint(ck), data: ShardTrainingData(directory: shards, expectedTokenizerHash: "test-hash", allowMismatch: false), settings: s)
        try second.restore(from: ck)
        second.outputDirectory = outB
        second.metricsPath = outB + "/m.jsonl"
        _ = try second.run()
        let a = try String(contentsOfFile: outA + "/m.jsonl", encoding: .utf8)
        let b = try String(contentsOfFile: outB + "/m.jsonl", encoding: .utf8)
        func losses(_ s: String) -> [String] {
            s.split(separator: "\n").map { line in
                let o = try! JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
                return "\(o["step"]!) \(o["loss"].map { "\($0)" } ?? "-") \(o["val_loss"].map { "\($0)" } ?? "-")"
            }
        }
        #expect(losses(a) == losses(b), "\(optimizer)")
        let pa = ModelIO.hostTensors(full.model), pb = ModelIO.hostTensors(second.model)
        #expect(pa == pb, "\(optimizer): final weights differ")
    }

    /// Dropout acts only in training forwards: a forward without a seed (evaluation, validation,
    /// generation) is the model without dropout; a seed fixes the masks; another seed draws others;
    /// the checkpoint keeps the rates.
    @Test func dropoutOnlyInTrainingForwards() throws {
        let data = try ShardTrainingData(directory: try makeShards(), expectedTokenizerHash: nil, allowMismatch: false)
        let b = try data.batch(step: 1, micro: 0, settings: settings { _ in }, seqLen: 32)
        let plain = try nanoModel(), dropped = try nanoModel(extra: ["model.dropout={embedding: 0.1, attention: 0.2, residual: 0.3}"])
        #expect(dropped.dropout == DropoutRates(embedding: 0.1, attention: 0.2, residual: 0.3))
        func loss(_ m: DecoderModel, _ seed: UInt64?) throws -> Float {
            try GradMode.withoutGrad { try m.crossEntropy(b.input, targets: b.targets, batch: b.rows, dropoutSeed: seed).item() }
        }
        #expect(try loss(plain, nil) == loss(dropped, nil))
        #expect(try loss(plain, 3) == loss(plain, 3) && loss(plain, 3) == loss(plain, nil))  // no rates: seeds do nothing
        #expect(try loss(dropped, 3) == loss(dropped, 3))
        #expect(try loss(dropped, 3) != loss(dropped, nil))
        #expect(try loss(dropped, 3) != loss(dropped, 4))
        // Each rate acts alone too.
        for rate in ["embedding", "attention", "residual"] {
            let m = try nanoModel(extra: ["model.dropout={\(rate): 0.5}"])
            #expect(try loss(m, 3) != loss(m, nil), "\(rate)")
        }
        // The rates travel with a checkpoint.
        let dir = tempDir("dropout-ck")
        try ModelIO.saveCheckpoint(dropped, to: dir)
        #expect(try ModelIO.loadCheckpoint(dir).dropout == dropped.dropout)
    }

    @Test func badDropoutSettingsNameTheirKey() throws {
        for (value, message) in [("1.5", "model.dropout: must be a probability in [0, 1)"), ("{attention: -0.1}", "model.dropout.attention: must be a probability in [0, 1)"),
                                 ("{attn: 0.1}", "model.dropout.attn: unknown key"), ("yes", "model.dropout: expected a probability")] {
            #expect {
                _ = try nanoModel(extra: ["model.dropout=\(value)"])
            } throws: { "\($0)".contains(message) }
        }
    }

    @Test func gradientAccumulationEqualsTheLargerBatch() throws {
        let shards = try makeShards()
        var losses: [[Double]] = []
        var weights: [[String: [Float]]] = []
        for (b, a) in [(4, 1), (2, 2), (1, 4)] {
            let t = try Trainer(model: try nanoModel(), data: ShardTrainingData(directory: shards, expectedTokenizerHash: nil, allowMismatch: false),
                                settings: settings { $0.batchSize = b; $0.gradAccum = a; $0.steps = 3; $0.evalEvery = 0; $0.order = "sequential" })
            var l: [Double] = []
            t.onStep = { row, _ in l.append(row.loss!) }
            _ = try t.run()
            losses.append(l)
            weights.append(ModelIO.hostTensors(t.model).mapValues(\.values))
        }
        for i in 1..<3 {
            for (x, y) in zip(losses[0], losses[i]) { #expect(abs(x - y) < Tolerance.Training.reorderedLoss) }
            for (k, v) in weights[0] { #expect(Fixtures.maxAbsDiff(v, weights[i][k]!) < Tolerance.Training.reorderedWeights, "\(k)") }
        }
    }

    @Test func nonFiniteLossStopsWithTheStep() throws {
        let shards = try makeShards()
        let t = try Trainer(model: try nanoModel(), data: ShardTrainingData(directory: shards, expectedTokenizerHash: nil, allowMismatch: false),
                            settings: settings { $0.lr = 1e30; $0.warmup = 0; $0.gradClip = 0; $0.optimizer = "sgd"; $0.evalEvery = 0 })
        t.outputDirectory = tempDir("nan")
        let s = try t.run()
        #expect(s.stop == .nonFinite)
        #expect(s.message?.contains("step \(s.steps + 1)") == true, "\(s.message ?? "")")
    }

    @Test func tokenizerMismatchIsRefused() throws {
        let shards = try makeShards()
        #expect(throws: (any Error).self) { try ShardTrainingData(directory: shards, expectedTokenizerHash: "other", allowMismatch: false) }
        _ = try ShardTrainingData(directory: shards, expectedTokenizerHash: "other", allowMismatch: true)
    }

    @Test func recipeTrainBlockIsStrict() throws {
        let r = try Recipe.load("\(recipesDir)/gpt2.yaml", overrides: ["train.learning_rate=3"])
        do { _ = try TrainSettings(recipe: r); Issue.record("unknown key accepted") } catch {
            #expect("\(error)".contains("train.learning_rate"))
        }
        let ok = try TrainSettings(recipe: Recipe.load("\(recipesDir)/gpt2.yaml"))
        #expect(ok.betas == [0.9, 0.95] && ok.optimizer == "adamw" && ok.schedule == "cosine")
        let bad = try Recipe.load("\(recipesDir)/gpt2.yaml", overrides: ["train.schedule=cosin"])
        #expect(throws: (any Error).self) { try TrainSettings(recipe: bad) }
    }

    @Test func fullBatchTokenFileTrainingMatchesEvalLoss() throws {
        let path = tempDir("tokens") + ".json"
        try "[[1,2,3,4,5,6,7,8],[8,7,6,5,4,3,2,1]]".write(toFile: path, atomically: true, encoding: .utf8)
        let data = try TokenFileData(path: path)
        let model = try nanoModel()
        let before = try Evaluation.score(model, sequences: data.sequences).loss
        let t = try Trainer(model: model, data: data, settings: settings { $0.seqLen = nil; $0.evalEvery = 0; $0.steps = 2; $0.warmup = 0 })
        var first: Double? = nil
        t.onStep = { row, _ in if first == nil { first = row.loss } }
        _ = try t.run()
        #expect(abs(first! - before) < Tolerance.fewRoundings)  // step 1 logs the initial loss, as toolkit eval computes it
    }

    @Test func tokenFileBatchReadsEveryTokenAsPyTorchLabelsEqualIds() throws {
        let path = tempDir("tokens") + ".json"
        try "[[1,2,3],[4,5,6]]".write(toFile: path, atomically: true, encoding: .utf8)
        let b = try TokenFileData(path: path).batch(step: 1, micro: 0, settings: TrainSettings(), seqLen: 3)
        // The last token is read too (a MoE router routes it, as HF's model(ids, labels=ids)); its target is ignored.
        #expect(b.input == [1, 2, 3, 4, 5, 6] && b.targets == [2, 3, -100, 5, 6, -100] && b.rows == 2)
        let long = "[" + (0..<65).map(String.init).joined(separator: ",") + "]"
        try "[\(long)]".write(toFile: path, atomically: true, encoding: .utf8)
        do {
            _ = try Trainer(model: nanoModel(), data: TokenFileData(path: path), settings: settings { $0.seqLen = 32 })
            Issue.record("65-token sequences accepted by a 64-token context")
        } catch { #expect("\(error)".contains(path) && "\(error)".contains("context length 64"), "\(error)") }
    }
}

/// A thread-safe boolean for test stop requests (the global SIGINT flag is shared by parallel tests).
final class Flag: @unchecked Sendable {
    private let lock = NSLock()
    private var v = false
    var value: Bool { lock.lock(); defer { lock.unlock() }; return v }
    func set() { lock.lock(); v = true; lock.unlock() }
}
