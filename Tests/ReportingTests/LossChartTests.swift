import Foundation
import Testing
import _TestSupport

@testable import Reporting

@Suite struct LossChartTests {
    @Test func svgIsWellFormedWithCurvesBandsAxesAndLegend() throws {
        let report = try CompareReport.build(variants: [
            try syntheticVariant("gpt2", seeds: [0, 1, 2], floor: 3.2),
            try syntheticVariant("rope", seeds: [0, 1, 2], floor: 3.0),
            try syntheticVariant("alibi", seeds: [0, 1, 2], floor: 3.1),
        ])
        let svgText = report.lossSVG()
        #expect(svgText.hasPrefix("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg "))
        let svg = try XMLCollector.parse(svgText)
        let names = ["gpt2", "rope", "alibi"]
        for cls in ["train-line", "val-line", "train-band", "val-band"] {
            #expect(
                svg.all(cls == "train-band" || cls == "val-band" ? "polygon" : "path", class: cls)
                    .map { $0["data-variant"] } == names, "\(cls)")
        }
        // One distinct colour per variant.
        let colours = svg.all("path", class: "train-line").compactMap { $0["stroke"] }
        #expect(Set(colours).count == 3)
        // 12 eval points per variant (every 10 of 120 steps), each with a marker.
        #expect(svg.all("circle", class: "val-marker").count == 36)
        // The train line has one vertex per logged step (120 ≤ 600: no downsampling).
        let d = try #require(svg.all("path", class: "train-line").first?["d"])
        #expect(d.split(separator: " ").count == 120)
        // Ticks with labels on both axes, axis titles, a title and a legend entry per variant.
        let xTicks = svg.all("text", class: "x-tick").count
        let yTicks = svg.all("text", class: "y-tick").count
        #expect(xTicks >= 4 && yTicks >= 4)
        #expect(svg.all("text", class: "legend-name").count == 3)
        #expect(svg.text.contains("tokens seen") && svg.text.contains("loss"))
        #expect(svg.text.contains("Compare: gpt2 vs rope vs alibi"))
        #expect(svg.text.contains("±1 sd over seeds"))
        // 120 steps × 2048 tokens = 245,760; the x axis ends 2% further, at 250,675: ticks every 50K.
        #expect(svg.all("text", class: "x-tick").count == 6 && svg.text.contains("250K"))
        // The inline copy in report.html is the same chart without the XML declaration.
        let inline = svgText.replacingOccurrences(
            of: "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", with: "")
        #expect(report.html().contains(inline))
    }

    @Test func everyCurvePointLiesInsideThePlotArea() throws {
        let report = try CompareReport.build(variants: [
            try syntheticVariant("a", seeds: [0, 1], floor: 2),
            try syntheticVariant("b", seeds: [3], floor: 5),
        ])
        let svg = try XMLCollector.parse(report.lossSVG())
        for path in svg.all("path", class: "train-line") + svg.all("path", class: "val-line") {
            for vertex in (path["d"] ?? "").split(separator: " ") {
                let xy = vertex.dropFirst().split(separator: ",").compactMap { Double($0) }
                #expect(xy.count == 2)
                #expect(xy[0] >= 80 && xy[0] <= 730 && xy[1] <= 480, "\(vertex)")
                // Only the steep start (first 10% of tokens, x < 80 + 0.1 × 650 / 1.02) may
                // rise above the plot; it is clipped.
                if xy[0] >= 144 { #expect(xy[1] >= 70, "\(vertex)") }
            }
        }
        #expect(svg.text.contains("early points above the axis are cut off"))
        // Only variant "a" (two seeds) has bands.
        #expect(svg.all("polygon", class: "train-band").map { $0["data-variant"] } == ["a"])
    }

    @Test func axisTicksAreNiceAndCoverTheData() {
        let a = Axis(min: 2.87, max: 7.31)
        #expect(a.step == 1)
        #expect(a.ticks == [3, 4, 5, 6, 7])
        #expect(a.label(3) == "3")
        let padded = Axis(min: 2.87, max: 7.31, padding: 0.04)
        #expect(abs(padded.low - (2.87 - 0.1776)) < Tolerance.double && padded.ticks == [3, 4, 5, 6, 7])
        let b = Axis(min: 0, max: 1_310_720)
        #expect(b.step == 200_000)
        #expect(b.ticks.first == 0 && b.ticks.last == 1_200_000 && b.ticks.count == 7)
        #expect(
            b.siLabel(200_000) == "0.2M" && b.siLabel(0) == "0" && b.siLabel(1_200_000) == "1.2M")
        let flat = Axis(min: 4, max: 4)
        #expect(flat.low < 4 && flat.high > 4)
        #expect(Axis(min: 3.42, max: 3.58).label(3.45) == "3.45")
    }

    @Test func longCurvesAreDownsampledForDrawingOnly() {
        let points = (0..<1000).map { CurvePoint(tokens: Double($0), mean: Double($0 % 2), sd: 1) }
        let drawn = LossChart.downsample(points, to: 300)
        #expect(drawn.count == 250)  // groups of 4
        #expect(drawn[0] == CurvePoint(tokens: 1.5, mean: 0.5, sd: 1))
        #expect(LossChart.downsample(Array(points.prefix(10)), to: 300).count == 10)
    }

    @Test func emptyAndNonFiniteCurvesStillRender() throws {
        let empty = LossChart(title: "t", curves: [VariantCurves(name: "x", train: [], val: [])])
        let svg = try XMLCollector.parse(empty.svg(standalone: true))
        #expect(svg.text.contains("no data"))
        let bad = LossChart(
            title: "t",
            curves: [
                VariantCurves(
                    name: "x",
                    train: [
                        CurvePoint(tokens: 1, mean: 5, sd: nil),
                        CurvePoint(tokens: 2, mean: .nan, sd: nil),
                        CurvePoint(tokens: 3, mean: 4, sd: nil),
                    ], val: [])
            ])
        let parsed = try XMLCollector.parse(bad.svg(standalone: true))
        #expect(parsed.all("path", class: "train-line").first?["d"]?.contains("nan") == false)
    }
}
