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

    @Option(help: "Output folder (default Checkpoints/finetune-<method>).") var out: String?
    @Option(help: "Metrics JSONL (default <out>/metrics.jsonl).") var metrics: String?
    @Flag(help: "Print a JSON summary at the end.") var json = false

    func validate() throws {
        guard steps >= 1, batchSize >= 1, gradAccum >= 1 else { throw ValidationError("--steps, --batch-size and --grad-accum must be at least 1") }
        guard valFraction >= 0, valFraction < 1 else { throw ValidationError("--val-fraction must be in [0, 1)") }
        guard LogProbReduction(rawValue: logprobReduction) != nil else { throw ValidationError("--logprob-reduction must be mean or sum") }
        if let seqLen, seqLen < 1 { throw ValidationError("--seq-len must be at least 1") }
        guard (1...65536).contains(rank) else { throw ValidationError("--rank must be in 1...65536, got \(rank)") }
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

    func run() throws {
        let settings = try trainSettings()
        let model = try source.load()
        guard let tokenizer = try resolveTokenizer(explicit: tokenizer, modelFolder: source.path, allowMismatch: allowTokenizerMismatch) else {
            throw ValidationError("finetune needs a tokenizer: --tokenizer FILE, or a tokenizer.json in the model folder")
        }
        let text = try TextEncoder(path: tokenizer, model: model, padID: padId)
        /// The tokenizer travels with what this run saves.
        func saveTokenizer(_ dir: String) throws {
            try AtomicFile.write(try BPETokenizer.load(path: tokenizer).huggingFaceJSON(), to: dir + "/tokenizer.json")
        }
        let dir = out ?? "Checkpoints/finetune-\(method.rawValue)"
        let lock = try FolderLock(folder: dir, what: "toolkit finetune")
        defer { lock.release() }
        let metricsPath = metrics ?? dir + "/metrics.jsonl"
        try AtomicFile.removeRegularFile(metricsPath)
        // Model parameters plus the new ones a method adds (LoRA adapters, the classification head).
        let modelParams = Set(model.namedParameters().map { ObjectIdentifier($0.parameter) })
        func totalWith(_ ps: [NamedParameter]) -> Int {
            model.parameterCount + ps.filter { !modelParams.contains(ObjectIdentifier($0.parameter)) }.reduce(0) { $0 + $1.parameter.count }
        }
        let sampler = { (n: Int) in EpochSampler(count: n, seed: settings.seed) }
        let start = monotonicSeconds()
        var summary: FineTuneSummary
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
            let loop = try makeLoop(params, settings, metricsPath, total: totalWith(params))
            let result = try loop.run(step: { step, micro in
                let idx = order.batch((step - 1) * settings.gradAccum + micro, size: settings.batchSize)
                let b = pack ? SequenceBatching.stack(idx.map { packed[$0] })
                    : SequenceBatching.pad(idx.map { train[$0] }, padID: text.pad, maxLength: ctx)
                return StepOutput(loss: try SFTLoss.loss(model: model, batch: b), tokens: b.tokens)
            }, evaluate: valBatches.isEmpty ? nil : {
                lora?.setTraining(false)
                defer { lora?.setTraining(true) }
                return try SFTLoss.evaluate(model: model, batches: valBatches)
            })
            var output = dir
            if let lora {
                output = dir + "/adapter"
                if result.stop != .nonFinite { try lora.save(to: output, baseModel: source.path) }
            } else if result.stop != .nonFinite {
                // The prompt format the data taught, for `toolkit chat`.
                var metadata = ["finetune": "sft"]
                if let template = SFTData.chatTemplate(ofFile: data) { metadata["chat_template"] = template }
                try ModelIO.saveCheckpoint(model, to: dir, metadata: metadata)
                try saveTokenizer(dir)
            }
            summary = makeSummary(result, params, totalWith(params), start, output)
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
            let loop = try makeLoop(params, settings, metricsPath, total: totalWith(params))
            let result = try loop.run(step: { step, micro in
                let idx = order.batch((step - 1) * settings.gradAccum + micro, size: settings.batchSize)
                let (l, acc) = try clf.loss(idx.map { trainX[$0] }, labels: idx.map { trainY[$0] })
                return StepOutput(loss: l, metrics: ["accuracy": acc], tokens: idx.reduce(0) { $0 + trainX[$1].count })
            }, evaluate: valX.isEmpty ? nil : {
                adapters?.setTraining(false)
                defer { adapters?.setTraining(true) }
                return try clf.evaluate(valX, labels: valY, batchSize: settings.batchSize)
            })
            if result.stop != .nonFinite {
                try adapters?.merge()  // the classifier checkpoint is self-contained
                try clf.save(to: dir, metadata: ["finetune": "classify"])
                try saveTokenizer(dir)
            }
            summary = makeSummary(result, params, totalWith(params), start, dir)
        case .dpo:
            let load = { (p: String) in try PreferencePair.load(p, encode: text.encode, eos: text.eos) }
            let (train, valSet) = try split(try load(data), loadVal: load)
            let dpo = try DPOTrainer(policy: model, beta: Float(beta), labelSmoothing: Float(labelSmoothing),
                                     reduction: LogProbReduction(rawValue: logprobReduction)!, padID: text.pad)
            let (adapters, params) = try trainables(model, defaultScope: "all")  // the reference copy has none
            let order = sampler(train.count)
            let loop = try makeLoop(params, settings, metricsPath, total: totalWith(params))
            let result = try loop.run(step: { step, micro in
                let idx = order.batch((step - 1) * settings.gradAccum + micro, size: settings.batchSize)
                let o = try dpo.step(idx.map { train[$0] })
                return StepOutput(loss: o.loss, metrics: o.metrics)
            }, evaluate: valSet.isEmpty ? nil : {
                adapters?.setTraining(false)
                defer { adapters?.setTraining(true) }
                return try dpo.evaluate(valSet, batchSize: settings.batchSize)
            })
            let output = adapters == nil ? dir : dir + "/adapter"
            if result.stop != .nonFinite {
                if let adapters { try adapters.save(to: output, baseModel: source.path) }
                else {
                    try ModelIO.saveCheckpoint(model, to: dir, metadata: ["finetune": "dpo"])
                    try saveTokenizer(dir)
                }
            }
            summary = makeSummary(result, params, totalWith(params), start, output)
        }
        try report(summary)
    }

    func makeLoop(_ params: [NamedParameter], _ s: TrainSettings, _ metricsPath: String, total: Int) throws -> FineTuneLoop {
        let loop = try FineTuneLoop(parameters: params, settings: s)
        loop.metricsPath = metricsPath
        if !json {
            let trainableCount = params.reduce(0) { $0 + $1.parameter.count }
            printError("\(method.rawValue): \(trainableCount) trainable parameters of \(total) "
                       + String(format: "(%.3f%%)", 100 * Double(trainableCount) / Double(max(total, 1))))
        }
        let bar = ProgressBar(total: Double(s.steps), label: method.rawValue, unit: "steps", enabled: !json)
        loop.onStep = { row in
            let extra = ["accuracy", "preference_accuracy", "reward_margin"].compactMap { k in row.values[k].map { String(format: " %@ %.3f", k, $0) } }.joined()
            bar.update(Double(row.step), extra: String(format: "loss %.4f lr %.2e", row.values["loss"] ?? .nan, row.values["lr"] ?? 0) + extra)
        }
        loop.onEval = { row in
            guard !json else { return }
            bar.finish()
            printError("step \(row.step): " + row.values.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: " "))
        }
        Interrupt.install()
        return loop
    }

    func makeSummary(_ r: FineTuneResult,
                     _ params: [NamedParameter], _ total: Int, _ start: Double, _ output: String) -> FineTuneSummary {
        FineTuneSummary(method: method.rawValue, result: r, trainableParameters: params.reduce(0) { $0 + $1.parameter.count },
                        totalParameters: total, seconds: monotonicSeconds() - start, output: output)
    }

    func report(_ s: FineTuneSummary) throws {
        if json {
            print((try? jsonLine(s)) ?? "{}")
        } else {
            printError("")
            print("\(s.method) \(s.stop.rawValue): \(s.trainableParameters) trainable parameters, "
                  + String(format: "loss %.4f, %.1fs", s.final["loss"] ?? .nan, s.seconds))
            if !s.validation.isEmpty {
                print("validation: " + s.validation.sorted { $0.key < $1.key }.map { String(format: "%@ %.4f", $0.key, $0.value) }.joined(separator: ", "))
            }
            if let o = s.output, s.stop != .nonFinite { print("wrote \(o)") }
        }
        switch s.stop {
        case .finished: break
        case .interrupted: printError("interrupted: saved \(s.output ?? "")"); throw ExitCode(130)
        case .nonFinite: printError("stopped: \(s.message ?? "non-finite values")"); throw ExitCode(3)
        }
    }
}
