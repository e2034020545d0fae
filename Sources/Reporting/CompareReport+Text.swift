import Foundation

/// The columns of the per-run table (one row per variant and seed, no aggregation).
extension CompareReport {
    /// The columns of the per-run table (one row per variant and seed, no aggregation).
    var runColumns: [ReportColumn] {
        [.finalTrainLoss, .valLoss, .perplexity, .bitsPerByte] + columns.filter { ReportColumn.whenPresent.contains($0) }
            + [.tokensSeen, .tokensPerSecond, .wallSeconds]
    }

    /// The seeds line: `Seeds: 3 per variant (0, 1, 2)` or one entry per variant.
    var seedsLine: String {
        let lists = rows.map { $0.seeds.map(String.init).joined(separator: ", ") }
        if Set(lists).count == 1, let first = rows.first {
            let k = first.seeds.count
            return "Seeds: \(k) per variant (\(lists[0]))"
        }
        return "Seeds: "
            + zip(rows, lists).map { "\($0.name): \($0.seeds.count) (\($1))" }
            .joined(separator: "; ")
    }

    /// `report.md`: title, notes, the comparison table, the rules, the chart link and the
    /// per-run table.
    public func markdown() -> String {
        var out = "# \(markdownEscape(title))\n\n"
        for note in notes + [seedsLine] { out += "- \(markdownEscape(note))\n" }
        out += "\n| variant | "
        out += columns.map(\.title).joined(separator: " | ") + " |\n"
        out += "| :--- |" + String(repeating: " ---: |", count: columns.count) + "\n"
        for row in rows {
            let cells = row.cells.map { cell -> String in
                var t = cell.text
                if cell.isBest { t = "**\(t)**" }
                if cell.notSignificant { t += " (n.s.)" }
                return t
            }
            out += "| \(markdownEscape(row.name)) | " + cells.joined(separator: " | ") + " |\n"
        }
        out += "\n\(Self.bestRule)\n\n\(Self.significanceRule)\n\n\(Self.valueRule)\n\n"
        out += "![Loss curves](loss.svg)\n\n## Runs\n\n| variant | seed | "
        out += runColumns.map(\.title).joined(separator: " | ") + " | metrics |\n"
        out +=
            "| :--- | ---: |" + String(repeating: " ---: |", count: runColumns.count) + " :--- |\n"
        for run in runs {
            let cells = runColumns.map { c in c.value(in: run).map(c.style.format) ?? "—" }
            out += "| \(markdownEscape(run.variant)) | \(run.seed) | "
            out += cells.joined(separator: " | ") + " | \(markdownEscape(run.metricsPath)) |\n"
        }
        return out
    }

    /// A plain-text table for the terminal, one row per metric and one column per variant
    /// (it stays narrow for a handful of variants). `*` marks the best value, `n.s.` a value
    /// within seed spread of the best.
    public func terminalTable() -> String {
        var table: [[String]] = [["metric"] + rows.map(\.name)]
        for (i, column) in columns.enumerated() {
            table.append(
                [column.title]
                    + rows.map { row in
                        let cell = row.cells[i]
                        return cell.text + (cell.isBest ? " *" : "")
                            + (cell.notSignificant ? " n.s." : "")
                    })
        }
        let widths = (0..<table[0].count).map { c in table.map { $0[c].count }.max() ?? 0 }
        func pad(_ s: String, _ w: Int, left: Bool) -> String {
            let fill = String(repeating: " ", count: max(0, w - s.count))
            return left ? s + fill : fill + s
        }
        var lines = table.map { cells in
            cells.enumerated().map { c, s in pad(s, widths[c], left: c == 0) }
                .joined(separator: "  ")
        }
        lines.insert(String(repeating: "-", count: lines[0].count), at: 1)
        lines.append("")
        lines.append(seedsLine + ". * = best; n.s. = |Δmean| ≤ sd + sd_best (within seed spread).")
        return lines.joined(separator: "\n") + "\n"
    }
}

/// Escapes Markdown punctuation (and turns newlines into spaces) so names cannot break the
/// table or add formatting.
func markdownEscape(_ s: String) -> String {
    var out = ""
    for c in s {
        switch c {
        case "\\", "|", "*", "_", "`", "[", "]", "<", ">", "#": out += "\\\(c)"
        case "\n", "\r": out += " "
        default: out.append(c)
        }
    }
    return out
}
