import Foundation
import ToolkitSupport

/// One cell of the comparison table.
public struct ReportCell: Codable, Equatable, Sendable {
    public var column: ReportColumn
    /// Over the variant's seeds; nil when some seed lacks the value (shown as "—").
    public var aggregate: Aggregate?
    /// The printed value: `mean`, or `mean ± sd` with two or more seeds.
    public var text: String
    /// Best printed mean of a judged column (ties are all best; needs two variants with values,
    /// and nothing is marked when every variant prints the same mean).
    public var isBest: Bool
    /// Within the seed-to-seed spread of the best variant (`CompareReport.significanceRule`).
    public var notSignificant: Bool

    enum CodingKeys: String, CodingKey {
        case column, aggregate, text
        case isBest = "best"
        case notSignificant = "not_significant"
    }
}

/// One variant's row of the comparison table.
public struct VariantRow: Codable, Equatable, Sendable {
    public var name: String
    /// The seeds, ascending; per-seed values in `Aggregate.values` follow this order.
    public var seeds: [Int]
    /// One cell per column of the report (`CompareReport.columns`), in that order.
    public var cells: [ReportCell]

    public func cell(_ column: ReportColumn) -> ReportCell {
        cells.first { $0.column == column } ?? ReportCell(column: column, aggregate: nil, text: "—", isBest: false, notSignificant: false)
    }
}

/// The comparison of recipe variants: table rows, averaged loss curves and the per-run values.
public struct CompareReport: Codable, Equatable, Sendable {
    public var title: String
    /// Free-form lines shown under the title (command line, data, budget); keep them free of
    /// timestamps so reruns give the same files.
    public var notes: [String]
    public var rows: [VariantRow]
    public var curves: [VariantCurves]

    /// The table's columns: every `ReportColumn` but the task ones when no run scored a task.
    public var columns: [ReportColumn] {
        rows.first?.cells.map(\.column) ?? ReportColumn.allCases.filter { !ReportColumn.whenPresent.contains($0) }
    }
    /// Every run, by variant (input order) then seed.
    public var runs: [RunSummary]

    /// The rule behind "n.s.", as printed in the reports.
    public static let significanceRule =
        "n.s. = not significant: with 2 or more seeds on both sides, a variant whose printed mean "
        + "differs from the best printed mean by no more than the sum of the two printed standard "
        + "deviations (|mean − mean_best| ≤ sd + sd_best) is within seed-to-seed spread of the best."

    /// The rule behind the bold values.
    public static let bestRule =
        "Bold = best in its column on the printed mean: lowest for losses, perplexity, "
        + "bits-per-byte and wall time, highest for tokens/s; ties are all bold, and a column where "
        + "every variant prints the same mean has no bold. Params, FLOPs/token and tokens "
        + "describe the setup and are not judged."

    /// What the numbers are and how they are rounded.
    public static let valueRule =
        "Values are mean ± sample standard deviation (n − 1) over seeds; one seed shows the value "
        + "alone. Train loss = loss of the last logged step; val loss and bpb = the last eval row; "
        + "ppl = exp(val loss) per seed, then averaged. Printed with 4 decimals (losses, bpb), "
        + "2 (ppl), 1 (wall seconds), whole numbers with comma groups (params, tokens, tokens/s) "
        + "and 2 decimals with an SI suffix (FLOPs/token)."

    /// Aggregates the variants' runs (sorted by seed) into a report.
    ///
    /// Throws when there are no variants, a variant has no runs or an empty or repeated name, a
    /// run's `variant` differs from its group's name, a seed repeats within a variant, or the
    /// seeds of one variant disagree on params, non-embedding params or FLOPs/token.
    public static func build(
        variants: [VariantRuns], title: String? = nil, notes: [String] = []
    ) throws -> CompareReport {
        guard !variants.isEmpty else { throw ToolkitError("compare report: no variants given") }
        var names = Set<String>()
        var sorted: [[RunRecord]] = []
        for variant in variants {
            guard !variant.name.isEmpty else {
                throw ToolkitError("compare report: a variant has an empty name")
            }
            guard names.insert(variant.name).inserted else {
                throw ToolkitError("compare report: variant \"\(variant.name)\" is given twice")
            }
            guard !variant.runs.isEmpty else {
                throw ToolkitError("compare report: variant \"\(variant.name)\" has no runs")
            }
            let runs = variant.runs.sorted { $0.summary.seed < $1.summary.seed }
            for (i, run) in runs.enumerated() {
                if run.summary.variant != variant.name {
                    throw ToolkitError(
                        "compare report: a run of variant \"\(variant.name)\" names variant "
                            + "\"\(run.summary.variant)\" (\(run.summary.metricsPath))")
                }
                if i > 0 && runs[i - 1].summary.seed == run.summary.seed {
                    throw ToolkitError(
                        "compare report: variant \"\(variant.name)\" has seed "
                            + "\(run.summary.seed) twice")
                }
            }
            for column in [ReportColumn.params, .nonEmbeddingParams, .flopsPerToken] {
                let values = runs.map { column.value(in: $0.summary) }
                if Set(values.map { $0.map(\.bitPattern) }).count > 1 {
                    throw ToolkitError(
                        "compare report: the seeds of variant \"\(variant.name)\" disagree on "
                            + "\"\(column.rawValue)\"")
                }
            }
            sorted.append(runs)
        }
        // Task accuracy columns appear when some run scored a task.
        let all = sorted.flatMap { $0.map(\.summary) }
        let columns = ReportColumn.allCases.filter { c in
            !ReportColumn.whenPresent.contains(c) || all.contains { c.value(in: $0) != nil }
        }
        var rows = zip(variants, sorted).map { variant, runs in
            VariantRow(
                name: variant.name, seeds: runs.map(\.summary.seed),
                cells: columns.map { cell($0, runs.map(\.summary)) })
        }
        for (index, column) in columns.enumerated() where column.better != .none {
            mark(column: index, style: column.style, better: column.better, rows: &rows)
        }
        return CompareReport(
            title: title ?? "Compare: " + variants.map(\.name).joined(separator: " vs "),
            notes: notes, rows: rows,
            curves: zip(variants, sorted).map { variant, runs in
                VariantCurves.aligned(name: variant.name, logs: runs.map(\.metrics))
            },
            runs: sorted.flatMap { $0.map(\.summary) })
    }

    private static func cell(_ column: ReportColumn, _ runs: [RunSummary]) -> ReportCell {
        let values = runs.compactMap { column.value(in: $0) }
        guard values.count == runs.count else {
            return ReportCell(
                column: column, aggregate: nil, text: "—", isBest: false, notSignificant: false)
        }
        let a = Aggregate(values)
        let style = column.style
        var text = style.format(a.mean)
        if column.isSetup && Set(values).count == 1 {
            text = style.format(values[0])
        } else if let sd = a.sd {
            text += " ± \(style.format(sd))"
        }
        return ReportCell(
            column: column, aggregate: a, text: text, isBest: false, notSignificant: false)
    }

    /// Marks the best printed mean of column `c` and the variants within spread of it.
    private static func mark(
        column c: Int, style: NumberStyle, better: Better, rows: inout [VariantRow]
    ) {
        let means: [(row: Int, units: Int)] = rows.indices.compactMap { i in
            guard let a = rows[i].cells[c].aggregate, let u = style.units(a.mean) else {
                return nil
            }
            return (i, u)
        }
        guard means.count >= 2 else { return }
        let target =
            better == .higher ? means.map(\.units).max() ?? 0 : means.map(\.units).min() ?? 0
        let best = means.filter { $0.units == target }.map(\.row)
        guard best.count < means.count else { return }  // all equal: nothing stands out
        for i in best { rows[i].cells[c].isBest = true }
        for (i, u) in means where !best.contains(i) {
            guard let sd = rows[i].cells[c].aggregate?.sd.flatMap(style.units) else { continue }
            rows[i].cells[c].notSignificant = best.contains { b in
                guard let bestSD = rows[b].cells[c].aggregate?.sd.flatMap(style.units) else {
                    return false
                }
                return abs(u - target) <= sd + bestSD
            }
        }
    }
}
