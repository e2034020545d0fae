import Foundation
import ToolkitSupport

/// The summary of one training run (one variant, one seed), written by the compare harness as
/// `<variant>-seed<k>.summary.json` next to the run's metrics JSONL.
///
/// The loss-derived fields are defined from the metrics log (`init(…metrics:)` derives them, and
/// `RunRecord` checks a loaded summary against its log):
/// - `final_train_loss`: `loss` of the last step row;
/// - `val_loss`: `val_loss` of the last eval row (absent when no evaluation ran);
/// - `perplexity`: `exp(val_loss)`;
/// - `bits_per_byte`: `val_bpb` of the last eval row (absent when not logged);
/// - `tokens_seen`: `tokens` of the last step row;
/// - `task_acc`, `task_acc_norm`: those of the last eval row (absent when the run scored no task).
public struct RunSummary: Codable, Equatable, Sendable {
    public var variant: String
    public var seed: Int
    public var params: Int
    public var nonEmbeddingParams: Int
    public var flopsPerToken: Double
    public var tokensPerSecond: Double
    public var finalTrainLoss: Double
    public var valLoss: Double?
    public var perplexity: Double?
    public var bitsPerByte: Double?
    public var wallSeconds: Double
    public var tokensSeen: Int
    public var taskAccuracy: Double?
    public var taskNormalizedAccuracy: Double?
    /// Path of the metrics JSONL; a relative path is relative to the summary file's folder.
    public var metricsPath: String

    enum CodingKeys: String, CodingKey, CaseIterable {
        case variant, seed, params, perplexity
        case nonEmbeddingParams = "non_embedding_params"
        case flopsPerToken = "flops_per_token"
        case tokensPerSecond = "tokens_per_s"
        case finalTrainLoss = "final_train_loss"
        case valLoss = "val_loss"
        case bitsPerByte = "bits_per_byte"
        case wallSeconds = "wall_seconds"
        case tokensSeen = "tokens_seen"
        case metricsPath = "metrics_path"
        case taskAccuracy = "task_acc"
        case taskNormalizedAccuracy = "task_acc_norm"
    }

    public init(
        variant: String, seed: Int, params: Int, nonEmbeddingParams: Int, flopsPerToken: Double,
        tokensPerSecond: Double, finalTrainLoss: Double, valLoss: Double?, perplexity: Double?,
        bitsPerByte: Double?, wallSeconds: Double, tokensSeen: Int, metricsPath: String
    ) {
        self.variant = variant
        self.seed = seed
        self.params = params
        self.nonEmbeddingParams = nonEmbeddingParams
        self.flopsPerToken = flopsPerToken
        self.tokensPerSecond = tokensPerSecond
        self.finalTrainLoss = finalTrainLoss
        self.valLoss = valLoss
        self.perplexity = perplexity
        self.bitsPerByte = bitsPerByte
        self.wallSeconds = wallSeconds
        self.tokensSeen = tokensSeen
        self.metricsPath = metricsPath
    }

    /// Builds a summary whose loss fields come from `metrics` by the rules above.
    ///
    /// `tokensPerSecond` defaults to the median of the logged `tokens_per_s` values, leaving out
    /// the first logged one (warm-up) when there are several; with none logged it is
    /// `tokens_seen / wallSeconds`. Throws when the log has no step rows.
    public init(
        variant: String, seed: Int, params: Int, nonEmbeddingParams: Int, flopsPerToken: Double,
        wallSeconds: Double, metricsPath: String, metrics: MetricsLog,
        tokensPerSecond: Double? = nil
    ) throws {
        guard let last = metrics.steps.last else {
            throw ToolkitError.file(metricsPath, "metrics log has no training step rows")
        }
        let valLoss = metrics.finalEval?.valLoss
        let rates = metrics.steps.compactMap(\.tokensPerSecond)
        let derivedRate: Double
        if let tokensPerSecond {
            derivedRate = tokensPerSecond
        } else if !rates.isEmpty {
            derivedRate = Stats.median(rates.count > 1 ? Array(rates.dropFirst()) : rates)
        } else {
            derivedRate = wallSeconds > 0 ? Double(last.tokens) / wallSeconds : 0
        }
        self.init(
            variant: variant, seed: seed, params: params, nonEmbeddingParams: nonEmbeddingParams,
            flopsPerToken: flopsPerToken, tokensPerSecond: derivedRate,
            finalTrainLoss: last.loss, valLoss: valLoss, perplexity: valLoss.map { exp($0) },
            bitsPerByte: metrics.finalEval?.valBitsPerByte, wallSeconds: wallSeconds,
            tokensSeen: last.tokens, metricsPath: metricsPath)
        taskAccuracy = metrics.finalEval?.taskAccuracy
        taskNormalizedAccuracy = metrics.finalEval?.taskNormalizedAccuracy
    }

    /// Reads a summary JSON file. Unknown keys are errors (they are usually typos).
    public static func read(path: String) throws -> RunSummary {
        let data = try readFile(path, what: "run summary")
        guard let object = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
            throw ToolkitError.file(path, "run summary is not a JSON object")
        }
        let known = Set(CodingKeys.allCases.map(\.rawValue))
        if let unknown = object.keys.sorted().first(where: { !known.contains($0) }) {
            throw ToolkitError.file(path, "unknown key \"\(unknown)\" in run summary")
        }
        do {
            return try reportDecoder().decode(RunSummary.self, from: data)
        } catch let error as DecodingError {
            throw ToolkitError.file(path, describe(error))
        }
    }

    /// Writes the summary as pretty, key-sorted JSON, atomically (non-finite numbers as the
    /// strings "nan", "inf", "-inf", which `read` accepts).
    public func write(to path: String) throws {
        let encoder = reportEncoder(pretty: true)
        try AtomicFile.write(try encoder.encode(self) + Data("\n".utf8), to: path)
    }
}
