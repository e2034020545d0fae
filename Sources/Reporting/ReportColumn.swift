import Foundation

/// Which direction of a column is better; `.none` columns are descriptive and never marked.
public enum Better: String, Codable, Sendable {
    case lower, higher, none
}

/// How a column's numbers are printed. Every output (Markdown, HTML, terminal, JSON `text`) uses
/// the same rule, and best/n.s. decisions are made on the printed numbers.
public enum NumberStyle: Equatable, Sendable {
    /// Rounded to an integer (`%.0f`), digits grouped by commas: `124,439,808`.
    case grouped
    /// Two decimals with an SI suffix (K, M, G, T): `744.56M`.
    case si
    /// A fixed number of decimals (`%.Nf`).
    case fixed(Int)

    /// The printed form of `value`.
    public func format(_ value: Double) -> String {
        guard value.isFinite else { return value.isNaN ? "nan" : (value > 0 ? "inf" : "-inf") }
        switch self {
        case .grouped: return groupDigits(fixedText(value, decimals: 0))
        case .si: return siText(value, decimals: 2)
        case .fixed(let d): return fixedText(value, decimals: d)
        }
    }

    /// The printed number as an integer count of its last printed digit (`3.2145` → 32145), for
    /// exact comparisons that agree with what the reader sees; nil when not comparable.
    func units(_ value: Double) -> Int? {
        guard value.isFinite else { return nil }
        switch self {
        case .grouped: return Int(fixedText(value, decimals: 0))
        case .si: return nil
        case .fixed(let d):
            return Int(fixedText(value, decimals: d).replacingOccurrences(of: ".", with: ""))
        }
    }
}

/// One column of the comparison table, in table order.
public enum ReportColumn: String, CaseIterable, Codable, Sendable {
    case params
    case nonEmbeddingParams = "non_embedding_params"
    case flopsPerToken = "flops_per_token"
    case tokensSeen = "tokens_seen"
    case tokensPerSecond = "tokens_per_s"
    case finalTrainLoss = "final_train_loss"
    case valLoss = "val_loss"
    case perplexity
    case bitsPerByte = "bits_per_byte"
    case taskAccuracy = "task_acc"
    case taskNormalizedAccuracy = "task_acc_norm"
    case wallSeconds = "wall_seconds"

    /// Columns shown only when some run has a value (`compare --task`).
    static let whenPresent: Set<ReportColumn> = [.taskAccuracy, .taskNormalizedAccuracy]

    /// The header text.
    public var title: String {
        switch self {
        case .params: "params"
        case .nonEmbeddingParams: "non-emb params"
        case .flopsPerToken: "FLOPs/token"
        case .tokensSeen: "tokens"
        case .tokensPerSecond: "tokens/s"
        case .finalTrainLoss: "train loss"
        case .valLoss: "val loss"
        case .perplexity: "val ppl"
        case .bitsPerByte: "val bpb"
        case .taskAccuracy: "task acc"
        case .taskNormalizedAccuracy: "task acc_norm"
        case .wallSeconds: "wall s"
        }
    }

    /// Lower is better for losses, perplexity, bits-per-byte and wall time; higher for
    /// throughput; sizes, cost and budget (params, FLOPs/token, tokens) are not judged.
    public var better: Better {
        switch self {
        case .params, .nonEmbeddingParams, .flopsPerToken, .tokensSeen: .none
        case .tokensPerSecond, .taskAccuracy, .taskNormalizedAccuracy: .higher
        case .finalTrainLoss, .valLoss, .perplexity, .bitsPerByte, .wallSeconds: .lower
        }
    }

    public var style: NumberStyle {
        switch self {
        case .params, .nonEmbeddingParams, .tokensSeen, .tokensPerSecond: .grouped
        case .flopsPerToken: .si
        case .finalTrainLoss, .valLoss, .bitsPerByte, .taskAccuracy, .taskNormalizedAccuracy: .fixed(4)
        case .perplexity: .fixed(2)
        case .wallSeconds: .fixed(1)
        }
    }

    /// Columns that describe the setup: when every seed agrees the single value is shown
    /// without "± sd" (params and FLOPs/token must agree; `build` checks).
    var isSetup: Bool { better == .none }

    /// This column's value in a run summary (nil when the run did not produce it).
    func value(in s: RunSummary) -> Double? {
        switch self {
        case .params: Double(s.params)
        case .nonEmbeddingParams: Double(s.nonEmbeddingParams)
        case .flopsPerToken: s.flopsPerToken
        case .tokensSeen: Double(s.tokensSeen)
        case .tokensPerSecond: s.tokensPerSecond
        case .finalTrainLoss: s.finalTrainLoss
        case .valLoss: s.valLoss
        case .perplexity: s.perplexity
        case .bitsPerByte: s.bitsPerByte
        case .taskAccuracy: s.taskAccuracy
        case .taskNormalizedAccuracy: s.taskNormalizedAccuracy
        case .wallSeconds: s.wallSeconds
        }
    }
}

/// `%.Nf` in the POSIX locale, without a minus sign on a printed zero.
func fixedText(_ value: Double, decimals: Int) -> String {
    let s = String(format: "%.\(decimals)f", value)
    if s.hasPrefix("-") && !s.contains(where: { ("1"..."9").contains($0) }) {
        return String(s.dropFirst())
    }
    return s
}

/// Inserts commas every three digits of the integer part: `-1234567.5` → `-1,234,567.5`.
func groupDigits(_ text: String) -> String {
    let negative = text.hasPrefix("-")
    let body = negative ? String(text.dropFirst()) : text
    let parts = body.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    let digits = Array(parts[0])
    var grouped = ""
    for (i, c) in digits.enumerated() {
        if i > 0 && (digits.count - i) % 3 == 0 { grouped.append(",") }
        grouped.append(c)
    }
    let fraction = parts.count > 1 ? "." + parts[1] : ""
    return (negative ? "-" : "") + grouped + fraction
}

/// Value with an SI suffix chosen from its magnitude: `1234` → `1.23K` (2 decimals),
/// values below 1000 plain.
func siText(_ value: Double, decimals: Int) -> String {
    let suffixes: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
    for (scale, suffix) in suffixes where abs(value) >= scale {
        return fixedText(value / scale, decimals: decimals) + suffix
    }
    return fixedText(value, decimals: decimals)
}
