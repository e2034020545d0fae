import Foundation
import ToolkitSupport

/// One run's summary with its metrics log, checked against each other.
public struct RunRecord: Equatable, Sendable {
    public let summary: RunSummary
    public let metrics: MetricsLog

    /// Pairs a summary with its log. Throws unless the summary's loss-derived fields equal what
    /// the log gives by the rules on `RunSummary` (exactly; perplexity to a relative 1e-9, since
    /// `exp` may be computed elsewhere), so the report's numbers always match the metrics files.
    public init(summary: RunSummary, metrics: MetricsLog) throws {
        let s = summary
        let origin = "run \"\(s.variant)\" seed \(s.seed) (\(s.metricsPath))"
        func mismatch(_ key: String, _ summaryValue: String, _ logValue: String) -> ToolkitError {
            ToolkitError(
                "\(origin): summary key \"\(key)\" is \(summaryValue) but the metrics log gives "
                    + logValue)
        }
        func text(_ v: Double?) -> String { v.map { "\($0)" } ?? "none" }
        // Equal values, or both absent, or both NaN (a diverged run).
        func same(_ a: Double?, _ b: Double?) -> Bool {
            a == b || (a?.isNaN == true && b?.isNaN == true)
        }
        guard let lastStep = metrics.steps.last else {
            throw ToolkitError("\(origin): metrics log has no training step rows")
        }
        if !same(s.finalTrainLoss, lastStep.loss) {
            throw mismatch("final_train_loss", text(s.finalTrainLoss), text(lastStep.loss))
        }
        if s.tokensSeen != lastStep.tokens {
            throw mismatch("tokens_seen", "\(s.tokensSeen)", "\(lastStep.tokens)")
        }
        let eval = metrics.finalEval
        if !same(s.valLoss, eval?.valLoss) {
            throw mismatch("val_loss", text(s.valLoss), text(eval?.valLoss))
        }
        if !same(s.bitsPerByte, eval?.valBitsPerByte) {
            throw mismatch("bits_per_byte", text(s.bitsPerByte), text(eval?.valBitsPerByte))
        }
        if !same(s.taskAccuracy, eval?.taskAccuracy) {
            throw mismatch("task_acc", text(s.taskAccuracy), text(eval?.taskAccuracy))
        }
        if !same(s.taskNormalizedAccuracy, eval?.taskNormalizedAccuracy) {
            throw mismatch("task_acc_norm", text(s.taskNormalizedAccuracy), text(eval?.taskNormalizedAccuracy))
        }
        let expected = eval.map { exp($0.valLoss) }
        switch (s.perplexity, expected) {
        case (nil, nil): break
        case (let p?, let e?) where abs(p - e) <= 1e-9 * max(abs(e), 1) || same(p, e): break
        default:
            throw mismatch("perplexity", text(s.perplexity), "exp(val_loss) = \(text(expected))")
        }
        self.summary = summary
        self.metrics = metrics
    }

    /// Reads `path` (a `RunSummary` JSON) and the metrics file it names; a relative
    /// `metrics_path` is resolved against the summary's folder.
    public static func load(summaryPath path: String) throws -> RunRecord {
        let summary = try RunSummary.read(path: path)
        let metricsPath =
            summary.metricsPath.hasPrefix("/")
            ? summary.metricsPath
            : URL(fileURLWithPath: path).deletingLastPathComponent()
                .appendingPathComponent(summary.metricsPath).path
        do {
            return try RunRecord(summary: summary, metrics: try MetricsLog.read(path: metricsPath))
        } catch let error as ToolkitError {
            throw ToolkitError.file(path, error.message)
        }
    }
}

/// The runs (one per seed) of one recipe variant.
public struct VariantRuns: Equatable, Sendable {
    public var name: String
    public var runs: [RunRecord]

    public init(name: String, runs: [RunRecord]) {
        self.name = name
        self.runs = runs
    }

    /// Loads every run from its summary file.
    public static func load(name: String, summaryPaths: [String]) throws -> VariantRuns {
        VariantRuns(name: name, runs: try summaryPaths.map { try RunRecord.load(summaryPath: $0) })
    }
}
