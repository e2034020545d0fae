import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport
import Synchronization

/// One row of the metrics JSONL file.
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
    /// Multiple-choice accuracy on `Trainer.evalTask` (evaluation rows).
    public var task_acc: Double?
    public var task_acc_norm: Double?
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
}

/// The training loop: micro-batches with gradient accumulation, global-norm clipping, a learning
/// rate schedule, evaluation, metrics JSONL, checkpoints with exact resume, SIGINT and NaN handling.
public final class Trainer {
    public let model: DecoderModel
    public let data: any TrainingData
    /// The run's settings; with `timeBudgetSeconds`, `steps` (and an unset `eval_every`) are
    /// planned as the run goes.
    public private(set) var settings: TrainSettings
    public let seqLen: Int
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
    /// Maps a token id to its UTF-8 byte length, for validation bits-per-byte.
    public var tokenBytes: ((Int32) -> Int)?
    /// Multiple-choice items scored at every evaluation (`train --eval-task`, `compare --task`):
    /// acc and acc_norm go into the evaluation rows.
    public var evalTask: [MultipleChoiceItem]?
    /// The run's tokenizer as HF `tokenizer.json` text: every checkpoint carries a copy.
    public var tokenizerJSON: String?
    public private(set) var state: TrainerState
    /// Seconds the last step waited for gradient and parameter traffic after its backward (what
    /// overlapping did not hide); 0 in one process.
    public private(set) var lastStepWaitSeconds = 0.0
    let parameters: [NamedParameter]
    /// The parameters this rank updates (all of them unless the optimizer is sharded), model order.
    let ownedParameters: [NamedParameter]

    /// With a sharded optimizer (`parallel.shardOptimizer`), `optimizer` holds only this rank's
    /// share of the parameters.
    public init(model: DecoderModel, data: any TrainingData, settings: TrainSettings,
                communicator: any Communicator = SingleProcess(), parallel: DataParallelOptions = .init()) throws {
        self.model = model
        self.data = data
        self.settings = settings
        let tokenFile = data as? TokenFileData
        let t = tokenFile?.sequenceLength ?? settings.seqLen ?? model.dims.contextLength
        guard t <= model.dims.contextLength else {
            if let tokenFile {
                throw ToolkitError.file(tokenFile.path, "sequences of \(t) tokens exceed the model's context length \(model.dims.contextLength)")
            }
            throw ToolkitError("seq_len \(t) exceeds the model's context length \(model.dims.contextLength)")
        }
        guard data.vocabSize <= model.dims.vocabSize else {
            throw ToolkitError("the data has token ids up to \(data.vocabSize - 1) but the model's vocabulary is \(model.dims.vocabSize)")
        }
        seqLen = t
        parameters = model.namedParameters().filter { $0.parameter.isTrainable }
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
                             tokenizerHash: data.tokenizerHash, dataPosition: 0)
    }

    /// The dropout masks of a step's micro-batch: a function of the run's seed, the step and the
    /// micro-batch only, so a resumed run drops what the uninterrupted one dropped, and every
    /// process of a data-parallel run (which takes its own micro-batches) draws its own masks.
    public static func dropoutSeed(run seed: UInt64, step: Int, micro: Int) -> UInt64 {
        Dropout.seed(Dropout.seed(Dropout.seed(seed, 0x6472_6F70), UInt64(step)), UInt64(micro))
    }

    /// Restores optimizer state and progress from a checkpoint folder (the model must already hold
    /// that checkpoint's weights).
    public func restore(from dir: String) throws {
        let (s, opt) = try TrainingCheckpoint.loadState(dir)
        try optimizer.loadStateTensors(sync?.ownedState(opt) ?? opt)
        state.step = s.step
        state.tokensSeen = s.tokensSeen
        state.elapsedSeconds = s.elapsedSeconds
        state.dataPosition = s.dataPosition
    }

    /// The evaluation row of `step`: validation loss (and bits-per-byte), and the task's accuracy;
    /// nil when there is nothing to evaluate.
    func evaluationRow(_ validation: [Batch], step: Int) throws -> MetricsRow? {
        guard let val = try evaluate(validation) else { return nil }  // a task is scored beside validation
        let task = try evalTask.flatMap { $0.isEmpty ? nil : try MultipleChoice.evaluate(model, $0) }
        return MetricsRow(step: step, tokens: state.tokensSeen, val_loss: val.loss, val_bpb: val.bpb, task_acc: task?.accuracy,
                          task_acc_norm: task?.normalizedAccuracy)
    }

    /// Mean loss over the validation batches (nil when there are none).
    public func evaluate(_ batches: [Batch]) throws -> (loss: Double, bpb: Double?)? {
        guard !batches.isEmpty else { return nil }
        var total = 0.0, count = 0, bytes = 0
        try GradMode.withoutGrad {
            for b in batches {
                let ce = try model.crossEntropy(b.input, targets: b.targets, batch: b.rows)
                let n = b.targets.filter { $0 != -100 }.count
                total += Double(ce.item()) * Double(n)
                count += n
                if let tokenBytes { bytes += b.targets.reduce(0) { $0 + ($1 == -100 ? 0 : tokenBytes($1)) } }
            }
        }
        let loss = total / Double(max(count, 1))
        return (loss, bytes > 0 ? total / (Foundation.log(2.0) * Double(bytes)) : nil)
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

    func checkpointPath(_ step: Int) -> String? {
        outputDirectory.map { String(format: "%@/step-%07d", $0, step) }
    }

    /// Called on every rank (a sharded optimizer state is gathered first); the rank with an output
    /// folder (rank 0) writes.
    func save() throws -> String? {
        // A sharded state is gathered on every rank (a collective); otherwise only the writer reads it.
        let gathered = try sync.flatMap { $0.isSharded ? try $0.gatherOptimizerState(optimizer.stateTensors()) : nil }
        guard let path = checkpointPath(state.step) else { return nil }
        state.metricsPath = metricsPath
        try TrainingCheckpoint.save(model: model, optimizerState: gathered ?? optimizer.stateTensors(), state: state, to: path,
                                    tokenizerJSON: tokenizerJSON)
        try TrainingCheckpoint.prune(outputDirectory!, keep: settings.keepCheckpoints)
        return path
    }

    /// Runs from the current step to `settings.steps`.
    public func run() throws -> TrainingSummary {
        var s = settings
        let runStart = monotonicSeconds()
        let budget = timeBudgetSeconds
        let autoEval = budget != nil && s.evalEvery == 0
        let warmup = s.warmup
        if let evalTask { try MultipleChoice.check(evalTask, model) }  // a bad item fails now, not at the first evaluation
        if budget != nil {
            // Until planned from the first steps' time: no decay yet (the planned schedule takes over at step 3).
            s.steps = Int(Int32.max)
            schedule = try s.makeSchedule()
        }
        let validation = s.evalEvery > 0 || autoEval ? try data.validation(settings: s, seqLen: seqLen) : []
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
        var lastLoss: Double? = nil, lastVal: Double? = nil, lastCheckpoint: String? = nil
        var stop = TrainingStop.finished
        var message: String? = nil
        let comm = communicator
        guard s.gradAccum % comm.size == 0 else {
            throw ToolkitError("grad_accum (\(s.gradAccum)) must be a multiple of the number of processes (\(comm.size)): "
                               + "each process takes grad_accum / \(comm.size) micro-batches of every step")
        }
        /// Evaluates at `step` and logs the row; false when there is nothing to evaluate.
        func evaluateAndLog(_ step: Int) throws -> Bool {
            guard let r = try evaluationRow(validation, step: step) else { return false }
            lastVal = r.val_loss
            lastEvalStep = step
            try appendMetrics(r)
            onEval?(r)
            return true
        }
        while state.step < s.steps {
            let step = state.step + 1
            let t0 = monotonicSeconds()
            let lr = schedule.multiplier(at: step - 1)
            optimizer.setLearningRateMultiplier(lr)
            for (_, p) in parameters { p.zeroGrad() }  // all of them: a sharded optimizer holds only some
            var ceSum = 0.0, auxSum = 0.0, tokens = 0
            let lastMicro = s.gradAccum - comm.size + comm.rank
            for micro in stride(from: comm.rank, to: s.gradAccum, by: comm.size) {
                let b = try data.batch(step: step, micro: micro, settings: s, seqLen: seqLen)
                let ce = try model.crossEntropy(b.input, targets: b.targets, batch: b.rows,
                                                dropoutSeed: Self.dropoutSeed(run: s.seed, step: step, micro: micro))
                var loss = ce
                if let aux = try model.auxiliaryLoss() {
                    auxSum += Double(aux.item())
                    loss = try ce + aux
                }
                // Scale so accumulated gradients are those of the mean over micro-batches.
                if s.gradAccum > 1 { loss = loss * (1 / Float(s.gradAccum)) }
                if let sync, micro == lastMicro {
                    sync.beginStep()
                    try loss.backward(onLeafReady: parallel.overlap ? sync.leafReady : nil)
                } else {
                    try loss.backward()
                }
                ceSum += Double(ce.item())
                tokens += b.tokens
            }
            let waitStart = monotonicSeconds()
            if let sync {
                // The gradients (summed as the backward went, or now), and the scalars with them.
                var scalars = [ceSum, auxSum, Double(tokens)]
                sync.finishStep(summing: &scalars)
                (ceSum, auxSum, tokens) = (scalars[0], scalars[1], Int(scalars[2]))
            }
            lastStepWaitSeconds = monotonicSeconds() - waitStart
            let meanLoss = ceSum / Double(s.gradAccum)
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
            lastLoss = meanLoss
            let row = MetricsRow(step: step, loss: meanLoss, lr: s.lr * lr, grad_norm: norm, tokens_per_s: Double(tokens) / dt,
                                 tokens: state.tokensSeen, aux_loss: auxSum > 0 ? auxSum / Double(s.gradAccum) : nil)
            try appendMetrics(row)
            onStep?(row, s)
            if budget != nil && step == 3 { try plan(after: step) }
            let evalStart = monotonicSeconds()
            // Without eval_every under a budget: every tenth of the time, and at the end.
            let due = autoEval ? (evalStart - runStart >= nextEvalAt || step == s.steps)
                : s.evalEvery > 0 && (step % s.evalEvery == 0 || step == s.steps)

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
        return TrainingSummary(stop: stop, steps: state.step, finalLoss: lastLoss, valLoss: lastVal,
                               tokensSeen: state.tokensSeen, tokensPerSecond: Double(state.tokensSeen - startTokens) / max(seconds, 1e-9),
                               seconds: seconds, checkpoint: lastCheckpoint, message: message)
    }
}
