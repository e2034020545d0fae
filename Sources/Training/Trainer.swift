import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport
import Synchronization

/// One row of the metrics JSONL file: the fields every run may log, and any other metric an
/// objective reports (`accuracy`, `val_perplexity`, `reward_margin`, …) in `extra`, written as
/// keys of the same object.
public struct MetricsRow: Codable, Sendable {
    public var step: Int
    public var loss: Double?
    public var lr: Double?
    public var grad_norm: Double?
    public var tokens_per_s: Double?
    public var tokens: Int
    public var aux_loss: Double?
    public var val_loss: Double?
    public var val_bpb: Double?
    /// Multiple-choice accuracy on `LanguageModelObjective.evalTask` (evaluation rows).
    public var task_acc: Double?
    public var task_acc_norm: Double?
    public var extra: [String: Double] = [:]

    public init(step: Int, loss: Double? = nil, lr: Double? = nil, grad_norm: Double? = nil, tokens_per_s: Double? = nil,
                tokens: Int, aux_loss: Double? = nil, val_loss: Double? = nil, val_bpb: Double? = nil, task_acc: Double? = nil,
                task_acc_norm: Double? = nil) {
        self.step = step
        self.loss = loss
        self.lr = lr
        self.grad_norm = grad_norm
        self.tokens_per_s = tokens_per_s
        self.tokens = tokens
        self.aux_loss = aux_loss
        self.val_loss = val_loss
        self.val_bpb = val_bpb
        self.task_acc = task_acc
        self.task_acc_norm = task_acc_norm
    }

    /// A row from named values (known names fill their fields, the rest go to `extra`).
    public init(step: Int, tokens: Int, values: [String: Double]) {
        self.init(step: step, tokens: tokens)
        for (k, v) in values { self[k] = v }
    }

    nonisolated(unsafe) static let named: [(String, WritableKeyPath<MetricsRow, Double?>)] = [
        ("loss", \.loss), ("lr", \.lr), ("grad_norm", \.grad_norm), ("tokens_per_s", \.tokens_per_s), ("aux_loss", \.aux_loss),
        ("val_loss", \.val_loss), ("val_bpb", \.val_bpb), ("task_acc", \.task_acc), ("task_acc_norm", \.task_acc_norm),
    ]

    /// A metric by its logged name.
    public subscript(_ name: String) -> Double? {
        get { Self.named.first { $0.0 == name }.map { self[keyPath: $0.1] } ?? extra[name] }
        set {
            if let path = Self.named.first(where: { $0.0 == name })?.1 { self[keyPath: path] = newValue } else { extra[name] = newValue }
        }
    }

    /// Every metric present, by name.
    public var values: [String: Double] {
        var out = extra
        for (k, path) in Self.named { if let v = self[keyPath: path] { out[k] = v } }
        return out
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: Key.self)
        self.init(step: try c.decode(Int.self, forKey: Key("step")), tokens: try c.decodeIfPresent(Int.self, forKey: Key("tokens")) ?? 0)
        for key in c.allKeys where key.stringValue != "step" && key.stringValue != "tokens" {
            if let v = try? c.decode(Double.self, forKey: key) { self[key.stringValue] = v }
        }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(step, forKey: Key("step"))
        try c.encode(tokens, forKey: Key("tokens"))
        for (k, path) in Self.named { if let v = self[keyPath: path] { try c.encode(v, forKey: Key(k)) } }
        for (k, v) in extra where v.isFinite { try c.encode(v, forKey: Key(k)) }
    }
}

/// Set by SIGINT; the loop saves a checkpoint and stops after the current step.
public enum Interrupt {
    static let flag = Atomic<Bool>(false)
    public static var requested: Bool { flag.load(ordering: .relaxed) }
    public static func request() { flag.store(true, ordering: .relaxed) }
    public static func reset() { flag.store(false, ordering: .relaxed) }

    /// Routes SIGINT and SIGTERM (what `timeout`, systemd and Slurm send) to `request()`; a second
    /// signal ends the process at once.
    /// The signals are also unblocked: a parent (a test runner, some schedulers) may start this
    /// process with them blocked, and a blocked SIGTERM would wait forever.
    public static func install() {
        var set = sigset_t()
        sigemptyset(&set)
        for sig in [SIGINT, SIGTERM] {
            signal(sig) { s in
                if Interrupt.requested { _exit(128 + s) }
                Interrupt.request()
            }
            sigaddset(&set, sig)
        }
        pthread_sigmask(SIG_UNBLOCK, &set, nil)
    }
}

/// Why a run ended.
public enum TrainingStop: String, Codable, Sendable {
    case finished, interrupted, nonFinite = "non_finite"
}

/// The result of `Trainer.run`.
public struct TrainingSummary: Codable, Sendable {
    public var stop: TrainingStop
    public var steps: Int
    public var finalLoss: Double?
    public var valLoss: Double?
    public var tokensSeen: Int
    public var tokensPerSecond: Double
    public var seconds: Double
    public var checkpoint: String?
    public var message: String?
    /// The last step's metrics and the last evaluation's, by logged name.
    public var last: [String: Double] = [:]
    public var validation: [String: Double] = [:]
    /// The checkpoint `keepBest` kept, and its value.
    public var best: String?
    public var bestValue: Double?
}

/// Which checkpoint to keep as `<out>/best`: the one with the best value of an evaluation metric
/// (lowest for losses, bits-per-byte and perplexity; highest for accuracies).
public struct KeepBest: Sendable, Equatable {
    public var metric: String
    public var higherIsBetter: Bool

    public init(metric: String) throws {
        guard !metric.isEmpty else { throw ToolkitError("--keep-best: name an evaluation metric (val_loss, task_acc, val_accuracy, …)") }
        self.metric = metric
        higherIsBetter = metric.contains("acc") || metric.contains("margin") || metric.contains("reward")
    }

    func improves(_ value: Double, on best: Double?) -> Bool {
        guard value.isFinite else { return false }
        guard let best else { return true }
        return higherIsBetter ? value > best : value < best
    }
}

/// The one training loop, for pre-training and every fine-tuning method (`TrainingObjective`):
/// micro-batches with gradient accumulation, global-norm clipping, a learning rate schedule,
/// evaluation, metrics JSONL, checkpoints with exact resume, the best checkpoint, SIGINT and NaN
/// handling, data parallelism.
public final class Trainer {
    public let objective: any TrainingObjective
    public var model: DecoderModel { objective.model }
    /// The run's settings; with `timeBudgetSeconds`, `steps` (and an unset `eval_every`) are
    /// planned as the run goes.
    public private(set) var settings: TrainSettings
    public let optimizer: MultiOptimizer
    public private(set) var schedule: LRSchedule
    public var outputDirectory: String?
    public var metricsPath: String?
    /// Called after every step (for progress bars).
    public var onStep: ((MetricsRow, TrainSettings) -> Void)?
    /// Called after every evaluation.
    public var onEval: ((MetricsRow) -> Void)?
    /// The processes this run is spread over (data parallel): each takes the micro-batches
    /// `rank, rank + size, …` of every step's `grad_accum`, gradients are summed over all of them,
    /// and every rank applies the same optimizer step. Only rank 0 writes metrics and checkpoints.
    public let communicator: any Communicator
    /// How gradients and optimizer state move between the processes.
    public let parallel: DataParallelOptions
    /// The data-parallel traffic (nil in one process).
    let sync: GradientSync?

    /// Polled after every step; true stops the run with a checkpoint (default: SIGINT seen).
    public var stopRequested: @Sendable () -> Bool = { Interrupt.requested }
    /// A wall-clock budget (`compare --minutes`): the number of steps is planned from the measured
    /// step time (after 3 steps, and again after every evaluation, which also counts its own cost),
    /// and the schedule is rebuilt for that total, so its decay ends with the budget; `steps` is
    /// not a cap. With `eval_every` 0 the run evaluates about 10 times. The run also stops (as
    /// finished) when the time is up.
    public var timeBudgetSeconds: Double?
    /// Evaluate after the last step even when `eval_every` is 0 (fine-tuning's default).
    public var evaluateAtEnd = false
    /// After each evaluation that improves this metric, the checkpoint is also saved as `<out>/best`.
    public var keepBest: KeepBest?
    /// The run's tokenizer as HF `tokenizer.json` text: every checkpoint carries a copy.
    public var tokenizerJSON: String?
    /// Written into every checkpoint's weights file (e.g. a fine-tune's chat template).
    public var checkpointMetadata: [String: String] = [:]
    public private(set) var state: TrainerState
    /// Seconds the last step waited for gradient and parameter traffic after its backward (what
    /// overlapping did not hide); 0 in one process.
    public private(set) var lastStepWaitSeconds = 0.0
    let parameters: [NamedParameter]
    /// The parameters this rank updates (all of them unless the optimizer is sharded), model order.
    let ownedParameters: [NamedParameter]

    /// Pre-training a language model on `data` (`LanguageModelObjective`).
    public convenience init(model: DecoderModel, data: any TrainingData, settings: TrainSettings,
                            communicator: any Communicator = SingleProcess(), parallel: DataParallelOptions = .init()) throws {
        try self.init(objective: LanguageModelObjective(model: model, data: data, settings: settings), settings: settings,
                      communicator: communicator, parallel: parallel)
    }

    /// With a sharded optimizer (`parallel.shardOptimizer`), `optimizer` holds only this rank's
    /// share of the parameters.
    public init(objective: any TrainingObjective, settings: TrainSettings,
                communicator: any Communicator = SingleProcess(), parallel: DataParallelOptions = .init()) throws {
        self.objective = objective
        self.settings = settings
        let model = objective.model
        parameters = objective.parameters
        guard !parameters.isEmpty else { throw ToolkitError("nothing to train: no trainable parameters") }
        self.communicator = communicator
        self.parallel = parallel
        sync = communicator.size > 1 ? GradientSync(communicator: communicator, parameters: parameters, options: parallel) : nil
        ownedParameters = sync?.ownedParameters ?? parameters
        if settings.activationCheckpointing == true {
            // A router's aux loss is read from the forward's routing records, which a checkpointed
            // forward keeps off the tape.
            if model.layers.contains(where: { ($0.mlp as? MoE).map { $0.auxLossCoefficient != 0 || $0.zLossCoefficient != 0 } ?? false }) {
                throw ToolkitError("activation_checkpointing: a mixture of experts with an auxiliary or z-loss needs its routing on the tape; turn one of them off")
            }
            model.activationCheckpointing = true
        }
        optimizer = try settings.makeOptimizer(for: ownedParameters)
        schedule = try settings.makeSchedule()
        state = TrainerState(step: 0, tokensSeen: 0, elapsedSeconds: 0, settings: settings,
                             tokenizerHash: objective.tokenizerHash, dataPosition: 0)
    }

    /// The language-model objective, when this run pre-trains.
    var languageModel: LanguageModelObjective? { objective as? LanguageModelObjective }
    /// Tokens per sequence of a language-model run.
    public var seqLen: Int { languageModel?.seqLen ?? 0 }
    /// Maps a token id to its UTF-8 byte length, for validation bits-per-byte (language models).
    public var tokenBytes: ((Int32) -> Int)? {
        get { languageModel?.tokenBytes }
        set { languageModel?.tokenBytes = newValue }
    }
    /// Multiple-choice items scored at every evaluation (`train --eval-task`, `compare --task`).
    public var evalTask: [MultipleChoiceItem]? {
        get { languageModel?.evalTask }
        set { languageModel?.evalTask = newValue }
    }

    /// The dropout masks of a step's micro-batch: a function of the run's seed, the step and the
    /// micro-batch only, so a resumed run drops what the uninterrupted one dropped, and every
    /// process of a data-parallel run (which takes its own micro-batches) draws its own masks.
    public static func dropoutSeed(run seed: UInt64, step: Int, micro: Int) -> UInt64 {
        Dropout.seed(Dropout.seed(Dropout.seed(seed, 0x6472_6F70), UInt64(step)), UInt64(micro))
    }

    /// Restores progress, optimizer state and the trained weights from a checkpoint folder: the
    /// model's (when checkpoints carry them and `weights` is true) and the objective's extra parameters.
    public func restore(from dir: String, weights: Bool = true) throws {
        let (s, opt) = try TrainingCheckpoint.loadState(dir)
        try TrainingCheckpoint.loadWeights(dir, model: weights && objective.savesModel ? model : nil, extra: objective.extraParameters)
        try optimizer.loadStateTensors(sync?.ownedState(opt) ?? opt)
        state.step = s.step
        state.tokensSeen = s.tokensSeen
        state.elapsedSeconds = s.elapsedSeconds
        state.dataPosition = s.dataPosition
        state.best = s.best
    }

    func appendMetrics(_ row: MetricsRow) throws {
        guard let metricsPath else { return }
        let line = try jsonLine(row) + "\n"
        do {
            if !FileManager.default.fileExists(atPath: metricsPath) {
                try AtomicFile.write("", to: metricsPath)
            }
            let h = try FileHandle(forWritingTo: URL(fileURLWithPath: metricsPath))
            defer { try? h.close() }
            try h.seekToEnd()
            try h.write(contentsOf: Data(line.utf8))  // one write of a whole line: rows are never torn
        } catch {
            throw AtomicFile.ioError(metricsPath, error, doing: "cannot append a metrics row")
        }
    }

    /// Resuming from an older step: the rows of `path` after it belong to the steps about to be
    /// trained again, so they go (the file rewritten atomically) instead of being duplicated.
    public static func dropMetricsRows(after step: Int, in path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else { return }
        let rows = try String(contentsOfFile: path, encoding: .utf8).split(whereSeparator: \.isNewline)
        let kept = rows.filter { line in
            guard let data = line.data(using: .utf8),
                  let row = try? JSONSerialization.jsonObject(with: data) as? [String: Any], let s = row["step"] as? Int
            else { return true }
            return s <= step
        }
        if kept.count != rows.count { try AtomicFile.write(kept.map { $0 + "\n" }.joined(), to: path) }
    }

    func checkpointPath(_ step: Int) -> String? {
        outputDirectory.map { String(format: "%@/step-%07d", $0, step) }
    }

    /// Called on every rank (a sharded optimizer state is gathered first); the rank with an output
    /// folder (rank 0) writes `path` (default: this step's checkpoint folder).
    func save(to explicit: String? = nil) throws -> String? {
        // A sharded state is gathered on every rank (a collective); otherwise only the writer reads it.
        let gathered = try sync.flatMap { $0.isSharded ? try $0.gatherOptimizerState(optimizer.stateTensors()) : nil }
        guard let path = outputDirectory == nil ? nil : explicit ?? checkpointPath(state.step) else { return nil }
        state.metricsPath = metricsPath
        // A gathered (sharded) state arrives as copies; one process's state is written in place.
        let buffers = gathered?.mapValues { (shape: $0.shape, storage: TensorStorage($0.values)) } ?? optimizer.stateBuffers()
        try TrainingCheckpoint.save(model: objective.savesModel ? model : nil, extra: objective.extraParameters,
                                    optimizerState: buffers, state: state, to: path,
                                    tokenizerJSON: tokenizerJSON, metadata: checkpointMetadata)
        if explicit == nil { try TrainingCheckpoint.prune(outputDirectory!, keep: settings.keepCheckpoints) }
        return path
    }

    /// Runs from the current step to `settings.steps`.
    public func run() throws -> TrainingSummary {
        var s = settings
        let runStart = monotonicSeconds()
        let budget = timeBudgetSeconds
        let autoEval = budget != nil && s.evalEvery == 0
        let warmup = s.warmup
        if budget != nil {
            // Until planned from the first steps' time: no decay yet (the planned schedule takes over at step 3).
            s.steps = Int(Int32.max)
            schedule = try s.makeSchedule()
        }
        try objective.prepare(settings: s, evaluates: s.evalEvery > 0 || autoEval || keepBest != nil || evaluateAtEnd)
        var stepSeconds: [Double] = [], evalSeconds = 0.0
        // Evaluations every tenth of the budget, or further apart when one takes more than half of that.
        var evalInterval = (budget ?? 0) / 10, nextEvalAt = evalInterval, lastEvalStep = 0
        /// Plans the total from the time left, a step's median time and the evaluations' cost.
        func plan(after step: Int) throws {
            guard let budget, stepSeconds.count >= 2 else { return }
            let perStep = Stats.median(Array(stepSeconds.suffix(20)))
            let remaining = budget - (monotonicSeconds() - runStart)
            var total = step + max(0, Int(remaining / perStep))
            if autoEval {
                let evalsLeft = Double(max(0, Int((remaining / evalInterval).rounded(.up))))
                total = step + max(0, Int((remaining - evalSeconds * evalsLeft) / perStep))
            } else if s.evalEvery > 0 {
                total = step + max(0, Int(remaining / (perStep + evalSeconds / Double(s.evalEvery))))
            }
            s.steps = max(step, total)
            s.warmup = min(warmup, max(0, s.steps / 10))  // as a step budget does: the decay needs room
            schedule = try s.makeSchedule()
            settings = s
            state.settings = s
        }
        let startTokens = state.tokensSeen
        var last: [String: Double] = [:], validation: [String: Double] = [:]
        var lastCheckpoint: String? = nil, bestCheckpoint: String? = nil
        var stop = TrainingStop.finished
        var message: String? = nil
        let comm = communicator
        guard s.gradAccum % comm.size == 0 else {
            throw ToolkitError("grad_accum (\(s.gradAccum)) must be a multiple of the number of processes (\(comm.size)): "
                               + "each process takes grad_accum / \(comm.size) micro-batches of every step")
        }
        /// Evaluates at `step`, logs the row and keeps the best checkpoint; false when there is nothing to evaluate.
        func evaluateAndLog(_ step: Int) throws -> Bool {
            guard let values = try objective.evaluate() else { return false }
            let r = MetricsRow(step: step, tokens: state.tokensSeen, values: values)
            validation = values
            lastEvalStep = step
            try appendMetrics(r)
            onEval?(r)
            if let keepBest {
                guard let value = r[keepBest.metric] else {
                    throw ToolkitError("--keep-best \(keepBest.metric): the evaluation reports \(values.keys.sorted().joined(separator: ", "))")
                }
                if keepBest.improves(value, on: state.best?.value) {
                    state.best = .init(metric: keepBest.metric, value: value, step: step)
                    bestCheckpoint = try save(to: outputDirectory.map { $0 + "/best" })
                }
            }
            return true
        }
        while state.step < s.steps {
            let step = state.step + 1
            let t0 = monotonicSeconds()
            let lr = schedule.multiplier(at: step - 1)
            optimizer.setLearningRateMultiplier(lr)
            for (_, p) in parameters { p.zeroGrad() }  // all of them: a sharded optimizer holds only some
            var sums: [String: Double] = [:], tokens = 0
            let lastMicro = s.gradAccum - comm.size + comm.rank
            for micro in stride(from: comm.rank, to: s.gradAccum, by: comm.size) {
                let out = try objective.loss(step: step, micro: micro, settings: s,
                                             dropoutSeed: Self.dropoutSeed(run: s.seed, step: step, micro: micro))
                // Scale so accumulated gradients are those of the mean over micro-batches.
                let loss = s.gradAccum > 1 ? out.loss * (1 / Float(s.gradAccum)) : out.loss
                if let sync, micro == lastMicro {
                    sync.beginStep()
                    try loss.backward(onLeafReady: parallel.overlap ? sync.leafReady : nil)
                } else {
                    try loss.backward()
                }
                if out.metrics["loss"] == nil { sums["loss", default: 0] += Double(out.loss.item()) }
                for (k, v) in out.metrics { sums[k, default: 0] += v }
                tokens += out.tokens
            }
            let waitStart = monotonicSeconds()
            if let sync {
                // The gradients (summed as the backward went, or now), and the metrics with them.
                let keys = sums.keys.sorted()
                var scalars = keys.map { sums[$0]! } + [Double(tokens)]
                sync.finishStep(summing: &scalars)
                for (i, k) in keys.enumerated() { sums[k] = scalars[i] }
                tokens = Int(scalars.last!)
            }
            lastStepWaitSeconds = monotonicSeconds() - waitStart
            var values = sums.mapValues { $0 / Double(s.gradAccum) }
            let meanLoss = values["loss"] ?? .nan
            let (norm, bad) = GradientClipping.normAndClip(ownedParameters, maxNorm: s.gradClip) { sync?.combineSquares($0) ?? $0 }
            if !meanLoss.isFinite || bad != nil {
                stop = .nonFinite
                let what = !meanLoss.isFinite ? "loss is \(meanLoss)"
                    : bad!.isEmpty ? "gradient norm overflowed (\(norm))" : "non-finite gradient in \(bad!.prefix(3).joined(separator: ", "))"
                message = "step \(step): " + what + (lastCheckpoint.map { "; last good checkpoint: \($0)" } ?? "")
                break
            }
            try optimizer.step()
            if let sync, sync.isSharded {
                let gatherStart = monotonicSeconds()
                sync.gatherParameters()
                lastStepWaitSeconds += monotonicSeconds() - gatherStart
            }
            let dt = monotonicSeconds() - t0
            if step > 1 { stepSeconds.append(dt) }  // the first step carries one-time costs
            state.step = step
            state.dataPosition = step
            state.tokensSeen += tokens
            state.elapsedSeconds += dt
            values["lr"] = s.lr * lr
            values["grad_norm"] = norm
            if tokens > 0 { values["tokens_per_s"] = Double(tokens) / dt }
            last = values
            let row = MetricsRow(step: step, tokens: state.tokensSeen, values: values)
            try appendMetrics(row)
            onStep?(row, s)
            if budget != nil && step == 3 { try plan(after: step) }
            let evalStart = monotonicSeconds()
            // Without eval_every under a budget: every tenth of the time, and at the end.
            let due = autoEval ? (evalStart - runStart >= nextEvalAt || step == s.steps)
                : (s.evalEvery > 0 && step % s.evalEvery == 0) || ((s.evalEvery > 0 || evaluateAtEnd) && step == s.steps)

            if due, try evaluateAndLog(step) {
                evalSeconds = monotonicSeconds() - evalStart
                if autoEval {
                    evalInterval = max(evalInterval, 2 * evalSeconds)
                    let now = monotonicSeconds() - runStart
                    while nextEvalAt <= now { nextEvalAt += evalInterval }  // slots missed while evaluating are skipped
                }
                if step < s.steps { try plan(after: step) }
            }
            // A stop request on any rank stops every rank after this same step.
            var interrupted = stopRequested()
            if comm.size > 1 {
                var flag = [interrupted ? 1.0 : 0]
                comm.allreduceSum(&flag)
                interrupted = flag[0] > 0
            }
            if interrupted { stop = .interrupted; break }
            if let budget = timeBudgetSeconds, monotonicSeconds() - runStart >= budget {
                if s.evalEvery > 0 || autoEval, lastEvalStep != step { _ = try evaluateAndLog(step) }
                break
            }
            if s.saveEvery > 0, step % s.saveEvery == 0, step < s.steps { lastCheckpoint = try save() }
        }
        if stop != .nonFinite { lastCheckpoint = try save() ?? lastCheckpoint }
        let seconds = monotonicSeconds() - runStart
        return TrainingSummary(stop: stop, steps: state.step, finalLoss: last["loss"], valLoss: validation["val_loss"],
                               tokensSeen: state.tokensSeen, tokensPerSecond: Double(state.tokensSeen - startTokens) / max(seconds, 1e-9),
                               seconds: seconds, checkpoint: lastCheckpoint, message: message, last: last, validation: validation,
                               best: bestCheckpoint ?? (state.best != nil ? outputDirectory.map { $0 + "/best" } : nil),
                               bestValue: state.best?.value)
    }
}
