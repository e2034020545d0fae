import Foundation

/// The loss chart: train (solid) and val (dashed, with markers) loss against tokens seen, one
/// colour per variant, a shaded ±1 sd band per curve when a variant has two or more seeds.
///
/// Train curves with more than `maxTrainPoints` points are drawn from the means of consecutive
/// groups of points (the chart only; the table always uses the exact logged values).
struct LossChart {
    var title: String
    var curves: [VariantCurves]
    var width = 960.0
    var height = 540.0
    var maxTrainPoints = 600
    /// What the curves are: losses (train solid, validation dashed), or one learning-rate curve per run.
    var quantity = Quantity.loss

    enum Quantity {
        case loss, learningRate
    }
    /// Val points get circle markers only up to this many per curve.
    static let maxMarkers = 30

    static let palette = [
        "#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
        "#8c564b", "#e377c2", "#17becf", "#7f7f7f", "#bcbd22",
    ]

    static func colour(_ index: Int) -> String { palette[index % palette.count] }

    // Plot area.
    private var left: Double { 80 }
    private var right: Double { width - 230 }
    private var top: Double { 70 }
    private var bottom: Double { height - 60 }

    /// The chart as SVG text; `standalone` adds the XML declaration (for `loss.svg`).
    func svg(standalone: Bool) -> String {
        let train = curves.map { Self.downsample(Self.finite($0.train), to: maxTrainPoints) }
        let val = curves.map { Self.finite($0.val) }
        let all = (train + val).flatMap { $0 }
        let hasBands = all.contains { $0.sd != nil }
        var out = standalone ? "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n" : ""
        out += """
            <svg xmlns="http://www.w3.org/2000/svg" width="\(n(width))" height="\(n(height))" \
            viewBox="0 0 \(n(width)) \(n(height))" font-family="sans-serif" font-size="13" \
            role="img" aria-label="\(escapeXML(title))">

            """
        out += "<rect width=\"100%\" height=\"100%\" fill=\"#ffffff\"/>\n"
        out += text(width / 2, 28, title, anchor: "middle", size: 18, weight: "bold")

        let xs = all.map(\.tokens)
        let ys = all.flatMap { p in [p.mean - (p.sd ?? 0), p.mean + (p.sd ?? 0)] }
        guard let xMax = xs.max(), let yMin = ys.min(), let yMax = ys.max() else {
            out += text((left + right) / 2, (top + bottom) / 2, "no data", anchor: "middle")
            return out + "</svg>\n"
        }
        // The y axis covers the points after the first 10% of tokens (and everything below
        // them), so the steep start does not flatten the part where variants differ.
        let late = all.filter { $0.tokens >= 0.1 * xMax }.map { $0.mean + ($0.sd ?? 0) }
        let yTop = quantity == .learningRate ? yMax : late.max() ?? yMax
        let xAxis = Axis(min: 0, max: max(xMax, 0) * 1.02)
        let yAxis = Axis(min: quantity == .learningRate ? 0 : yMin, max: yTop, padding: 0.04)
        let subtitle =
            quantity == .learningRate
            ? "learning rate against tokens seen"
            : "train loss (solid) and validation loss (dashed) against tokens seen"
                + (hasBands ? "; shaded band = ±1 sd over seeds" : "")
                + (yTop < yMax ? "; early points above the axis are cut off" : "")
        out += text(width / 2, 50, subtitle, anchor: "middle", size: 13, fill: "#555555")
        func px(_ t: Double) -> Double {
            left + (t - xAxis.low) / (xAxis.high - xAxis.low) * (right - left)
        }
        func py(_ v: Double) -> Double {
            bottom - (v - yAxis.low) / (yAxis.high - yAxis.low) * (bottom - top)
        }

        out += axes(xAxis, yAxis, px: px, py: py)
        out += "<clipPath id=\"plot-area\"><rect x=\"\(n(left))\" y=\"\(n(top))\" "
        out += "width=\"\(n(right - left))\" height=\"\(n(bottom - top))\"/></clipPath>\n"
        out += "<g clip-path=\"url(#plot-area)\">\n"
        for (i, curve) in curves.enumerated() {
            let c = Self.colour(i)
            let name = escapeXML(curve.name)
            for (kind, points) in [("train", train[i]), ("val", val[i])]
            where points.contains(where: { $0.sd != nil }) {
                let upper = points.map { "\(n(px($0.tokens))),\(n(py($0.mean + ($0.sd ?? 0))))" }
                let lower = points.reversed().map {
                    "\(n(px($0.tokens))),\(n(py($0.mean - ($0.sd ?? 0))))"
                }
                out += "<polygon class=\"\(kind)-band\" data-variant=\"\(name)\" fill=\"\(c)\" "
                out += "fill-opacity=\"\(kind == "train" ? "0.15" : "0.22")\" stroke=\"none\" "
                out += "points=\"\((upper + lower).joined(separator: " "))\"/>\n"
            }
        }
        for (i, curve) in curves.enumerated() {
            let c = Self.colour(i)
            let name = escapeXML(curve.name)
            out += line(train[i], "train-line", name, c, px: px, py: py, dash: nil, widthPx: 1.6)
            out += line(val[i], "val-line", name, c, px: px, py: py, dash: "7 4", widthPx: 2.2)
            for p in val[i] where val[i].count <= Self.maxMarkers {
                out +=
                    "<circle class=\"val-marker\" data-variant=\"\(name)\" cx=\"\(n(px(p.tokens)))\" "
                out +=
                    "cy=\"\(n(py(p.mean)))\" r=\"3.2\" fill=\"#ffffff\" stroke=\"\(c)\" stroke-width=\"1.8\"/>\n"
            }
            if train[i].count == 1, let p = train[i].first {
                out +=
                    "<circle class=\"train-marker\" data-variant=\"\(name)\" cx=\"\(n(px(p.tokens)))\" "
                out += "cy=\"\(n(py(p.mean)))\" r=\"3\" fill=\"\(c)\"/>\n"
            }
        }
        out += "</g>\n"
        out += legend(hasBands: hasBands)
        return out + "</svg>\n"
    }

    private func line(
        _ points: [CurvePoint], _ cls: String, _ name: String, _ colour: String,
        px: (Double) -> Double, py: (Double) -> Double, dash: String?, widthPx: Double
    ) -> String {
        guard !points.isEmpty else { return "" }
        let d = points.enumerated().map { i, p in
            "\(i == 0 ? "M" : "L")\(n(px(p.tokens))),\(n(py(p.mean)))"
        }.joined(separator: " ")
        let dashAttr = dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
        return "<path class=\"\(cls)\" data-variant=\"\(name)\" d=\"\(d)\" fill=\"none\" "
            + "stroke=\"\(colour)\" stroke-width=\"\(n(widthPx))\"\(dashAttr) "
            + "stroke-linejoin=\"round\"/>\n"
    }

    private func axes(
        _ x: Axis, _ y: Axis, px: (Double) -> Double, py: (Double) -> Double
    ) -> String {
        var out = "<g class=\"axes\" stroke=\"#222222\" stroke-width=\"1\">\n"
        for t in y.ticks {
            out +=
                "<line x1=\"\(n(left))\" y1=\"\(n(py(t)))\" x2=\"\(n(right))\" y2=\"\(n(py(t)))\" stroke=\"#e4e4e4\"/>\n"
        }
        for t in x.ticks {
            out +=
                "<line x1=\"\(n(px(t)))\" y1=\"\(n(top))\" x2=\"\(n(px(t)))\" y2=\"\(n(bottom))\" stroke=\"#e4e4e4\"/>\n"
        }
        out +=
            "<line x1=\"\(n(left))\" y1=\"\(n(bottom))\" x2=\"\(n(right))\" y2=\"\(n(bottom))\"/>\n"
        out += "<line x1=\"\(n(left))\" y1=\"\(n(top))\" x2=\"\(n(left))\" y2=\"\(n(bottom))\"/>\n"
        for t in x.ticks {
            out +=
                "<line x1=\"\(n(px(t)))\" y1=\"\(n(bottom))\" x2=\"\(n(px(t)))\" y2=\"\(n(bottom + 5))\"/>\n"
        }
        for t in y.ticks {
            out +=
                "<line x1=\"\(n(left - 5))\" y1=\"\(n(py(t)))\" x2=\"\(n(left))\" y2=\"\(n(py(t)))\"/>\n"
        }
        out += "</g>\n"
        for t in x.ticks {
            out += text(px(t), bottom + 20, x.siLabel(t), anchor: "middle", cls: "x-tick")
        }
        for t in y.ticks {
            out += text(left - 9, py(t) + 4, y.label(t), anchor: "end", cls: "y-tick")
        }
        out += text((left + right) / 2, bottom + 46, "tokens seen", anchor: "middle", size: 14)
        out +=
            "<text x=\"22\" y=\"\(n((top + bottom) / 2))\" text-anchor=\"middle\" font-size=\"14\" "
        out += "transform=\"rotate(-90 22 \(n((top + bottom) / 2)))\">\(quantity == .learningRate ? "learning rate" : "loss")</text>\n"
        return out
    }

    private func legend(hasBands: Bool) -> String {
        let x = right + 24
        var y = top + 8
        var out = "<g class=\"legend\">\n"
        for (i, curve) in curves.enumerated() {
            out +=
                "<rect x=\"\(n(x))\" y=\"\(n(y - 9))\" width=\"22\" height=\"12\" fill=\"\(Self.colour(i))\"/>\n"
            out += text(x + 30, y + 2, curve.name, anchor: "start", cls: "legend-name")
            y += 22
        }
        y += 10
        let keys: [(String, String?)] = quantity == .learningRate ? [] : [("train", nil), ("val", "7 4")]
        for (label, dash) in keys {
            let dashAttr = dash.map { " stroke-dasharray=\"\($0)\"" } ?? ""
            out += "<line x1=\"\(n(x))\" y1=\"\(n(y - 3))\" x2=\"\(n(x + 22))\" y2=\"\(n(y - 3))\" "
            out += "stroke=\"#333333\" stroke-width=\"2\"\(dashAttr)/>\n"
            out += text(x + 30, y + 2, label + " loss", anchor: "start")
            y += 22
        }
        if hasBands {
            out +=
                "<rect x=\"\(n(x))\" y=\"\(n(y - 9))\" width=\"22\" height=\"12\" fill=\"#333333\" fill-opacity=\"0.2\"/>\n"
            out += text(x + 30, y + 2, "±1 sd over seeds", anchor: "start")
        }
        return out + "</g>\n"
    }

    private func text(
        _ x: Double, _ y: Double, _ s: String, anchor: String, size: Double? = nil,
        weight: String? = nil, fill: String? = nil, cls: String? = nil
    ) -> String {
        var attrs = "x=\"\(n(x))\" y=\"\(n(y))\" text-anchor=\"\(anchor)\""
        if let size { attrs += " font-size=\"\(n(size))\"" }
        if let weight { attrs += " font-weight=\"\(weight)\"" }
        if let fill { attrs += " fill=\"\(fill)\"" }
        if let cls { attrs += " class=\"\(cls)\"" }
        return "<text \(attrs)>\(escapeXML(s))</text>\n"
    }

    /// Coordinates with two decimals (deterministic text).
    private func n(_ v: Double) -> String {
        let s = fixedText(v, decimals: 2)
        if s.hasSuffix(".00") { return String(s.dropLast(3)) }
        return s
    }

    /// The points that can be drawn (a diverged run may log non-finite losses).
    static func finite(_ points: [CurvePoint]) -> [CurvePoint] {
        points.filter { $0.tokens.isFinite && $0.mean.isFinite && ($0.sd?.isFinite ?? true) }
    }

    /// Means of consecutive groups so that at most `limit` points remain.
    static func downsample(_ points: [CurvePoint], to limit: Int) -> [CurvePoint] {
        guard points.count > limit, limit > 0 else { return points }
        let group = (points.count + limit - 1) / limit
        return stride(from: 0, to: points.count, by: group).map { start in
            let chunk = points[start..<min(start + group, points.count)]
            let k = Double(chunk.count)
            let sds = chunk.compactMap(\.sd)
            return CurvePoint(
                tokens: chunk.reduce(0) { $0 + $1.tokens } / k,
                mean: chunk.reduce(0) { $0 + $1.mean } / k,
                sd: sds.count == chunk.count ? sds.reduce(0, +) / k : nil)
        }
    }
}

/// A linear axis with "nice" ticks (1, 2 or 5 × 10^k apart) that cover the data range.
struct Axis {
    var low: Double
    var high: Double
    var step: Double

    /// An axis over `[min, max]` widened by `padding` × the range on both sides, with ticks
    /// about `(max − min) / (targetTicks − 1)` apart that lie inside it.
    init(min: Double, max: Double, padding: Double = 0, targetTicks: Int = 6) {
        var lo = min
        var hi = max
        if !(hi - lo).isFinite {
            lo = 0
            hi = 1
        } else if !(hi > lo) {
            let pad = Swift.max(abs(lo) * 0.05, 0.5)
            lo -= pad
            hi += pad
        }
        step = Self.nice((hi - lo) / Double(targetTicks - 1))
        low = lo - padding * (hi - lo)
        high = hi + padding * (hi - lo)
    }

    var ticks: [Double] {
        let first = (low / step - 1e-9).rounded(.up)
        let last = (high / step + 1e-9).rounded(.down)
        guard abs(first) < 1e12, abs(last) < 1e12, first <= last else { return [low, high] }
        return (Int(first)...Int(last)).map { Double($0) * step }
    }

    private var decimals: Int { Swift.max(0, -Int(log10(step).rounded(.down))) }

    func label(_ v: Double) -> String { fixedText(v, decimals: decimals) }

    /// Tick label with one SI suffix chosen for the whole axis: `0`, `0.5M`, `1.0M`.
    func siLabel(_ v: Double) -> String {
        let top = Swift.max(abs(low), abs(high))
        let scales: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "K")]
        guard let (scale, suffix) = scales.first(where: { top >= $0.0 }) else { return label(v) }
        if v == 0 { return "0" }
        let d = Swift.max(0, -Int(log10(step / scale).rounded(.down)))
        return fixedText(v / scale, decimals: d) + suffix
    }

    /// The 1, 2 or 5 × 10^k nearest to `x`.
    static func nice(_ x: Double) -> Double {
        guard x > 0, x.isFinite else { return 1 }
        let exponent = log10(x).rounded(.down)
        let fraction = x / pow(10, exponent)
        let niceFraction: Double = fraction < 1.5 ? 1 : fraction < 3 ? 2 : fraction < 7 ? 5 : 10
        return niceFraction * pow(10, exponent)
    }
}

/// Escapes text for XML and HTML content and attribute values.
func escapeXML(_ s: String) -> String {
    var out = ""
    out.reserveCapacity(s.count)
    for c in s {
        switch c {
        case "&": out += "&amp;"
        case "<": out += "&lt;"
        case ">": out += "&gt;"
        case "\"": out += "&quot;"
        case "'": out += "&#39;"
        default: out.append(c)
        }
    }
    return out
}
