import Foundation
import ToolkitSupport

/// One training-step row of a metrics JSONL file:
/// `{"step": 1, "loss": 7.1, "lr": 0.001, "grad_norm": 1.2, "tokens_per_s": 1500, "tokens": 4096}`.
///
/// `tokens` is the cumulative number of training tokens seen after this step.
public struct StepRow: Codable, Equatable, Sendable {
    public var step: Int
    public var loss: Double
    public var lr: Double?
    public var gradNorm: Double?
    public var tokensPerSecond: Double?
    public var tokens: Int

    public init(
        step: Int, loss: Double, lr: Double? = nil, gradNorm: Double? = nil,
        tokensPerSecond: Double? = nil, tokens: Int
    ) {
        self.step = step
        self.loss = loss
        self.lr = lr
        self.gradNorm = gradNorm
        self.tokensPerSecond = tokensPerSecond
        self.tokens = tokens
    }

    enum CodingKeys: String, CodingKey {
        case step, loss, lr, tokens
        case gradNorm = "grad_norm"
        case tokensPerSecond = "tokens_per_s"
    }
}

/// One evaluation row of a metrics JSONL file:
/// `{"step": 10, "val_loss": 6.9, "val_bpb": 1.8, "tokens": 40960}` (`val_bpb` optional).
public struct EvalRow: Codable, Equatable, Sendable {
    public var step: Int
    public var valLoss: Double
    public var valBitsPerByte: Double?
    public var tokens: Int
    /// Multiple-choice accuracy and its length-normalised form (`task_acc`, `task_acc_norm`), when
    /// the run scored a task at its evaluations.
    public var taskAccuracy: Double?
    public var taskNormalizedAccuracy: Double?

    public init(step: Int, valLoss: Double, valBitsPerByte: Double? = nil, tokens: Int, taskAccuracy: Double? = nil,
                taskNormalizedAccuracy: Double? = nil) {
        self.step = step
        self.valLoss = valLoss
        self.valBitsPerByte = valBitsPerByte
        self.tokens = tokens
        self.taskAccuracy = taskAccuracy
        self.taskNormalizedAccuracy = taskNormalizedAccuracy
    }

    enum CodingKeys: String, CodingKey {
        case step, tokens
        case valLoss = "val_loss"
        case valBitsPerByte = "val_bpb"
        case taskAccuracy = "task_acc"
        case taskNormalizedAccuracy = "task_acc_norm"
    }
}

/// The rows of one run's metrics JSONL file, in logging order.
///
/// A row with `val_loss` is an evaluation row, a row with `loss` a step row (a row with both is
/// both). Other keys are ignored, so the training loop may log more. A step (or eval) row whose
/// `step` is not greater than the previous one marks a resume: the rows it supersedes (same or
/// later step) are dropped, so the log reads as one continuous run.
public struct MetricsLog: Equatable, Sendable {
    public private(set) var steps: [StepRow] = []
    public private(set) var evals: [EvalRow] = []

    public init(steps: [StepRow] = [], evals: [EvalRow] = []) {
        for s in steps { append(s) }
        for e in evals { append(e) }
    }

    /// Appends a step row with resume semantics (see the type's documentation).
    public mutating func append(_ row: StepRow) {
        if let last = steps.last, row.step <= last.step {
            steps.removeAll { $0.step >= row.step }
        }
        steps.append(row)
    }

    /// Appends an evaluation row with resume semantics.
    public mutating func append(_ row: EvalRow) {
        if let last = evals.last, row.step <= last.step {
            evals.removeAll { $0.step >= row.step }
        }
        evals.append(row)
    }

    /// The `loss` of the last logged step: the report's "final train loss".
    public var finalTrainLoss: Double? { steps.last?.loss }

    /// The last evaluation row: its `val_loss` / `val_bpb` are the report's val loss and bpb.
    public var finalEval: EvalRow? { evals.last }

    /// Tokens seen by the end of training: `tokens` of the last step row.
    public var tokensSeen: Int? { steps.last?.tokens }

    /// Reads and parses a metrics JSONL file.
    public static func read(path: String) throws -> MetricsLog {
        let data = try readFile(path, what: "metrics file")
        guard let text = String(data: data, encoding: .utf8) else {
            throw ToolkitError.file(path, "metrics file is not valid UTF-8")
        }
        return try parse(text, path: path)
    }

    /// Parses metrics JSONL text; `path` only names the source in error messages.
    /// Blank lines are skipped; any other line must be one JSON object.
    public static func parse(_ text: String, path: String) throws -> MetricsLog {
        var log = MetricsLog()
        let decoder = reportDecoder()
        for (index, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline)
            .enumerated()
        {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let location = "line \(index + 1)"
            let row: RawRow
            do {
                row = try decoder.decode(RawRow.self, from: Data(trimmed.utf8))
            } catch let error as DecodingError {
                throw ToolkitError.file(path, "\(location): \(describe(error))")
            }
            guard row.step >= 0 else {
                throw ToolkitError.file(
                    path, "\(location): key \"step\" must be >= 0, got \(row.step)")
            }
            guard row.tokens >= 0 else {
                throw ToolkitError.file(
                    path, "\(location): key \"tokens\" must be >= 0, got \(row.tokens)")
            }
            if row.loss == nil && row.valLoss == nil {
                throw ToolkitError.file(
                    path, "\(location): row has neither \"loss\" nor \"val_loss\"")
            }
            if let loss = row.loss {
                log.append(
                    StepRow(
                        step: row.step, loss: loss, lr: row.lr, gradNorm: row.gradNorm,
                        tokensPerSecond: row.tokensPerSecond, tokens: row.tokens))
            }
            if let valLoss = row.valLoss {
                log.append(
                    EvalRow(
                        step: row.step, valLoss: valLoss, valBitsPerByte: row.valBitsPerByte,
                        tokens: row.tokens, taskAccuracy: row.taskAccuracy, taskNormalizedAccuracy: row.taskNormalizedAccuracy))
            }
        }
        return log
    }

    /// Every key either row kind may carry; `step` and `tokens` are required in both.
    private struct RawRow: Decodable {
        var step: Int
        var tokens: Int
        var loss: Double?
        var lr: Double?
        var gradNorm: Double?
        var tokensPerSecond: Double?
        var valLoss: Double?
        var valBitsPerByte: Double?
        var taskAccuracy: Double?
        var taskNormalizedAccuracy: Double?

        enum CodingKeys: String, CodingKey {
            case step, tokens, loss, lr
            case gradNorm = "grad_norm"
            case tokensPerSecond = "tokens_per_s"
            case valLoss = "val_loss"
            case valBitsPerByte = "val_bpb"
            case taskAccuracy = "task_acc"
            case taskNormalizedAccuracy = "task_acc_norm"
        }
    }
}
