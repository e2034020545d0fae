import Foundation

extension CompareReport {
    /// The loss chart as a standalone SVG document (`loss.svg`).
    public func lossSVG() -> String {
        LossChart(title: title, curves: curves).svg(standalone: true)
    }

    /// `report.html`: one self-contained page (inline CSS and SVG, no scripts, no external
    /// resources) with the comparison table, the loss chart, the rules and the per-run table.
    public func html() -> String {
        var out = Self.pageStart(title: title) + "<ul class=\"notes\">\n"
        for note in notes + [seedsLine] { out += "<li>\(escapeXML(note))</li>\n" }
        out += "</ul>\n<div class=\"scroll\"><table class=\"summary\">\n<thead><tr><th>variant</th>"
        for column in columns { out += "<th>\(escapeXML(column.title))</th>" }
        out += "</tr></thead>\n<tbody>\n"
        for row in rows {
            out += "<tr><th scope=\"row\">\(escapeXML(row.name))</th>"
            for cell in row.cells {
                // "mean ± sd" keeps its text; the "± sd" part goes on a second, smaller line.
                let parts = cell.text.components(separatedBy: " ± ")
                var t = escapeXML(parts[0])
                let ns = cell.notSignificant ? " <span class=\"ns\">n.s.</span>" : ""
                if parts.count == 2 {
                    t += "<span class=\"sd\"> ± \(escapeXML(parts[1]))\(ns)</span>"
                } else {
                    t += ns
                }
                if cell.isBest { t = "<strong>\(t)</strong>" }
                out += "<td class=\"\(cell.isBest ? "best" : "")\">\(t)</td>"
            }
            out += "</tr>\n"
        }
        out += "</tbody>\n</table></div>\n<div class=\"rules\">\n"
        for rule in [Self.bestRule, Self.significanceRule, Self.valueRule] {
            out += "<p>\(escapeXML(rule))</p>\n"
        }
        out += "</div>\n<figure>\n"
        out += LossChart(title: title, curves: curves).svg(standalone: false)
        out += "</figure>\n<h2>Runs</h2>\n<div class=\"scroll\"><table class=\"runs\">\n"
        out += "<thead><tr><th>variant</th><th>seed</th>"
        for column in runColumns { out += "<th>\(escapeXML(column.title))</th>" }
        out += "<th>metrics</th></tr></thead>\n<tbody>\n"
        for run in runs {
            out += "<tr><th scope=\"row\">\(escapeXML(run.variant))</th><td>\(run.seed)</td>"
            for c in runColumns {
                out += "<td>\(escapeXML(c.value(in: run).map(c.style.format) ?? "—"))</td>"
            }
            out += "<td class=\"path\">\(escapeXML(run.metricsPath))</td></tr>\n"
        }
        out += "</tbody>\n</table></div>\n</main>\n</body>\n</html>\n"
        return out
    }

    /// A self-contained page's start, up to its heading: the report's look, no external resources.
    static func pageStart(title: String) -> String {
        """
        <!DOCTYPE html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(escapeXML(title))</title>
        <style>
        \(css)
        </style>
        </head>
        <body>
        <main>
        <h1>\(escapeXML(title))</h1>

        """
    }

    static let css = """
        body { margin: 0; background: #f6f7f9; color: #1d1f23;
          font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; }
        main { max-width: 1240px; margin: 0 auto; padding: 24px 28px 48px; background: #ffffff; }
        h1 { font-size: 24px; margin: 0 0 8px; }
        h2 { font-size: 18px; margin: 28px 0 8px; }
        ul.notes { margin: 0 0 16px; padding-left: 20px; color: #444444; }
        .scroll { overflow-x: auto; }
        table { border-collapse: collapse; font-variant-numeric: tabular-nums; }
        th, td { padding: 5px 9px; border-bottom: 1px solid #e1e4e8; white-space: nowrap; }
        thead th { background: #f0f2f5; font-weight: 600; text-align: right; white-space: normal;
          vertical-align: bottom; }
        table.summary { font-size: 14px; }
        table.summary th, table.summary td { padding: 5px 7px; }
        thead th:first-child, tbody th { text-align: left; }
        td { text-align: right; }
        td.best { background: #eaf5ea; }
        td.path { text-align: left; color: #555555; font-size: 13px; }
        table.summary td, table.summary tbody th { vertical-align: top; }
        span.sd { display: block; font-size: 12px; color: #555555; }
        span.ns { color: #8a5a00; font-size: 12px; font-weight: 600; }
        .rules p { margin: 6px 0; color: #444444; font-size: 13px; }
        figure { margin: 20px 0 0; }
        figure svg { max-width: 100%; height: auto; border: 1px solid #e1e4e8; }
        """
}
