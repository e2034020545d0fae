import Foundation
import ToolkitSupport

/// Plots of one or several training runs (`toolkit plot`): train and validation loss against
/// tokens seen, and the learning rate, in the compare report's look: `loss.svg`, `lr.svg` and one
/// self-contained `plot.html` (inline CSS and SVG, no scripts) with a table of each run's last values.
public struct RunPlot {
    public var title: String
    /// Each run's name and metrics.
    public var runs: [(name: String, log: MetricsLog)]

    public init(title: String, runs: [(name: String, log: MetricsLog)]) {
        self.title = title
        self.runs = runs
    }

    var lossCurves: [VariantCurves] { runs.map { VariantCurves.aligned(name: $0.name, logs: [$0.log]) } }

    var lrCurves: [VariantCurves] {
        runs.map { run in
            VariantCurves(name: run.name,
                          train: run.log.steps.compactMap { s in s.lr.map { CurvePoint(tokens: Double(s.tokens), mean: $0, sd: nil) } },
                          val: [])
        }
    }

    public func lossSVG() -> String { LossChart(title: title, curves: lossCurves).svg(standalone: true) }

    public func learningRateSVG() -> String {
        LossChart(title: title + ": learning rate", curves: lrCurves, quantity: .learningRate).svg(standalone: true)
    }

    public func html() -> String {
        var out = CompareReport.pageStart(title: title) + """
            <div class="scroll"><table class="summary">
            <thead><tr><th>run</th><th>steps</th><th>tokens</th><th>last train loss</th><th>last val loss</th><th>best val loss</th><th>last val bpb</th></tr></thead>
            <tbody>

            """
        func f(_ v: Double?) -> String { v.map { String(format: "%.4f", $0) } ?? "—" }
        for run in runs {
            let log = run.log
            out += "<tr><th scope=\"row\">\(escapeXML(run.name))</th><td>\(log.steps.last?.step ?? 0)</td>"
            out += "<td>\(log.tokensSeen.map(String.init) ?? "—")</td><td>\(f(log.finalTrainLoss))</td>"
            out += "<td>\(f(log.finalEval?.valLoss))</td><td>\(f(log.evals.map(\.valLoss).min()))</td>"
            out += "<td>\(f(log.finalEval?.valBitsPerByte))</td></tr>\n"
        }
        out += "</tbody>\n</table></div>\n<figure>\n"
        out += LossChart(title: title, curves: lossCurves).svg(standalone: false)
        out += "</figure>\n<figure>\n"
        out += LossChart(title: title + ": learning rate", curves: lrCurves, quantity: .learningRate).svg(standalone: false)
        out += "</figure>\n</main>\n</body>\n</html>\n"
        return out
    }

    /// Writes `loss.svg`, `lr.svg` and `plot.html` into `dir` (atomically); returns their paths.
    public func write(to dir: String) throws -> [String] {
        try AtomicFile.ensureDirectory(dir)
        var paths: [String] = []
        for (name, text) in [("loss.svg", lossSVG()), ("lr.svg", learningRateSVG()), ("plot.html", html())] {
            let path = (dir as NSString).appendingPathComponent(name)
            try AtomicFile.write(Data(text.utf8), to: path)
            paths.append(path)
        }
        return paths
    }
}
