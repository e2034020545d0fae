import Foundation
import Models
import Reporting
import Testing
import TensorCore
import TokenShards
import _TestSupport
@testable import Training

private let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

@Suite(.serialized) struct CompareTests {
    static func shards() throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-shards-\(UUID())").path
        var opts = ShardWriterOptions()
        opts.shardTokens = 4_000
        let w = try ShardWriter(directory: dir, tokenizer: TokenizerInfo(hash: "h", vocabSize: 64, eotID: 0), options: opts)
        var rng = SplitMix64(seed: 3)
        var t: [UInt32] = []
        while t.count < 10_000 { let s = UInt32(1 + rng.next() % 50); t += (0..<5).map { s + UInt32($0) } }
        try w.append(t)
        _ = try w.finish(valFraction: 0.2)
        return dir
    }

    func config(_ data: String) -> CompareHarness.Configuration {
        CompareHarness.Configuration(
            variants: ["\(recipesDir)/nano.yaml", "\(recipesDir)/nano-qwen3.yaml"], data: data, budget: .steps(6), seeds: 2,
            overrides: ["model.vocab_size=64", "train.batch_size=2", "train.seq_len=16"], tokenizer: nil)
    }

    /// B1: a compare folder given relative to the working directory (as the default is) reads its
    /// runs back: each summary's metrics path resolves.
    @Test func relativeOutputFolderReadsBack() throws {
        let data = try Self.shards()
        // A path relative to the working directory, without changing it (tests run in parallel).
        let out = ".build/test-compare-\(UUID())"
        defer { try? FileManager.default.removeItem(atPath: out) }
        var c = config(data)
        c.seeds = 1
        _ = try #require(try CompareHarness(configuration: c, directory: out).run())
        let record = try RunRecord.load(summaryPath: out + "/nano/seed-1/summary.json")
        #expect(record.summary.finalTrainLoss.isFinite)
    }

    /// Per-variant overrides: `RECIPE@key=value` trains that recipe with the override (after every
    /// --set), named by its whole text in the report; --keep-final keeps each run's checkpoint.
    @Test func perVariantOverridesAndKeptCheckpoints() throws {
        let data = try Self.shards()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-\(UUID())").path
        let nano = "\(recipesDir)/nano-qwen3.yaml"
        var c = config(data)
        c.variants = [nano, nano + "@model.attention.kv_heads=1@train.lr=0.001"]
        c.seeds = 1
        let harness = CompareHarness(configuration: c, directory: out)
        harness.keepFinalCheckpoints = true
        let report = try #require(try harness.run())
        #expect(report.rows.map(\.name) == ["nano-qwen3", nano + "@model.attention.kv_heads=1@train.lr=0.001"])
        let folder = CompareHarness.safe(report.rows[1].name)
        let kept = try ModelIO.load(out + "/" + folder + "/seed-1/step-0000006")
        #expect(kept.dims.kvHeads == 1)
        #expect(try ModelIO.load(out + "/nano-qwen3/seed-1/step-0000006").dims.kvHeads == 2)
        let (state, _) = try TrainingCheckpoint.loadState(out + "/" + folder + "/seed-1/step-0000006")
        #expect(state.settings.lr == 0.001)
        // A task scored at every evaluation adds its columns.
        var t = c
        t.task = "items"
        let scored = CompareHarness(configuration: t, directory: out + "-task")
        scored.taskItems = [MultipleChoiceItem(context: [1, 2, 3], choices: [[4, 5], [9, 9, 9]], choiceCharacters: [4, 6], gold: 0),
                            MultipleChoiceItem(context: [10, 11], choices: [[12], [40], [3]], choiceCharacters: [2, 2, 2], gold: 0)]
        let withTask = try #require(try scored.run())
        #expect(withTask.columns.contains(.taskAccuracy) && withTask.columns.contains(.taskNormalizedAccuracy))
        #expect(!report.columns.contains(.taskAccuracy))
        for run in withTask.runs { #expect([0, 0.5, 1].contains(run.taskAccuracy ?? -1)) }
        #expect(withTask.markdown().contains("task acc_norm"))
        // The variants differ in their results; a malformed variant is refused.
        #expect(report.runs[0].finalTrainLoss != report.runs[1].finalTrainLoss)
        c.variants = [nano, nano + "@kv_heads"]
        #expect(throws: (any Error).self) { try CompareHarness(configuration: c, directory: out + "-bad").run() }
    }

    @Test func writesReportWhoseNumbersMatchTheMetricsAndReproduce() throws {
        let data = try Self.shards()
        let out1 = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-\(UUID())").path
        let r1 = try #require(try CompareHarness(configuration: config(data), directory: out1).run())
        for f in ["report.md", "report.html", "loss.svg", "compare.json", "nano/seed-1/metrics.jsonl", "nano-qwen3/seed-2/summary.json"] {
            #expect(FileManager.default.fileExists(atPath: out1 + "/" + f), "\(f)")
        }
        // Table numbers come from the metrics files.
        for run in r1.runs {
            let log = try MetricsLog.read(path: run.metricsPath)
            #expect(run.finalTrainLoss == log.steps.last!.loss)
            #expect(run.valLoss == log.evals.last!.valLoss)
        }
        // A rerun gives identical numbers (timing columns aside).
        let out2 = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-\(UUID())").path
        let r2 = try #require(try CompareHarness(configuration: config(data), directory: out2).run())
        #expect(r1.runs.map(\.finalTrainLoss) == r2.runs.map(\.finalTrainLoss))
        #expect(r1.runs.map(\.valLoss) == r2.runs.map(\.valLoss))
        // Both variants saw the same tokens.
        #expect(Set(r1.runs.map(\.tokensSeen)).count == 1)
    }

    @Test func interruptedCompareResumesWithoutRepeatingFinishedRuns() throws {
        let data = try Self.shards()
        let out = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-\(UUID())").path
        let h = CompareHarness(configuration: config(data), directory: out)
        var runsStarted = 0
        let stop = Flag()
        h.stopRequested = { stop.value }
        h.onStep = { index, _, _, _, row, _ in
            if row.step == 1 { runsStarted += 1 }
            if index == 3 && row.step == 2 { stop.set() }
        }
        #expect(try h.run() == nil)
        #expect(runsStarted == 3)
        let finished = try String(contentsOfFile: out + "/nano/seed-2/summary.json", encoding: .utf8)
        let again = CompareHarness(configuration: config(data), directory: out)
        var skipped: [String] = []
        again.onRunSkipped = { name, seed in skipped.append("\(name)/\(seed)") }
        let report = try #require(try again.run())
        #expect(skipped == ["nano/1", "nano/2"])
        #expect(try String(contentsOfFile: out + "/nano/seed-2/summary.json", encoding: .utf8) == finished)
        #expect(report.runs.count == 4)
    }
}

@Suite struct CompareFolderTests {
    @Test func aFolderOfAnotherCompareIsRefused() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("cmp-other-\(UUID())").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let other = CompareHarness.Configuration(variants: ["a", "b"], data: "x", budget: .steps(1), seeds: 1, overrides: [], tokenizer: nil)
        try JSONEncoder().encode(other).write(to: URL(fileURLWithPath: dir + "/compare.json"))
        let mine = CompareHarness.Configuration(
            variants: ["\(recipesDir)/nano.yaml", "\(recipesDir)/nano-qwen3.yaml"], data: "x", budget: .steps(2), seeds: 1,
            overrides: [], tokenizer: nil)
        do {
            _ = try CompareHarness(configuration: mine, directory: dir).run()
            Issue.record("a different compare's folder was reused")
        } catch { #expect("\(error)".contains("different compare")) }
    }
}

@Suite struct TrainKeysDocumentedTests {
    /// Every `train:` key the code accepts is documented in README's Recipes section (the unknown-key
    /// error lists the keys the code asked for).
    @Test func everyTrainKeyIsDocumented() throws {
        let readme = try String(contentsOfFile: recipesDir + "/../README.md", encoding: .utf8)
        let section = readme.components(separatedBy: "\n## Recipes")[1].components(separatedBy: "\n## ")[0]
        do {
            _ = try TrainSettings(recipe: Recipe.load("\(recipesDir)/nano.yaml", overrides: ["train.zz_unknown=1"]))
            Issue.record("train.zz_unknown was accepted")
        } catch {
            let keys = "\(error)".components(separatedBy: "(allowed here: ")[1].prefix { $0 != ")" }.split(separator: ",")
            #expect(keys.count >= TrainSettings.CodingKeys.allCases.count)
            for key in keys.map({ $0.trimmingCharacters(in: .whitespaces) }) where !section.contains(key) {
                Issue.record("train key '\(key)' is not documented in README's Recipes section")
            }
        }
    }
}

