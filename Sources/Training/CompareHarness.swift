import Foundation
import Layers
import Models
import Reporting
import ToolkitSupport

/// `toolkit compare`: trains every variant on equal terms (same data order, batch, schedule,
/// seeds and token or time budget), evaluates on the same held-out batches, and writes a report.
public final class CompareHarness {
    /// The budget each variant gets.
    public enum Budget: Codable, Equatable, Sendable {
        case steps(Int)
        case tokens(Int)
        case minutes(Double)
    }

    /// Everything that defines a compare run (saved as compare.json; a rerun with the same
    /// configuration resumes the unfinished run instead of starting over).
    public struct Configuration: Codable, Equatable, Sendable {
        public var variants: [String]
        public var data: String
        public var budget: Budget
        public var seeds: Int
        public var overrides: [String]
        public var tokenizer: String?

        public init(variants: [String], data: String, budget: Budget, seeds: Int, overrides: [String], tokenizer: String?) {
            self.variants = variants
            self.data = data
            self.budget = budget
            self.seeds = seeds
            self.overrides = overrides
            self.tokenizer = tokenizer
        }
    }

    public let configuration: Configuration
    public let directory: String
    /// Progress: (run index, runs, variant, seed, step row).
    public var onStep: ((Int, Int, String, Int, MetricsRow, TrainSettings) -> Void)?
    public var onRunSkipped: ((String, Int) -> Void)?
    /// Polled after every training step (default: SIGINT seen).
    public var stopRequested: @Sendable () -> Bool = { Interrupt.requested }
    /// Maps a token id to its byte length (validation bits-per-byte).
    public var tokenBytes: ((Int32) -> Int)?

    public init(configuration: Configuration, directory: String) {
        self.configuration = configuration
        self.directory = directory
    }

    /// The unfinished compare folder under `root` with the same configuration, if any.
    public static func resumable(_ c: Configuration, root: String = "Checkpoints") -> String? {
        let fm = FileManager.default
        let names = ((try? fm.contentsOfDirectory(atPath: root)) ?? []).filter { $0.hasPrefix("compare-") }.sorted()
        for name in names.reversed() {
            let dir = root + "/" + name
            guard !fm.fileExists(atPath: dir + "/report.md"),
                  let data = fm.contents(atPath: dir + "/compare.json"),
                  let saved = try? JSONDecoder().decode(Configuration.self, from: data), saved == c else { continue }
            return dir
        }
        return nil
    }

    static let variantNameCharacters = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")

    /// Runs what is not finished yet and writes the report. Returns nil if interrupted.
    public func run() throws -> CompareReport? {
        let c = configuration
        guard c.variants.count >= 2 else { throw ToolkitError("compare needs at least two recipes") }
        guard Set(c.variants).count == c.variants.count else { throw ToolkitError("compare: a recipe is listed twice") }
        let recipes = try c.variants.map { try Recipe.load($0, overrides: c.overrides) }
        if let data = FileManager.default.contents(atPath: directory + "/compare.json") {
            // Finished runs are reused only for the same comparison.
            guard let saved = try? JSONDecoder().decode(Configuration.self, from: data), saved == c else {
                throw ToolkitError("\(directory) holds a different compare (compare.json); choose another --out or remove it")
            }
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(c), to: directory + "/compare.json")
        let data = try ShardTrainingData(directory: c.data, expectedTokenizerHash: nil, allowMismatch: false)
        let total = recipes.count * c.seeds
        var index = 0
        var variants: [VariantRuns] = []
        for recipe in recipes {
            var runs: [RunRecord] = []
            for seedIndex in 0..<c.seeds {
                index += 1
                let seed = 1 + seedIndex
                let runDir = "\(directory)/\(Self.safe(recipe.name))/seed-\(seed)"
                let summaryPath = runDir + "/summary.json"
                if FileManager.default.fileExists(atPath: summaryPath) {
                    runs.append(try RunRecord.load(summaryPath: summaryPath))
                    onRunSkipped?(recipe.name, seed)
                    continue
                }
                try? FileManager.default.removeItem(atPath: runDir)  // an interrupted run restarts
                guard let record = try train(recipe: recipe, seed: seed, data: data, runDir: runDir, index: index, total: total) else {
                    return nil
                }
                runs.append(record)
            }
            variants.append(VariantRuns(name: recipe.name, runs: runs))
        }
        let notes = [
            "data: \(c.data) (\(data.dataset.manifest.totalTokens) tokens)",
            "budget: \(Self.describe(c.budget)) per run; seeds: \(c.seeds)" + (c.overrides.isEmpty ? "" : "; --set \(c.overrides.joined(separator: " "))"),
        ]
        let report = try CompareReport.build(variants: variants, title: "compare " + c.variants.joined(separator: " vs "), notes: notes)
        try report.write(to: directory)
        return report
    }

    static func describe(_ b: Budget) -> String {
        switch b {
        case .steps(let n): return "\(n) steps"
        case .tokens(let n): return "\(n) tokens"
        case .minutes(let m): return "\(m) minutes"
        }
    }

    static func safe(_ name: String) -> String { String(name.map { variantNameCharacters.contains($0) ? $0 : "_" }) }

    func train(recipe: Recipe, seed: Int, data: ShardTrainingData, runDir: String, index: Int, total: Int) throws -> RunRecord? {
        // Same initialisation seed and data order for every variant.
        var r = recipe
        r.model["seed"] = .int(seed)
        let model = try ModelBuilder.build(r)
        var s = try TrainSettings(recipe: r)
        s.seed = UInt64(seed)
        s.saveEvery = 0
        let seqLen = s.seqLen ?? model.dims.contextLength
        switch configuration.budget {
        case .steps(let n): s.steps = n
        case .tokens(let n): s.steps = max(1, Int((Double(n) / Double(s.batchSize * seqLen * s.gradAccum)).rounded(.up)))
        case .minutes: break
        }
        s.warmup = min(s.warmup, max(0, s.steps / 10))
        if s.evalEvery == 0 || s.evalEvery > s.steps { s.evalEvery = max(1, s.steps / 10) }
        let trainer = try Trainer(model: model, data: data, settings: s)
        trainer.metricsPath = runDir + "/metrics.jsonl"
        trainer.tokenBytes = tokenBytes
        trainer.stopRequested = stopRequested
        if case .minutes(let m) = configuration.budget { trainer.timeBudgetSeconds = m * 60 }
        trainer.onStep = { [onStep] row, settings in onStep?(index, total, recipe.name, seed, row, settings) }
        let start = monotonicSeconds()
        let result = try trainer.run()
        switch result.stop {
        case .interrupted: return nil
        case .nonFinite, .finished: break
        }
        let stats = ModelStats(model: model, batchSize: s.batchSize)
        let metrics = try MetricsLog.read(path: runDir + "/metrics.jsonl")
        let summary = try RunSummary(variant: recipe.name, seed: seed, params: stats.totalParameters,
                                     nonEmbeddingParams: stats.nonEmbeddingParameters, flopsPerToken: stats.flopsPerToken,
                                     wallSeconds: monotonicSeconds() - start,
                                     // absolute: a relative --out (the default) must read back from the
                                     // summary, which resolves relative paths against its own folder
                                     metricsPath: URL(fileURLWithPath: runDir + "/metrics.jsonl").standardizedFileURL.path,
                                     metrics: metrics)
        try summary.write(to: runDir + "/summary.json")
        return try RunRecord(summary: summary, metrics: metrics)
    }
}
