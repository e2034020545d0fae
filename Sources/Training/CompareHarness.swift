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
        /// A multiple-choice task file scored at every evaluation (`--task`): adds task accuracy columns.
        public var task: String?

        public init(variants: [String], data: String, budget: Budget, seeds: Int, overrides: [String], tokenizer: String?,
                    task: String? = nil) {
            self.task = task
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
    /// Under mpirun the runs are spread over the ranks (run i on rank i mod size, each trained in
    /// that one process); every rank must be given the same `directory`, and rank 0 writes the report.
    public var communicator: any Communicator = SingleProcess()
    /// Keep each run's final checkpoint in its run folder (`<run>/step-N/`; not part of the
    /// configuration: it does not change the results).
    public var keepFinalCheckpoints = false
    /// The items of `configuration.task`, read with the shards' tokenizer by the caller.
    public var taskItems: [MultipleChoiceItem]?

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

    /// Runs what is not finished yet and writes the report. Returns nil if interrupted (on any rank).
    public func run() throws -> CompareReport? {
        let c = configuration, comm = communicator
        guard c.variants.count >= 2 else { throw ToolkitError("compare needs at least two recipes") }
        guard Set(c.variants).count == c.variants.count else { throw ToolkitError("compare: a recipe is listed twice") }
        let recipes = try c.variants.map(loadVariant)
        let folders = recipes.map { Self.safe($0.name) }
        guard Set(folders).count == folders.count else {
            throw ToolkitError("compare: two variants would share a run folder (\(folders.joined(separator: ", "))); name them differently")
        }
        if comm.isRoot {
            if let data = FileManager.default.contents(atPath: directory + "/compare.json") {
                // Finished runs are reused only for the same comparison.
                guard let saved = try? JSONDecoder().decode(Configuration.self, from: data), saved == c else {
                    throw ToolkitError("\(directory) holds a different compare (compare.json); choose another --out or remove it")
                }
            }
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(c), to: directory + "/compare.json")
        }
        comm.barrier()
        let data = try ShardTrainingData(directory: c.data, expectedTokenizerHash: nil, allowMismatch: false)
        let total = recipes.count * c.seeds
        func runDir(_ recipe: Recipe, _ seed: Int) -> String { "\(directory)/\(Self.safe(recipe.name))/seed-\(seed)" }
        var interrupted = false
        for (i, (recipe, seed)) in recipes.flatMap({ r in (1...c.seeds).map { (r, $0) } }).enumerated()
        where i % comm.size == comm.rank && !interrupted {
            let dir = runDir(recipe, seed)
            if FileManager.default.fileExists(atPath: dir + "/summary.json") {
                onRunSkipped?(recipe.name, seed)
                continue
            }
            try? FileManager.default.removeItem(atPath: dir)  // an interrupted run restarts
            interrupted = try !train(recipe: recipe, seed: seed, data: data, runDir: dir, index: i + 1, total: total)
        }
        if comm.size > 1 {
            var flag = [interrupted ? 1.0 : 0]
            comm.allreduceSum(&flag)  // also waits for every rank's runs
            interrupted = flag[0] > 0
        }
        if interrupted { return nil }
        let variants = try recipes.map { recipe in
            VariantRuns(name: recipe.name, runs: try (1...c.seeds).map { try RunRecord.load(summaryPath: runDir(recipe, $0) + "/summary.json") })
        }
        let notes = [
            "data: \(c.data) (\(data.dataset.manifest.totalTokens) tokens)",
            "budget: \(Self.describe(c.budget)) per run; seeds: \(c.seeds)" + (c.overrides.isEmpty ? "" : "; --set \(c.overrides.joined(separator: " "))"),
        ] + (c.task.map { ["task: \($0) (\(taskItems?.count ?? 0) items; acc = lowest summed continuation loss, acc_norm = per character)"] } ?? [])
        let report = try CompareReport.build(variants: variants, title: "compare " + c.variants.joined(separator: " vs "), notes: notes)
        if comm.isRoot { try report.write(to: directory) }
        return report
    }

    /// A variant: a recipe name or path, optionally followed by per-variant overrides
    /// (`qwen3-small@model.attention.kv_heads=1@train.lr=3e-4`, applied after every `--set`); a
    /// variant with overrides is named by its whole text in the report.
    func loadVariant(_ variant: String) throws -> Recipe {
        let parts = variant.split(separator: "@", omittingEmptySubsequences: false).map(String.init)
        let extra = Array(parts.dropFirst())
        guard !parts[0].isEmpty, extra.allSatisfy({ $0.contains("=") }) else {
            throw ToolkitError("compare: '\(variant)' is not RECIPE or RECIPE@key.path=value[@key.path=value…]")
        }
        var recipe = try Recipe.load(parts[0], overrides: configuration.overrides + extra)
        if !extra.isEmpty { recipe.name = variant }
        return recipe
    }

    static func describe(_ b: Budget) -> String {
        switch b {
        case .steps(let n): return "\(n) steps"
        case .tokens(let n): return "\(n) tokens"
        case .minutes(let m): return "\(m) minutes"
        }
    }

    static func safe(_ name: String) -> String { String(name.map { variantNameCharacters.contains($0) ? $0 : "_" }) }

    /// Trains one run and writes its summary; false when it was interrupted.
    func train(recipe: Recipe, seed: Int, data: ShardTrainingData, runDir: String, index: Int, total: Int) throws -> Bool {
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
        if case .minutes = configuration.budget {
            // Steps, evaluations and the schedule's decay are planned from the measured step time
            // (Trainer.timeBudgetSeconds); the recipe's steps are no cap.
            s.evalEvery = 0
        } else {
            s.warmup = min(s.warmup, max(0, s.steps / 10))
            if s.evalEvery == 0 || s.evalEvery > s.steps { s.evalEvery = max(1, s.steps / 10) }
        }
        if keepFinalCheckpoints { s.saveEvery = 0 }  // the final checkpoint only: saves inside the budget would cost the run time
        let trainer = try Trainer(model: model, data: data, settings: s)
        trainer.metricsPath = runDir + "/metrics.jsonl"
        if keepFinalCheckpoints { trainer.outputDirectory = runDir }
        trainer.tokenBytes = tokenBytes
        trainer.evalTask = taskItems
        trainer.stopRequested = stopRequested
        if case .minutes(let m) = configuration.budget { trainer.timeBudgetSeconds = m * 60 }
        trainer.onStep = { [onStep] row, settings in onStep?(index, total, recipe.name, seed, row, settings) }
        let start = monotonicSeconds()
        let result = try trainer.run()
        switch result.stop {
        case .interrupted: return false
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
        return true
    }
}
