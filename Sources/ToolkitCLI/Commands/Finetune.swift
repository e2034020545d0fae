import ArgumentParser
import FineTuning
import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import Tokenization
import ToolkitSupport
import Training

struct Finetune: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fine-tune a model: LoRA or full instruction SFT, sequence classification, or DPO.",
        discussion: """
            lora: instruction SFT through LoRA adapters, base frozen; writes <out>/adapter (PEFT layout). \
            sft: full instruction SFT; writes a checkpoint. \
            classify: N-class head on the last token's hidden state; --data CSV or JSONL of text,label. \
            dpo: preference optimisation against a frozen copy of the starting model; --data JSONL of prompt, chosen, rejected. \
            --lora trains adapters instead of base weights for sft, classify and dpo.

            SFT data: JSONL with instruction/input/output (Alpaca template), messages (Qwen chat template), \
            prompt/completion or text; the loss covers response tokens only. See README "Fine-tuning".
            """)

    enum Method: String, ExpressibleByArgument, CaseIterable { case lora, sft, classify, dpo }

    @Option(help: "lora, sft, classify or dpo.") var method: Method
    @OptionGroup var source: ModelSourceOptions
    @Option(help: "Training data (JSONL; CSV for classify).") var data: String
    @Option(help: "Validation data (default: hold out --val-fraction of --data).") var val: String?
    @Option(help: "Fraction of --data held out for validation when --val is not given.") var valFraction = 0.1
    @Option(help: "Tokenizer file (tokenizer.json, vocab.json, .tiktoken; default: the model folder's). Saved checkpoints carry a copy.")
    var tokenizer: String?
    @Flag(help: "Use --tokenizer even when it differs from the model's own tokenizer.") var allowTokenizerMismatch = false
    @Option(help: "Padding id (default: the tokenizer's end-of-text id, else 0).") var padId: Int?

    @Option(help: "LoRA rank r.") var rank = 8
    @Option(help: "LoRA alpha (scaling alpha/r).") var alpha = 16.0
    @Option(help: "LoRA dropout on the adapter input.") var dropout = 0.0
    @Option(help: "LoRA targets: q,k,v,o,gate,up,down,fc_in,fc_out or all.") var targets = "q,v"
    @Flag(help: "Train LoRA adapters instead of base weights (sft, classify, dpo; implied by --method lora).") var lora = false

    @Option(help: "Trainable base parameters: head, all or last:N (classify default last:1; sft/dpo default all).")
    var trainable: String?
    @Option(help: "DPO beta.") var beta = 0.1
    @Option(help: "DPO label smoothing epsilon (0 = standard DPO).") var labelSmoothing = 0.0
    @Option(help: "DPO sequence log-prob over response tokens: mean or sum.") var logprobReduction = "mean"
    @Flag(help: "SFT: pack examples back to back into rows of --seq-len tokens instead of padding each batch.") var pack = false
    @Option(help: "SFT: tokens per packed row (default: the context length).") var seqLen: Int?

    @Option(help: "Optimizer steps.") var steps = 100
    @Option(help: "Examples per micro-batch.") var batchSize = 8
    @Option(help: "Micro-batches per step.") var gradAccum = 1
    @Option(help: ArgumentHelp("Optimizer: \(OptimizerCatalog.optimizerNames).")) var optimizer = "adamw"
    @Option(help: "Peak learning rate (default: lora 1e-3, sft/classify 1e-4, dpo 5e-6).") var lr: Double?
    @Option(help: "Learning-rate floor of the decay.") var minLr: Double?
    @Option(help: "Weight decay (default 0.01; classify 0.1).") var weightDecay: Double?
    @Option(help: "Linear warmup steps.") var warmup = 0
    @Option(help: ArgumentHelp("Schedule: \(OptimizerCatalog.scheduleNames).")) var schedule = "cosine"
    @Option(help: "Global-norm gradient clipping (0 = off).") var gradClip = 1.0
    @Option(help: "Validate every N steps (0 = only at the end).") var evalEvery = 0
    @Option(help: "Seed for data order, splits, dropout and new weights.") var seed = 1337

    @Option(help: "Dropout of the model itself while training (embeddings, attention weights, residual branches; default: the model's own rates, e.g. GPT-2's 0.1).")
    var modelDropout: Double?

    @Option(help: "Output folder (default Checkpoints/finetune-<method>): the result, and training checkpoints step-* to resume from.")
    var out: String?
    @Option(help: "Metrics JSONL (default <out>/metrics.jsonl).") var metrics: String?
    @Option(help: "Save a training checkpoint every N steps (0 = only at the end or on interruption).") var saveEvery = 0
    @Option(help: "Training checkpoints kept.") var keepCheckpoints = 2
    @Option(help: "Also keep the checkpoint with the best value of this evaluation metric as <out>/best (val_loss, val_accuracy, val_preference_accuracy, …).")
    var keepBest: String?
    @Flag(help: "Continue the run in --out from its newest checkpoint (the same flags as the run that made it).") var resume = false
    @Option(help: "Off a terminal: a log line every N steps; 0: none.") var logEvery = 10
    @Flag(help: "Print a JSON summary at the end.") var json = false

    /// The end of a run: what it trained and where its result went.
    struct Summary: Encodable {
        var method: String
        var stop: TrainingStop
        var steps: Int
        var trainableParameters: Int
        var totalParameters: Int
        var final: [String: Double]
        var validation: [String: Double]
        var seconds: Double
        var output: String?
        var best: String?
        var message: String?
    }

    func validate() throws {
        guard steps >= 1, batchSize >= 1, gradAccum >= 1 else { throw ValidationError("--steps, --batch-size and --grad-accum must be at least 1") }
        guard valFraction >= 0, valFraction < 1 else { throw ValidationError("--val-fraction must be in [0, 1)") }
        guard LogProbReduction(rawValue: logprobReduction) != nil else { throw ValidationError("--logprob-reduction must be mean or sum") }
        if let seqLen, seqLen < 1 { throw ValidationError("--seq-len must be at least 1") }
        guard (1...65536).contains(rank) else { throw ValidationError("--rank must be in 1...65536, got \(rank)") }
        guard saveEvery >= 0, keepCheckpoints >= 1 else { throw ValidationError("--save-every must be >= 0 and --keep-checkpoints >= 1") }
        if useLoRA && trainable != nil && method != .classify { throw ValidationError("--trainable does not apply with LoRA") }
    }

    var useLoRA: Bool { lora || method == .lora }

    /// Attaches adapters when LoRA is on and returns them with the parameters to train.
    func trainables(_ model: DecoderModel, defaultScope: String) throws -> (LoRAModel?, [NamedParameter]) {
        guard useLoRA else { return (nil, try TrainableScope(parsing: trainable ?? defaultScope).apply(to: model)) }
        let cfg = LoRAConfig(rank: rank, alpha: alpha, dropout: dropout, targets: try LoRAConfig.parseTargets(targets),
                             seed: UInt64(truncatingIfNeeded: seed))
        let adapters = try LoRAModel(attachingTo: model, config: cfg)
        return (adapters, adapters.trainableParameters)
    }

    func trainSettings() throws -> TrainSettings {
        var s = TrainSettings()
        var v: [String: ConfigValue] = [
            "steps": .int(steps), "batch_size": .int(batchSize), "grad_accum": .int(gradAccum), "optimizer": .string(optimizer),
            "lr": .double(lr ?? (useLoRA ? (method == .dpo ? 5e-5 : 1e-3) : [Method.lora: 1e-3, .sft: 1e-4, .classify: 1e-4, .dpo: 5e-6][method]!)),
            "weight_decay": .double(weightDecay ?? (method == .classify ? 0.1 : 0.01)), "warmup": .int(warmup),
            "schedule": .string(schedule), "grad_clip": .double(gradClip), "eval_every": .int(evalEvery), "seed": .int(seed),
            "save_every": .int(saveEvery), "keep_checkpoints": .int(keepCheckpoints),
        ]
        if let minLr { v["min_lr"] = .double(minLr) }
        var o = ComponentOptions(path: "flags", values: v)
        do { try s.apply(&o) } catch let e as ToolkitError {
            throw ValidationError(e.message.replacingOccurrences(of: "flags: ", with: "--").replacingOccurrences(of: "_", with: "-"))
        }
        return s
    }

    /// Splits records into train and validation by `--val` or `--val-fraction`.
    func split<T>(_ all: [T], loadVal: (String) throws -> [T]) throws -> (train: [T], val: [T]) {
        if let val { return (all, try loadVal(val)) }
        guard all.count >= 2 else { return (all, []) }
        let (ti, vi) = splitIndices(all.count, fraction: valFraction, seed: UInt64(truncatingIfNeeded: seed))
        return (ti.map { all[$0] }, vi.map { all[$0] })
    }

    /// What a method trains, and how its result is written when the run ends.
    struct Plan {
        var objective: FineTuneObjective
        var write: () throws -> String
        var metadata: [String: String] = [:]
    }

    func run() throws {
        let settings = try trainSettings()
        let model = try source.load()
        if let modelDropout { model.dropout = try DropoutRates.all(modelDropout, flag: "--model-dropout") }
        guard let tokenizer = try resolveTokenizer(explicit: tokenizer, modelFolder: source.path, allowMismatch: allowTokenizerMismatch) else {
            throw ValidationError("finetune needs a tokenizer: --tokenizer FILE, or a tokenizer.json in the model folder")
        }
        let text = try TextEncoder(path: tokenizer, model: model, padID: padId)
        let tokenizerJSON = try BPETokenizer.load(path: tokenizer).huggingFaceJSON()
        /// The tokenizer travels with what this run saves.
        func saveTokenizer(_ dir: String) throws { try AtomicFile.write(tokenizerJSON, to: dir + "/tokenizer.json") }
        let dir = out ?? "Checkpoints/finetune-\(method.rawValue)"
        let lock = try FolderLock(folder: dir, what: "toolkit finetune")
        defer { lock.release() }
        TrainingCheckpoint.recover(dir)
        let metricsPath = metrics ?? dir + "/metrics.jsonl"
        var resumeFrom: String? = nil
        if resume {
            let ck = try TrainingCheckpoint.latest(in: dir)
            let (state, _) = try TrainingCheckpoint.loadState(ck)
            let changed = settingsDifferences(state.settings, settings)
            guard changed.isEmpty else {
                throw ValidationError("--resume: \(ck) was trained with other settings (\(changed.joined(separator: ", "))); give the flags the run started with")
            }
            try Trainer.dropMetricsRows(after: state.step, in: metricsPath)
            resumeFrom = ck
        } else {
            if let last = TrainingCheckpoint.checkpoints(in: dir).last {
                throw ToolkitError("\(dir) already holds training checkpoints (\(last)): continue with --resume, or choose another --out")
            }
            try AtomicFile.removeRegularFile(metricsPath)
        }
        // Model parameters plus the new ones a method adds (LoRA adapters, the classification head).
        let modelParams = Set(model.namedParameters().map { ObjectIdentifier($0.parameter) })
        func totalWith(_ ps: [NamedParameter]) -> Int {
            model.parameterCount + ps.filter { !modelParams.contains(ObjectIdentifier($0.parameter)) }.reduce(0) { $0 + $1.parameter.count }
        }
        let sampler = { (n: Int) in EpochSampler(count: n, seed: settings.seed) }
        /// The micro-batch's example indices.
        func indices(_ order: EpochSampler, _ step: Int, _ micro: Int) -> [Int] {
            order.batch((step - 1) * settings.gradAccum + micro, size: settings.batchSize)
        }
        let start = monotonicSeconds()
        let plan: Plan
        switch method {
        case .lora, .sft:
            let ctx = model.dims.contextLength
            let load = { (p: String) throws -> [MaskedSequence] in
                let (kept, dropped) = SFTData.usable(try SFTData.load(p, encode: text.encode, eos: text.eos), maxLength: ctx)
                if dropped > 0 { printError("\(p): skipped \(dropped) example(s) whose response starts beyond the context (\(ctx) tokens)") }
                guard !kept.isEmpty else { throw ToolkitError.file(p, "no example has response tokens within the context length \(ctx)") }
                return kept
            }
            let (train, valSet) = try split(try load(data), loadVal: load)
            let (lora, params) = try trainables(model, defaultScope: "all")
            if let seqLen, seqLen > ctx {
                throw ValidationError("--seq-len \(seqLen) is longer than the model's context length \(ctx)")
            }
            let rowLength = seqLen ?? ctx
            let packed = pack ? SequenceBatching.pack(train, seqLen: rowLength, padID: text.pad) : []
            if pack && packed.isEmpty { throw ToolkitError.file(data, "packing left no row with a response token") }
            let valBatches = stride(from: 0, to: valSet.count, by: batchSize).map {
                SequenceBatching.pad(Array(valSet[$0..<min(valSet.count, $0 + batchSize)]), padID: text.pad, maxLength: ctx)
            }
            let order = sampler(pack ? packed.count : train.count)
            let objective = try objective(
                model, params, adapters: lora, savesModel: lora == nil,
                step: { step, micro, seed in
                    let idx = indices(order, step, micro)
                    let b = pack ? SequenceBatching.stack(idx.map { packed[$0] })
                        : SequenceBatching.pad(idx.map { train[$0] }, padID: text.pad, maxLength: ctx)
                    return StepOutput(loss: try SFTLoss.loss(model: model, batch: b, dropoutSeed: seed), tokens: b.tokens)
                }, validate: valBatches.isEmpty ? nil : { try SFTLoss.evaluate(model: model, batches: valBatches) })
            // The prompt format the data taught, for `toolkit chat`.
            var metadata = ["finetune": "sft"]
            if let template = SFTData.chatTemplate(ofFile: data) { metadata["chat_template"] = template }
            plan = Plan(objective: objective, write: {
                if let lora {
                    try lora.save(to: dir + "/adapter", baseModel: source.path)
                    return dir + "/adapter"
                }
                try ModelIO.saveCheckpoint(model, to: dir, metadata: metadata)
                try saveTokenizer(dir)
                return dir
            }, metadata: metadata)
        case .classify:
            let load = { (p: String) in try LabelledTexts.load(p) }
            let all = try load(data)
            let pairs = zip(all.texts, all.labels).map { ($0, $1) }
            let (trainPairs, valPairs) = try split(pairs) { p in let v = try load(p); return zip(v.texts, v.labels).map { ($0, $1) } }
            let names = all.classNames()
            guard names.count >= 2 else { throw ToolkitError.file(data, "classification needs at least two labels, found \(names.count) (\(names.joined(separator: ", ")))") }
            let index = Dictionary(uniqueKeysWithValues: names.enumerated().map { ($1, Int32($0)) })
            func encodeSet(_ ps: [(String, String)], _ file: String) throws -> ([[Int32]], [Int32]) {
                var ids: [[Int32]] = [], ys: [Int32] = []
                for (t, l) in ps {
                    guard let y = index[l] else { throw ToolkitError.file(file, "label '\(l)' does not occur in \(data)") }
                    ids.append(text.encode(t)); ys.append(y)
                }
                return (ids, ys)
            }
            let (trainX, trainY) = try encodeSet(trainPairs, data)
            let (valX, valY) = try encodeSet(valPairs, val ?? data)
            let clf = try SequenceClassifier(model: model, labels: names, padID: text.pad, seed: UInt64(truncatingIfNeeded: seed))
            // With LoRA, --trainable still picks base parameters besides the adapters (default: none).
            let (adapters, adapterParams) = try trainables(model, defaultScope: "last:1")
            let base = adapters == nil ? [] : try TrainableScope(parsing: trainable ?? "head").apply(to: model)
            for (_, p) in adapterParams { p.isTrainable = true }
            let params = adapterParams + base + clf.headParameters
            let order = sampler(trainX.count)
            let objective = try objective(
                model, params, adapters: adapters, extra: clf.headParameters, savesModel: true,
                step: { step, micro, seed in
                    let idx = indices(order, step, micro)
                    let (l, acc) = try clf.loss(idx.map { trainX[$0] }, labels: idx.map { trainY[$0] }, dropoutSeed: seed)
                    return StepOutput(loss: l, metrics: ["accuracy": acc], tokens: idx.reduce(0) { $0 + trainX[$1].count })
                }, validate: valX.isEmpty ? nil : { try clf.evaluate(valX, labels: valY, batchSize: settings.batchSize) })
            plan = Plan(objective: objective, write: {
                try adapters?.merge()  // the classifier checkpoint is self-contained
                try clf.save(to: dir, metadata: ["finetune": "classify"])
                try saveTokenizer(dir)
                return dir
            })
        case .dpo:
            let load = { (p: String) in try PreferencePair.load(p, encode: text.encode, eos: text.eos) }
            let (train, valSet) = try split(try load(data), loadVal: load)
            let dpo = try DPOTrainer(policy: model, beta: Float(beta), labelSmoothing: Float(labelSmoothing),
                                     reduction: LogProbReduction(rawValue: logprobReduction)!, padID: text.pad)
            let (adapters, params) = try trainables(model, defaultScope: "all")  // the reference copy has none
            let order = sampler(train.count)
            // As TRL's DPOTrainer (disable_dropout): the policy's log-probabilities are compared with
            // the reference's, so neither forward drops.
            // Adapter dropout (lora_dropout) stays, as PEFT's under TRL.
            let objective = try objective(
                model, params, adapters: adapters, savesModel: adapters == nil,
                step: { step, micro, _ in
                    let o = try dpo.step(indices(order, step, micro).map { train[$0] })
                    return StepOutput(loss: o.loss, metrics: o.metrics)
                }, validate: valSet.isEmpty ? nil : { try dpo.evaluate(valSet, batchSize: settings.batchSize) })
            plan = Plan(objective: objective, write: {
                if let adapters {
                    try adapters.save(to: dir + "/adapter", baseModel: source.path)
                    return dir + "/adapter"
                }
                try ModelIO.saveCheckpoint(model, to: dir, metadata: ["finetune": "dpo"])
                try saveTokenizer(dir)
                return dir
            }, metadata: ["finetune": "dpo"])
        }
        let params = plan.objective.parameters, total = totalWith(params)
        let trainer = try Trainer(objective: plan.objective, settings: settings)
        trainer.outputDirectory = dir
        trainer.metricsPath = metricsPath
        trainer.tokenizerJSON = tokenizerJSON
        trainer.checkpointMetadata = plan.metadata
        trainer.keepBest = try keepBest.map { try KeepBest(metric: $0) }
        trainer.evaluateAtEnd = true  // --eval-every 0: validate once, at the end
        if let resumeFrom { try trainer.restore(from: resumeFrom) }
        guard trainer.state.step < settings.steps else {
            printError("nothing to train: \(resumeFrom ?? dir) is at step \(trainer.state.step) of \(settings.steps)")
            return
        }
        observe(trainer, params: params, total: total)
        let result = try trainer.run()
        let output = result.stop == .nonFinite ? nil : try plan.write()
        try report(Summary(method: method.rawValue, stop: result.stop, steps: result.steps,
                           trainableParameters: params.reduce(0) { $0 + $1.parameter.count }, totalParameters: total,
                           final: result.last, validation: result.validation, seconds: monotonicSeconds() - start,
                           output: output, best: result.best, message: result.message))
    }

    /// A method's objective. With LoRA `adapters`, they are trained and checkpointed beside `extra`,
    /// their dropout masks follow each micro-batch's seed, and validation runs without their dropout.
    func objective(_ model: DecoderModel, _ params: [NamedParameter], adapters: LoRAModel?, extra: [NamedParameter] = [],
                   savesModel: Bool, step: @escaping (_ step: Int, _ micro: Int, _ dropoutSeed: UInt64) throws -> StepOutput,
                   validate: (() throws -> [String: Double])?) throws -> FineTuneObjective {
        try FineTuneObjective(
            model: model, parameters: params, extra: (adapters?.trainableParameters ?? []) + extra, savesModel: savesModel,
            step: { index, micro, seed in
                adapters?.setDropoutSeed(seed)
                return try step(index, micro, seed)
            },
            validate: validate.map { validate in {
                adapters?.setTraining(false)
                defer { adapters?.setTraining(true) }
                return try validate()
            } })
    }

    /// The settings keys whose values differ (a resume must continue the same run).
    func settingsDifferences(_ a: TrainSettings, _ b: TrainSettings) -> [String] {
        func values(_ s: TrainSettings) -> [String: String] {
            guard let data = try? JSONEncoder().encode(s),
                  let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else { return [:] }
            return object.mapValues { "\($0)" }
        }
        let (x, y) = (values(a), values(b))
        return Set(x.keys).union(y.keys).sorted().filter { x[$0] != y[$0] }.map { "\($0): \(x[$0] ?? "-") → \(y[$0] ?? "-")" }
    }

    /// Progress bar on a terminal, log lines off one, evaluation lines.
    func observe(_ trainer: Trainer, params: [NamedParameter], total: Int) {
        let s = trainer.settings
        if !json {
            let trainableCount = params.reduce(0) { $0 + $1.parameter.count }
            printError("\(method.rawValue): \(trainableCount) trainable parameters of \(total) "
                       + String(format: "(%.3f%%)", 100 * Double(trainableCount) / Double(max(total, 1)))
                       + (trainer.model.dropout.isActive && method != .dpo ? "; dropout \(trainer.model.dropout)" : ""))
        }
        let bar = ProgressBar(total: Double(s.steps), label: method.rawValue, unit: "steps", enabled: !json)
        bar.update(Double(trainer.state.step))
        let log = TrainLog(every: !json && isatty(STDERR_FILENO) == 0 ? logEvery : 0, steps: s.steps, from: trainer.state.step)
        trainer.onStep = { row, _ in
            let extra = ["accuracy", "preference_accuracy", "reward_margin"].compactMap { k in row[k].map { String(format: " %@ %.3f", k, $0) } }.joined()
            bar.update(Double(row.step), extra: String(format: "loss %.4f lr %.2e", row.loss ?? .nan, row.lr ?? 0) + extra)
            log.step(row)
        }
        trainer.onEval = { row in
            guard !json else { return }
            bar.finish()
            printError("step \(row.step): " + row.values.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: " "))
        }
        Interrupt.install()
    }

    func report(_ s: Summary) throws {
        if json {
            print((try? jsonLine(s)) ?? "{}")
        } else {
            printError("")
            print("\(s.method) \(s.stop.rawValue): \(s.trainableParameters) trainable parameters, "
                  + String(format: "loss %.4f, %.1fs", s.final["loss"] ?? .nan, s.seconds))
            if !s.validation.isEmpty {
                print("validation: " + s.validation.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", "))
            }
            if let o = s.output { print("wrote \(o)") }
            if let b = s.best { print("best checkpoint: \(b)") }
        }
        switch s.stop {
        case .finished: break
        case .interrupted: printError("interrupted: saved \(s.output ?? "") and a training checkpoint (continue with --resume)"); throw ExitCode(130)
        case .nonFinite: printError("stopped: \(s.message ?? "non-finite values")"); throw ExitCode(3)
        }
    }
}
