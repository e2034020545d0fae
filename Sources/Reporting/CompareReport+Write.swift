import Foundation
import ToolkitSupport

/// The `--json` form of a report: the table with raw per-seed values and flags, without the
/// curve points.
public struct CompareSummary: Codable, Equatable, Sendable {
    public var title: String
    public var notes: [String]
    public var columns: [ReportColumn]
    public var variants: [VariantRow]
    public var runs: [RunSummary]
    public var significanceRule: String

    enum CodingKeys: String, CodingKey {
        case title, notes, columns, variants, runs
        case significanceRule = "significance_rule"
    }
}

extension CompareReport {
    /// The files `write(to:)` creates, in writing order.
    public static let fileNames = ["loss.svg", "report.html", "report.md", "report.json"]

    public var summary: CompareSummary {
        CompareSummary(
            title: title, notes: notes, columns: columns, variants: rows, runs: runs,
            significanceRule: Self.significanceRule)
    }

    /// The summary as JSON with sorted keys: one line, or indented with `pretty`. Non-finite
    /// numbers are written as the strings "nan", "inf", "-inf".
    public func summaryJSON(pretty: Bool = false) throws -> String {
        let encoder = reportEncoder(pretty: pretty)
        return String(decoding: try encoder.encode(summary), as: UTF8.self)
    }

    /// Writes `loss.svg`, `report.html`, `report.md` and `report.json` into `dir` (created if
    /// needed), each atomically. Returns the paths written.
    @discardableResult
    public func write(to dir: String) throws -> [String] {
        let base = URL(fileURLWithPath: dir)
        let contents = [lossSVG(), html(), markdown(), try summaryJSON(pretty: true) + "\n"]
        return try zip(Self.fileNames, contents).map { name, text in
            let path = base.appendingPathComponent(name).path
            try AtomicFile.write(text, to: path)
            return path
        }
    }

    /// The default output folder, `Checkpoints/compare-<names>-<UTC yyyyMMdd-HHmmss>`, with the
    /// names joined by `-vs-` and every character outside `[A-Za-z0-9._-]` replaced by `_`.
    public static func defaultDirectory(
        variantNames: [String], date: Date, root: String = "Checkpoints"
    ) -> String {
        let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
        let names = variantNames.map { String($0.map { allowed.contains($0) ? $0 : "_" }) }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = TimeZone(identifier: "UTC") ?? calendar.timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute, .second], from: date)
        let stamp = String(
            format: "%04d%02d%02d-%02d%02d%02d", c.year ?? 0, c.month ?? 0, c.day ?? 0,
            c.hour ?? 0, c.minute ?? 0, c.second ?? 0)
        return root + "/compare-" + names.joined(separator: "-vs-") + "-" + stamp
    }
}
