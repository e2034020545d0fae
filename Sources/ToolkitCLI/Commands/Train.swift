import ArgumentParser
import FineTuning
import Foundation
import Layers
import Models
import Optimizers
import Tokenization
import ToolkitSupport
import Training

struct Train: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a model from a recipe or an existing model on shards or a token file.",
        discussion: "Every flag below can also be set in the recipe's train: block (snake_case); flags win.")

    @Option(help: "Recipe name or path (random initialisation).") var recipe: String?
    @Option(name: .customLong("init"), help: "Start from an HF folder or a toolkit checkpoint.") var initFrom: String?
    @Option(help: "Resume a run: its output folder or one of its step-* checkpoints.") var resume: String?
    @Option(name: .customLong("set"), help: "Recipe override key.path=value (with --recipe).") var overrides: [String] = []
    @Option(help: "Shard directory made by toolkit shard.") var data: String?
    @Option(help: "JSON array of equal-length token-id arrays: one full batch per step.") var tokens: String?
    @Option(help: "Tokenizer file: validation bits-per-byte, and every checkpoint carries a copy (default on --resume: the run's own).")
    var tokenizer: String?
    @Flag(help: "Accept shards made with a different tokenizer than the checkpoint's.") var allowTokenizerMismatch = false

    @Option(help: "Optimizer steps.") var steps: Int?
    @Option(help: "Sequences per micro-batch.") var batchSize: Int?
    @Option(help: "Tokens per sequence.") var seqLen: Int?
    @Option(help: "Micro-batches per step.") var gradAccum: Int?
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerCatalog.optimizerNames).")) var optimizer: String?
    @Option(help: "Peak learning rate.") var lr: Double?
    @Option(help: "Learning-rate floor of the decay.") var minLr: Double?
    @Option(help: "Weight decay.") var weightDecay: Double?
    @Option(help: "SGD / Muon momentum.") var momentum: Double?
    @Option(help: "Adam betas, e.g. 0.9,0.95.") var betas: String?
    @Option(help: "Adam epsilon.") var eps: Double?
    @Option(help: "Linear warmup steps.") var warmup: Int?
    @Option(help: ArgumentHelp("Schedule: \(OptimizerCatalog.scheduleNames).")) var schedule: String?
    @Option(help: "Global-norm gradient clipping (0 = off).") var gradClip: Double?
    @Option(help: "Validate every N steps (0 = off).") var evalEvery: Int?
    @Option(help: "Validation batches per evaluation.") var evalBatches: Int?
    @Option(help: "Checkpoint every N steps (0 = only at the end).") var saveEvery: Int?
    @Option(help: "Checkpoints kept.") var keepCheckpoints: Int?
    @Option(help: "Data-order seed.") var seed: Int?
    @Option(help: "random or sequential batch order.") var order: String?
    @Option(help: "Muon learning rate for hidden matrices.") var muonLr: Double?

    @Option(help: "Run folder for checkpoints (default Checkpoints/train-<name>).") var out: String?
    @Option(help: "Metrics JSONL file (default <out>/metrics.jsonl).") var metrics: String?
    @Flag(help: "Print a JSON summary at the end.") var json = false
    @Option(help: "Off a terminal (a log file, nohup, a cluster job): a log line every N steps (step, loss, lr, grad norm, tok/s, ETA); 0: none.")
    var logEvery = 10
    @Option(help: "At each evaluation, log a greedy continuation of this text (needs a tokenizer).") var samplePrompt: String?
    @Option(help: "Tokens of each --sample-prompt continuation.") var sampleTokens = 32
    @Flag(help: "Recompute each block's activations in the backward instead of keeping them (less memory, one more forward).")
    var activationCheckpointing = false
    @Option(help: "Multiple-choice task file (HellaSwag or llm-foundry JSONL; needs a tokenizer and --data) scored at every evaluation: task_acc and task_acc_norm in the metrics.")
    var evalTask: String?
    @Option(help: "Also keep the checkpoint with the best value of this evaluation metric as <out>/best (val_loss, val_bpb, task_acc, …).")
    var keepBest: String?
    @Option(help: "Dropout on embeddings, attention weights and residual branches while training (recipe model.dropout; overrides the recipe's or the checkpoint's rates; never in evaluation or generation).")
    var dropout: Double?
    @OptionGroup(title: "Data parallel (mpirun)") var parallel: DataParallelFlags
    @Flag(help: "With --resume and a new --steps: re-plan the decaying learning-rate schedule for the new total (the rate jumps).")
    var reschedule = false

    func validate() throws {
        let sources = [recipe, initFrom, resume].compactMap { $0 }.count
        guard sources == 1 else { throw ValidationError("give exactly one of --recipe, --init or --resume") }
        guard (data == nil) != (tokens == nil) else { throw ValidationError("give exactly one of --data or --tokens") }
        if !overrides.isEmpty && recipe == nil { throw ValidationError("--set needs --recipe") }
    }

    /// Flags given on the command line, as recipe keys.
    func flagValues() throws -> [String: ConfigValue] {
        var v: [String: ConfigValue] = [:]
        func put(_ k: String, _ x: Int?) { if let x { v[k] = .int(x) } }
        func put(_ k: String, _ x: Double?) { if let x { v[k] = .double(x) } }
        func put(_ k: String, _ x: String?) { if let x { v[k] = .string(x) } }
        put("steps", steps); put("batch_size", batchSize); put("seq_len", seqLen); put("grad_accum", gradAccum)
        put("optimizer", optimizer); put("lr", lr); put("min_lr", minLr); put("weight_decay", weightDecay)
        put("momentum", momentum); put("eps", eps); put("warmup", warmup); put("schedule", schedule)
        put("grad_clip", gradClip); put("eval_every", evalEvery); put("eval_batches", evalBatches)
        put("save_every", saveEvery); put("keep_checkpoints", keepCheckpoints); put("seed", seed); put("order", order)
        put("muon_lr", muonLr)
        if activationCheckpointing { v["activation_checkpointing"] = .bool(true) }
        if let betas {
            let parts = betas.split(separator: ",").map { Double($0.trimmingCharacters(in: .whitespaces)) }
            guard parts.count == 2, let b1 = parts[0], let b2 = parts[1] else {
                throw ValidationError("--betas must be two numbers, e.g. 0.9,0.95")
            }
            v["betas"] = .list([.double(b1), .double(b2)])
        }
        return v
    }

    func run() throws {
        var locks: [String: FolderLock] = [:]  // output folders this run writes, one writer each
        // Model, recipe settings and resume state.
        let model: DecoderModel
        var settings = TrainSettings()
        var resumeDir: String? = nil
        var resumedState: TrainerState? = nil
        var expectedHash: String? = nil
        if let recipe {
            let r = try Recipe.load(recipe, overrides: overrides)
            model = try ModelBuilder.build(r)
            settings = try TrainSettings(recipe: r)
        } else if let initFrom {
            model = try ModelIO.load(initFrom)
            if FileManager.default.fileExists(atPath: initFrom + "/recipe.yaml") {
                settings = try TrainSettings(recipe: model.recipe)
            }
            if let (s, _) = try? TrainingCheckpoint.loadState(initFrom) { expectedHash = s.tokenizerHash }
        } else {
            // Rank 0 locks the run folder and recovers an interrupted save before any rank picks
            // the newest checkpoint, so every rank resumes from the same, complete one.
            let runDir = TrainingCheckpoint.runFolder(for: resume!)
            if Job.world.isRoot {
                locks[runDir] = try FolderLock(folder: runDir, what: "toolkit train")
                TrainingCheckpoint.recover(runDir)
            }
            Job.world.barrier()
            let dir = try TrainingCheckpoint.latest(in: resume!)
            model = try ModelIO.loadCheckpoint(dir)
            let (s, _) = try TrainingCheckpoint.loadState(dir)
            settings = s.settings
            expectedHash = s.tokenizerHash
            resumeDir = dir
            resumedState = s
        }
        if let dropout { model.dropout = try DropoutRates.all(dropout, flag: "--dropout") }
        var flags = ComponentOptions(path: "flags", values: try flagValues())
        do { try settings.apply(&flags) } catch let e as ToolkitError {
            throw ValidationError(e.message.replacingOccurrences(of: "flags: ", with: "--").replacingOccurrences(of: "_", with: "-"))
        }
        if let r = resumedState {
            guard r.step < settings.steps else {
                if Job.world.isRoot {
                    printError("nothing to train: \(resumeDir!) is at step \(r.step) of \(settings.steps); pass --steps N (N > \(r.step)) to continue")
                }
                return
            }
            // A decaying schedule is planned for the run's total: a new --steps would re-plan it
            // mid-run (the rate jumps), so that is only done when asked for.
            if settings.steps != r.settings.steps, settings.schedule != "constant", !reschedule {
                throw ValidationError("--steps \(settings.steps): the run's \(settings.schedule) schedule was planned for \(r.settings.steps) "
                                      + "steps; pass --reschedule to re-plan it for \(settings.steps) (the learning rate jumps at step \(r.step + 1))")
            }
        }
        let source: any TrainingData = try data.map {
            try ShardTrainingData(directory: $0, expectedTokenizerHash: expectedHash, allowMismatch: allowTokenizerMismatch)
        } ?? TokenFileData(path: tokens!)
        // Under mpirun every rank trains; only rank 0 writes metrics, checkpoints and progress.
        let comm = Job.world
        let trainer = try Trainer(model: model, data: source, settings: settings, communicator: comm, parallel: parallel.options)
        if let resumeDir {
            try trainer.restore(from: resumeDir, weights: false)  // the model was loaded from it
            trainer.outputDirectory = URL(fileURLWithPath: resumeDir).deletingLastPathComponent().path
        } else {
            trainer.outputDirectory = out ?? "Checkpoints/train-\(model.recipe.name)"
        }
        if let out { trainer.outputDirectory = out }
        trainer.keepBest = try keepBest.map { try KeepBest(metric: $0) }
        trainer.metricsPath = metrics ?? resumedState?.metricsPath ?? trainer.outputDirectory.map { $0 + "/metrics.jsonl" }
        if !comm.isRoot {
            trainer.outputDirectory = nil
            trainer.metricsPath = nil
        }
        // Before any work: the output folder is a writable folder that no other run is using, the
        // metrics path can hold a file, and whatever an interrupted run left is cleaned up.
        if let dir = trainer.outputDirectory, locks[dir] == nil {
            locks[dir] = try FolderLock(folder: dir, what: "toolkit train")
            TrainingCheckpoint.recover(dir)
        }
        defer { locks.values.forEach { $0.release() } }
        if let m = trainer.metricsPath {
            try AtomicFile.ensureDirectory((m as NSString).deletingLastPathComponent.isEmpty ? "." : (m as NSString).deletingLastPathComponent)
            try AtomicFile.requireRegularFileOrAbsent(m)
        }
        if resumeDir == nil, let dir = trainer.outputDirectory {
            // A fresh run never mixes with an older one's checkpoints or metrics.
            if let last = TrainingCheckpoint.checkpoints(in: dir).last {
                throw ToolkitError("\(dir) already holds checkpoints (\(last)): continue with --resume \(dir), or choose another --out")
            }
            if let m = trainer.metricsPath { try AtomicFile.removeRegularFile(m) }
        } else if let r = resumedState, let m = trainer.metricsPath {
            try Trainer.dropMetricsRows(after: r.step, in: m)
        }
        // The tokenizer travels with every checkpoint: --tokenizer, or the one the resumed run saved.
        let tokenizerPath = try resolveTokenizer(explicit: tokenizer, modelFolder: resumeDir ?? initFrom,
                                                 allowMismatch: allowTokenizerMismatch)
        if let tokenizerPath {
            let tok = try BPETokenizer.load(path: tokenizerPath)
            try requireShardTokenizer(tok, path: tokenizerPath, shardsHash: source.tokenizerHash ?? "", shards: data,
                                      allowMismatch: allowTokenizerMismatch)
            trainer.tokenBytes = tokenByteCounter(tok)
            trainer.tokenizerJSON = tok.huggingFaceJSON()
        }
        let bar = ProgressBar(total: Double(settings.steps), label: "train", unit: "steps", enabled: !json && comm.isRoot)
        bar.update(Double(trainer.state.step))
        let seqLen = settings.seqLen ?? model.dims.contextLength
        if comm.isRoot, !json {
            printError(TrainLog.summary(model: model, settings: settings, seqLen: seqLen, data: data ?? tokens ?? "", source: source,
                                        ranks: comm.size, from: trainer.state.step, out: trainer.outputDirectory))
        }
        let log = TrainLog(every: comm.isRoot && !json && isatty(STDERR_FILENO) == 0 ? logEvery : 0, steps: settings.steps,
                           from: trainer.state.step)
        trainer.onStep = { row, _ in
            bar.update(Double(row.step), extra: String(format: "loss %.4f lr %.2e %@ tok/s", row.loss ?? .nan, row.lr ?? 0,
                                                       ProgressBar.format(row.tokens_per_s ?? 0)))
            log.step(row)
        }
        let sampler = try samplePrompt.map { prompt -> (TextCodec, [Int32]) in
            guard let tokenizerPath, let codec = try TextCodec.load(tokenizerPath) else {
                throw ValidationError("--sample-prompt needs a tokenizer (--tokenizer FILE)")
            }
            return (codec, try codec.encode(prompt))
        }
        let sampleTokens = self.sampleTokens
        if let evalTask {
            guard data != nil, let tokenizerPath, let codec = try TextCodec.load(tokenizerPath) else {
                throw ValidationError("--eval-task needs --data (it is scored with the validation) and a tokenizer (--tokenizer FILE)")
            }
            trainer.evalTask = try MultipleChoiceTask.load(evalTask, codec: codec)
        }
        trainer.onEval = { row in
            guard !json else { return }
            bar.finish()
            printError(String(format: "step %d: val_loss %.4f%@%@", row.step, row.val_loss ?? .nan,
                              row.val_bpb.map { String(format: " val_bpb %.4f", $0) } ?? "",
                              row.task_acc.map { String(format: " task_acc %.4f task_acc_norm %.4f", $0, row.task_acc_norm ?? .nan) } ?? ""))
            if let (codec, ids) = sampler, !ids.isEmpty {
                let n = min(sampleTokens, model.dims.contextLength - ids.count)
                if n > 0, let r = try? Generator(model: model).generate(prompts: [ids], maxNewTokens: n) {
                    printError("step \(row.step): sample: \(String(reflecting: codec.decode(ids) + codec.decode(r.newTokens[0])))")
                }
            }
        }
        Interrupt.install()
        let summary: TrainingSummary
        do { summary = try trainer.run() } catch where comm.size > 1 {
            // One failing rank must end the job, not leave the others waiting in a collective.
            printError("rank \(comm.rank) of \(comm.size): \(error)")
            comm.abort(code: 1)
        }
        bar.finish()
        (comm as? MPICommunicator)?.finalize()
        if comm.isRoot, json {
            print(try jsonLine(summary))
        } else if comm.isRoot {
            print(String(format: "%@ after %d steps: loss %.4f%@, %.0f tok/s, %.1fs", summary.stop.rawValue, summary.steps,
                         summary.finalLoss ?? .nan, summary.valLoss.map { String(format: ", val_loss %.4f", $0) } ?? "",
                         summary.tokensPerSecond, summary.seconds))
            if let c = summary.checkpoint { print("checkpoint: \(c)") }
            if let m = trainer.metricsPath { print("metrics: \(m) (toolkit plot \(m))") }
        }
        switch summary.stop {
        case .finished: break
        case .interrupted:  // every rank stops at the same step and exits 130; rank 0 saved
            if comm.isRoot { printError("interrupted: checkpoint saved") }
            throw ExitCode(130)
        case .nonFinite:
            if comm.isRoot { printError("stopped: \(summary.message ?? "non-finite values")") }
            throw ExitCode(3)
        }
    }
}

/// What `train` says off a terminal: a start-up summary, then a line every `every` steps.
final class TrainLog: @unchecked Sendable {
    let every: Int, steps: Int, from: Int
    private let start = monotonicSeconds()

    init(every: Int, steps: Int, from: Int) {
        self.every = every
        self.steps = steps
        self.from = from
    }

    /// `step 40/200  loss 5.1234  lr 2.40e-04  grad_norm 0.812  12.3k tok/s  ETA 1m05s`.
    func step(_ row: MetricsRow) {
        guard every > 0, row.step % every == 0 || row.step == steps else { return }
        let done = row.step - from, elapsed = monotonicSeconds() - start
        let eta = done > 0 ? elapsed / Double(done) * Double(steps - row.step) : .nan
        printError(String(format: "step %d/%d  loss %.4f  lr %.2e  grad_norm %@  %@ tok/s  ETA %@", row.step, steps, row.loss ?? .nan,
                          row.lr ?? 0, row.grad_norm.map { String(format: "%.3f", $0) } ?? "-",
                          ProgressBar.format(row.tokens_per_s ?? 0), Self.duration(eta)))
    }

    static func duration(_ s: Double) -> String {
        guard s.isFinite else { return "-" }
        let t = Int(s.rounded())
        return t >= 3600 ? "\(t / 3600)h\(String(format: "%02d", t / 60 % 60))m" : t >= 60 ? "\(t / 60)m\(String(format: "%02d", t % 60))s" : "\(t)s"
    }

    /// The model, the data, the tokens per step and the planned total.
    static func summary(model: DecoderModel, settings s: TrainSettings, seqLen: Int, data: String, source: any TrainingData, ranks: Int,
                        from: Int, out: String?) -> String {
        let perStep = s.batchSize * seqLen * s.gradAccum
        let planned = perStep * (s.steps - from)
        var dataText = data
        if let shards = source as? ShardTrainingData {
            let split = shards.dataset.manifest.split
            dataText += " (\(ProgressBar.format(Double(split.trainTokens))) train tokens, \(ProgressBar.format(Double(split.valTokens))) validation"
            dataText += String(format: "; %.3g epochs)", Double(planned) / Double(max(split.trainTokens, 1)))
        }
        let d = model.dims
        return """
            train: \(model.recipe.name), \(ProgressBar.format(Double(model.parameterCount))) parameters (\(d.layers) layers × \(d.hiddenSize), context \(d.contextLength), vocabulary \(d.vocabSize))
            train: data \(dataText)
            train: \(s.batchSize) × \(seqLen) tokens × \(s.gradAccum) micro-batches = \(ProgressBar.format(Double(perStep))) tokens a step\(ranks > 1 ? " (micro-batches split over \(ranks) ranks)" : ""); steps \(from + 1)...\(s.steps): \(ProgressBar.format(Double(planned))) tokens planned
            train: \(s.optimizer) lr \(s.lr) (\(s.schedule), warmup \(s.warmup)), evaluation every \(s.evalEvery) steps, output \(out ?? "-")\(model.dropout.isActive ? "\ntrain: dropout \(model.dropout)" : "")
            """
    }
}
