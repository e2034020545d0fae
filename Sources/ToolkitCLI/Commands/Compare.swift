import ArgumentParser
import FineTuning
import Foundation
import Reporting
import Tokenization
import TokenShards
import ToolkitSupport
import Training

struct Compare: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train recipes on equal terms and report them side by side: toolkit compare gpt2 vs rope --data SHARDS.",
        discussion: """
            Under mpirun (mpirun -np N toolkit compare …) the variant × seed runs are spread over the ranks, \
            each run trained whole on one rank; rank 0 writes the same report as a serial compare.
            """)

    @Argument(help: "Variants, optionally separated by 'vs': recipe names or paths, each optionally with its own overrides, e.g. qwen3-small@model.attention.kv_heads=1.")
    var recipes: [String] = []
    @Option(help: "Shard directory (toolkit shard).") var data: String
    @Option(help: "Optimizer steps per run.") var steps: Int?
    @Option(help: "Training tokens per run (steps = tokens / (batch × seq_len × grad_accum)).") var tokens: Int?
    @Option(help: "Wall-clock minutes per run (speed-versus-quality comparisons).") var minutes: Double?
    @Option(help: "Seeds per variant (mean ± sd when > 1).") var seeds = 1
    @Option(name: .customLong("set"), help: "Override applied to every recipe.") var overrides: [String] = []
    @Option(help: "Tokenizer of the shards (adds bits-per-byte).") var tokenizer: String?
    @Option(help: "Multiple-choice task file (HellaSwag or llm-foundry JSONL; needs --tokenizer) scored at every evaluation: adds task acc columns.")
    var task: String?
    @Flag(help: "Use --tokenizer even when it is not the shards' tokenizer.") var allowTokenizerMismatch = false
    @Option(help: "Output folder (default Checkpoints/compare-<names>-<timestamp>; an unfinished identical compare resumes).")
    var out: String?
    @Flag(help: "Keep each run's final checkpoint (<out>/<variant>/seed-N/step-*/).") var keepFinal = false
    @Flag(help: "Print a JSON summary.") var json = false

    mutating func validate() throws {
        recipes = recipes.filter { $0 != "vs" }
        guard recipes.count >= 2 else { throw ValidationError("give at least two recipes, e.g. toolkit compare gpt2 vs rope") }
        let budgets = [steps != nil, tokens != nil, minutes != nil].filter { $0 }.count
        guard budgets <= 1 else { throw ValidationError("give at most one of --steps, --tokens, --minutes") }
        if let steps, steps < 1 { throw ValidationError("--steps must be at least 1") }
        if let tokens, tokens < 1 { throw ValidationError("--tokens must be at least 1") }
        if let minutes, !(minutes > 0) { throw ValidationError("--minutes must be positive") }
        guard seeds >= 1 else { throw ValidationError("--seeds must be at least 1") }
    }

    func run() throws {
        let budget: CompareHarness.Budget = steps.map { .steps($0) } ?? tokens.map { .tokens($0) }
            ?? minutes.map { .minutes($0) } ?? .steps(100)
        let config = CompareHarness.Configuration(variants: recipes, data: data, budget: budget, seeds: seeds,
                                                  overrides: overrides, tokenizer: tokenizer, task: task)
        // Under mpirun, rank 0 picks the folder (the default one is named by the time) for every rank.
        let comm = Job.world
        let dir = comm.broadcast(out ?? CompareHarness.resumable(config)
            ?? CompareReport.defaultDirectory(variantNames: recipes, date: Date()))
        let harness = CompareHarness(configuration: config, directory: dir)
        harness.communicator = comm
        harness.keepFinalCheckpoints = keepFinal
        if let tokenizer {
            // Bits-per-byte with another tokenizer than the shards' would count the wrong strings.
            let tok = try BPETokenizer.load(path: tokenizer)
            try requireShardTokenizer(tok, path: tokenizer, shardsHash: try ShardDataset(directory: data, expectedTokenizerHash: nil).manifest.tokenizer.hash,
                                      shards: data, allowMismatch: allowTokenizerMismatch)
            harness.tokenBytes = tokenByteCounter(tok)
            if let task { harness.taskItems = try MultipleChoiceTask.load(task, codec: TextCodec(tokenizer: tok)) }
        } else if task != nil {
            throw ValidationError("--task needs the shards' tokenizer: --tokenizer FILE")
        }
        let runs = recipes.count * seeds
        let bar = ProgressBar(total: Double(runs), label: "compare", unit: "runs", enabled: !json && comm.isRoot)
        harness.onStep = { index, total, name, seed, row, settings in
            let fraction = Double(index - 1) + Double(row.step) / Double(settings.steps)
            bar.update(fraction, extra: String(format: "run %d/%d %@ seed %d step %d loss %.3f", index, total, name, seed,
                                              row.step, row.loss ?? .nan))
        }
        harness.onRunSkipped = { name, seed in if !json { printError("\(name) seed \(seed): finished earlier, reusing it") } }
        Interrupt.install()
        let result: CompareReport?
        do { result = try harness.run() } catch where comm.size > 1 {
            printError("rank \(comm.rank) of \(comm.size): \(error)")  // ends every rank, none left waiting
            comm.abort(code: 1)
        }
        (comm as? MPICommunicator)?.finalize()
        guard let report = result else {
            bar.finish()
            if comm.isRoot { printError("interrupted: rerun the same command to resume (finished runs are kept in \(dir))") }
            throw ExitCode(130)
        }
        bar.finish()
        guard comm.isRoot else { return }
        if json {
            print(try report.summaryJSON())
        } else {
            print(report.terminalTable())
            print("\(runs) runs; report: \(dir)/report.md, \(dir)/report.html, \(dir)/loss.svg")
        }
    }
}
