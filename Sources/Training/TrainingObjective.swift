import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport

/// One micro-batch's result: the loss to back-propagate (a mean over the micro-batch) and the
/// metrics to log, averaged over the step's micro-batches (`loss`, the logged loss, defaults to
/// the back-propagated one).
public struct StepOutput {
    public var loss: Tensor
    public var metrics: [String: Double]
    public var tokens: Int

    public init(loss: Tensor, metrics: [String: Double] = [:], tokens: Int = 0) {
        self.loss = loss
        self.metrics = metrics
        self.tokens = tokens
    }
}

/// What a run trains, for the one training loop (`Trainer`): pre-training a language model
/// (`LanguageModelObjective`), and every fine-tuning method (`FineTuneObjective`: SFT, LoRA,
/// classification, DPO). The loop owns everything else: accumulation, clipping, the schedule, the
/// optimizer, data parallelism, evaluation, metrics, checkpoints, resume, best-checkpoint keeping
/// and interruption.
public protocol TrainingObjective: AnyObject {
    /// The model being trained.
    var model: DecoderModel { get }
    /// What the optimizer updates.
    var parameters: [NamedParameter] { get }
    /// Trained parameters outside the model (LoRA adapters, a classification head), by name: a
    /// checkpoint carries them (`extra.safetensors`) and a resume restores them.
    var extraParameters: [NamedParameter] { get }
    /// Whether checkpoints carry the model's weights (false: a frozen base under adapters, which
    /// a resume takes from the same source again).
    var savesModel: Bool { get }
    /// The tokenizer hash of the training data, recorded in checkpoints (nil: unknown).
    var tokenizerHash: String? { get }
    /// Called once before the first step with the run's settings (validation batches, checks).
    func prepare(settings: TrainSettings, evaluates: Bool) throws
    /// The loss of micro-batch `micro` of `step` (1-based); `dropoutSeed` drives the model's dropout.
    func loss(step: Int, micro: Int, settings: TrainSettings, dropoutSeed: UInt64) throws -> StepOutput
    /// Validation metrics under their logged names (`val_loss`, `val_bpb`, `task_acc`, `val_accuracy`, …);
    /// nil when there is nothing to evaluate.
    func evaluate() throws -> [String: Double]?
}

extension TrainingObjective {
    public var extraParameters: [NamedParameter] { [] }
    public var savesModel: Bool { true }
    public var tokenizerHash: String? { nil }
    public func prepare(settings: TrainSettings, evaluates: Bool) throws {}
}

/// Next-token prediction on token data: `DecoderModel.crossEntropy` (plus a router's auxiliary
/// losses), validation loss and bits-per-byte, and an optional multiple-choice task.
public final class LanguageModelObjective: TrainingObjective {
    public let model: DecoderModel
    public let data: any TrainingData
    public let seqLen: Int
    public let parameters: [NamedParameter]
    /// Maps a token id to its UTF-8 byte length, for validation bits-per-byte.
    public var tokenBytes: ((Int32) -> Int)?
    /// Multiple-choice items scored at every evaluation: `task_acc`, `task_acc_norm`.
    public var evalTask: [MultipleChoiceItem]?
    var validation: [Batch] = []

    public init(model: DecoderModel, data: any TrainingData, settings: TrainSettings) throws {
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
        self.model = model
        self.data = data
        seqLen = t
        parameters = model.namedParameters().filter { $0.parameter.isTrainable }
    }

    public var tokenizerHash: String? { data.tokenizerHash }

    public func prepare(settings: TrainSettings, evaluates: Bool) throws {
        if let evalTask { try MultipleChoice.check(evalTask, model) }  // a bad item fails now, not at the first evaluation
        validation = evaluates ? try data.validation(settings: settings, seqLen: seqLen) : []
    }

    public func loss(step: Int, micro: Int, settings: TrainSettings, dropoutSeed: UInt64) throws -> StepOutput {
        let b = try data.batch(step: step, micro: micro, settings: settings, seqLen: seqLen)
        let (loss, ce, aux) = try model.loss(ids: b.input, targets: b.targets, batch: b.rows, dropoutSeed: dropoutSeed)
        var metrics = ["loss": Double(ce.item())]
        metrics["aux_loss"] = aux.map { Double($0.item()) }
        return StepOutput(loss: loss, metrics: metrics, tokens: b.tokens)
    }

    public func evaluate() throws -> [String: Double]? {
        guard let val = try evaluate(validation) else { return nil }  // a task is scored beside validation
        var out = ["val_loss": val.loss]
        out["val_bpb"] = val.bpb
        if let evalTask, !evalTask.isEmpty {
            let task = try MultipleChoice.evaluate(model, evalTask)
            out["task_acc"] = task.accuracy
            out["task_acc_norm"] = task.normalizedAccuracy
        }
        return out
    }

    /// Mean loss (and bits-per-byte) over `batches`; nil when there are none.
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
}

/// A fine-tuning objective from closures: `step(step, micro, dropoutSeed)` computes a
/// micro-batch's loss, `validate` the validation metrics (logged with a `val_` prefix).
public final class FineTuneObjective: TrainingObjective {
    public let model: DecoderModel
    public let parameters: [NamedParameter]
    public let extraParameters: [NamedParameter]
    public let savesModel: Bool
    let step: (Int, Int, UInt64) throws -> StepOutput
    let validate: (() throws -> [String: Double])?

    /// `extra`: trained parameters outside the model; `savesModel`: false when the model's own
    /// weights are frozen (adapters only).
    public init(model: DecoderModel, parameters: [NamedParameter], extra: [NamedParameter] = [], savesModel: Bool = true,
                step: @escaping (_ step: Int, _ micro: Int, _ dropoutSeed: UInt64) throws -> StepOutput,
                validate: (() throws -> [String: Double])? = nil) throws {
        let names = extra.map(\.name)
        guard Set(names).count == names.count else { throw ToolkitError("fine-tuning: two extra parameters share a name") }
        self.model = model
        self.parameters = parameters
        extraParameters = extra
        self.savesModel = savesModel
        self.step = step
        self.validate = validate
    }

    public func loss(step: Int, micro: Int, settings: TrainSettings, dropoutSeed: UInt64) throws -> StepOutput {
        try self.step(step, micro, dropoutSeed)
    }

    public func evaluate() throws -> [String: Double]? {
        guard let validate else { return nil }
        let v = try GradMode.withoutGrad { try validate() }
        return Dictionary(uniqueKeysWithValues: v.map { ("val_" + $0.key, $0.value) })
    }
}
