import Foundation
import Testing
import ToolkitSupport
import _TestSupport

@testable import Reporting

@Suite struct CompareReportTests {
    @Test func aggregateUsesSampleStandardDeviation() {
        let a = Aggregate([3.0, 3.2, 3.4, 3.8])
        #expect(abs(a.mean - 3.35) < Tolerance.double)
        // Σ(x − 3.35)² = 0.1225 + 0.0225 + 0.0025 + 0.2025 = 0.35; /(4 − 1); sqrt.
        #expect(abs(a.sd! - (0.35 / 3).squareRoot()) < Tolerance.double)
        #expect(Aggregate([2.5]).sd == nil)
        #expect(Aggregate([2.5]).mean == 2.5)
    }

    @Test func fixtureTableHasTheExpectedCells() throws {
        let report = try CompareReport.build(variants: try fixtureVariants())
        #expect(report.title == "Compare: gpt2 vs rope")
        let gpt2 = try markdownRow(report.markdown(), "gpt2")
        let rope = try markdownRow(report.markdown(), "rope")
        // Columns: params, non-emb, FLOPs/token, tokens, tokens/s, train, val, ppl, bpb, wall.
        // Expected strings computed independently (Python: statistics.mean/stdev, "%.Nf").
        #expect(
            gpt2 == [
                "1,000,000", "500,000", "6.00M", "24,576", "**1,510 ± 14**", "5.1000 ± 0.1414",
                "5.3000 ± 0.1414", "201.34 ± 28.38", "1.5500 ± 0.0707 (n.s.)", "**101.0 ± 1.4**",
            ])
        #expect(
            rope == [
                "990,000", "490,000", "5.94M", "24,576", "1,405 ± 7", "**4.8500 ± 0.0707**",
                "**5.0500 ± 0.0707**", "**156.22 ± 11.04**", "**1.4900 ± 0.0424**", "110.5 ± 0.7",
            ])
        #expect(report.rows[0].cell(.bitsPerByte).notSignificant)
        #expect(!report.rows[0].cell(.finalTrainLoss).notSignificant)
        #expect(report.rows[1].seeds == [0, 1])
        #expect(report.rows[1].cell(.finalTrainLoss).aggregate?.values == [4.8, 4.9])
    }

    @Test func htmlAndTerminalShowTheSameNumbers() throws {
        let report = try CompareReport.build(variants: try fixtureVariants())
        let html = report.html()
        #expect(
            html.contains(
                "<td class=\"best\"><strong>4.8500<span class=\"sd\"> ± 0.0707</span></strong></td>"
            ))
        #expect(
            html.contains(
                "<td class=\"\">1.5500<span class=\"sd\"> ± 0.0707 <span class=\"ns\">n.s.</span></span></td>"
            ))
        #expect(html.contains("<td class=\"\">5.1000<span class=\"sd\"> ± 0.1414</span></td>"))
        #expect(html.contains("<td class=\"\">6.00M</td>"))
        // The cells' text content (tags removed) equals the Markdown cells.
        let summary = try #require(html.components(separatedBy: "<table class=\"summary\">").last)
        let gpt2Row = try #require(
            summary.components(separatedBy: "</tr>").first { $0.contains(">gpt2</th>") })
        let texts = gpt2Row.components(separatedBy: "<td").dropFirst().map { cell in
            cell.replacingOccurrences(of: "<[^>]*>", with: "", options: .regularExpression)
                .replacingOccurrences(of: "^[^>]*>", with: "", options: .regularExpression)
        }
        let md = try markdownRow(report.markdown(), "gpt2").map {
            $0.replacingOccurrences(of: "**", with: "").replacingOccurrences(
                of: " (n.s.)", with: " n.s.")
        }
        #expect(texts == md)
        let terminal = report.terminalTable()
        let trainLine = try #require(
            terminal.split(separator: "\n").first { $0.hasPrefix("train loss") })
        #expect(trainLine.hasSuffix("5.1000 ± 0.1414  4.8500 ± 0.0707 *"))
        let bpbLine = try #require(
            terminal.split(separator: "\n").first { $0.hasPrefix("val bpb") })
        #expect(bpbLine.contains("1.5500 ± 0.0707 n.s."))
        // Every table line has the same width (aligned columns).
        let lines = terminal.split(separator: "\n").prefix(ReportColumn.allCases.count - ReportColumn.whenPresent.count + 2)
        #expect(Set(lines.map(\.count)).count == 1)
    }

    @Test func perRunTableListsEveryLoggedValue() throws {
        let md = try CompareReport.build(variants: try fixtureVariants()).markdown()
        #expect(
            md.contains(
                "| rope | 1 | 4.9000 | 5.1000 | 164.02 | 1.5200 | 24,576 | 1,410 | 111.0 | rope-seed1.metrics.jsonl |"
            ))
        #expect(
            md.contains("| gpt2 | 0 | 5.0000 | 5.2000 | 181.27 | 1.5000 | 24,576 | 1,500 | 100.0 |")
        )
    }

    /// Best = lowest loss / highest throughput on the printed mean; ties are all best; sizes are
    /// never marked; with one seed nothing is n.s. and nothing shows "±".
    @Test func bestMarkingAndTiesWithOneSeed() throws {
        func run(_ name: String, loss: Double, rate: Double, params: Int) throws -> VariantRuns {
            let log = MetricsLog(steps: [StepRow(step: 1, loss: loss, tokens: 100)])
            let s = try RunSummary(
                variant: name, seed: 0, params: params, nonEmbeddingParams: params,
                flopsPerToken: 6, wallSeconds: 10, metricsPath: "\(name).jsonl", metrics: log,
                tokensPerSecond: rate)
            return VariantRuns(name: name, runs: [try RunRecord(summary: s, metrics: log)])
        }
        let report = try CompareReport.build(variants: [
            try run("a", loss: 3.00004, rate: 900, params: 10),
            try run("b", loss: 2.99996, rate: 1000, params: 20),  // prints 3.0000 too: a tie
            try run("c", loss: 3.1, rate: 999.6, params: 5),  // prints 1,000: tie on rate
        ])
        let train = report.rows.map { $0.cell(.finalTrainLoss) }
        #expect(train.map(\.isBest) == [true, true, false])
        #expect(train.map(\.text) == ["3.0000", "3.0000", "3.1000"])
        #expect(report.rows.map { $0.cell(.tokensPerSecond).isBest } == [false, true, true])
        #expect(
            report.rows.allSatisfy { !$0.cell(.params).isBest && !$0.cell(.flopsPerToken).isBest })
        #expect(report.rows.allSatisfy { $0.cells.allSatisfy { !$0.notSignificant } })
        // Wall time is 10 s everywhere: no bold at all.
        #expect(report.rows.allSatisfy { !$0.cell(.wallSeconds).isBest })
        // Missing val loss everywhere: "—", never best.
        #expect(
            report.rows.allSatisfy { $0.cell(.valLoss).text == "—" && !$0.cell(.valLoss).isBest })
        let tableLines = report.markdown().split(separator: "\n").filter { $0.hasPrefix("| ") }
        #expect(tableLines.count == 10)  // (header, rule, 3 rows) for the table and for the runs
        #expect(!tableLines.contains { $0.contains("±") })
        let html = report.html()
        let start = try #require(html.range(of: "<table class=\"summary\">"))
        let end = try #require(html.range(of: "</table>", range: start.upperBound..<html.endIndex))
        #expect(!html[start.upperBound..<end.lowerBound].contains("±"))
        let svg = report.lossSVG()
        #expect(!svg.contains("band") && !svg.contains("±"))
    }

    @Test func significanceUsesThePrintedSpread() throws {
        // Means 3.0000 and 3.2000, sds 0.1000 each: |Δ| = 0.2 ≤ 0.2 → n.s. (boundary included).
        func variant(_ name: String, _ losses: [Double]) throws -> VariantRuns {
            let runs = try losses.enumerated().map { seed, loss in
                let log = MetricsLog(steps: [StepRow(step: 1, loss: loss, tokens: 100)])
                let s = try RunSummary(
                    variant: name, seed: seed, params: 1, nonEmbeddingParams: 1, flopsPerToken: 1,
                    wallSeconds: 1, metricsPath: "x", metrics: log)
                return try RunRecord(summary: s, metrics: log)
            }
            return VariantRuns(name: name, runs: runs)
        }
        let report = try CompareReport.build(variants: [
            try variant("best", [2.9, 3.0, 3.1]),
            try variant("close", [3.1, 3.2, 3.3]),
            try variant("far", [3.1, 3.2001, 3.3002]),
        ])
        let cells = report.rows.map { $0.cell(.finalTrainLoss) }
        #expect(cells.map(\.text) == ["3.0000 ± 0.1000", "3.2000 ± 0.1000", "3.2001 ± 0.1001"])
        #expect(cells.map(\.isBest) == [true, false, false])
        // far: |3.2001 − 3.0000| = 0.2001 ≤ 0.1001 + 0.1000 = 0.2001 → still n.s.
        #expect(cells.map(\.notSignificant) == [false, true, true])
        let clear = try CompareReport.build(variants: [
            try variant("best", [2.9, 3.0, 3.1]), try variant("worse", [3.2, 3.3, 3.4]),
        ])
        #expect(clear.rows[1].cell(.finalTrainLoss).text == "3.3000 ± 0.1000")
        #expect(!clear.rows[1].cell(.finalTrainLoss).notSignificant)
    }

    @Test func divergedRunShowsNaNAndIsNeverBest() throws {
        let text = """
            {"step": 1, "loss": 7.5, "tokens": 100}
            {"step": 2, "loss": "nan", "tokens": 200}
            {"step": 2, "val_loss": "inf", "tokens": 200}
            """
        let log = try MetricsLog.parse(text, path: "d.jsonl")
        #expect(log.finalTrainLoss?.isNaN == true && log.finalEval?.valLoss == .infinity)
        let dir = temporaryDirectory()
        try AtomicFile.write(text, to: dir + "/d.jsonl")
        try RunSummary(
            variant: "diverged", seed: 0, params: 1, nonEmbeddingParams: 1, flopsPerToken: 1,
            wallSeconds: 1, metricsPath: "d.jsonl", metrics: log
        ).write(to: dir + "/d.summary.json")
        let diverged = try VariantRuns.load(
            name: "diverged", summaryPaths: [dir + "/d.summary.json"])
        let fine = try syntheticVariant("fine", seeds: [0], floor: 3)
        let report = try CompareReport.build(variants: [diverged, fine])
        let cells = report.rows.map { $0.cell(.finalTrainLoss) }
        #expect(cells[0].text == "nan" && report.rows[0].cell(.valLoss).text == "inf")
        #expect(cells.allSatisfy { !$0.isBest })  // one comparable value: nothing to mark
        #expect(try report.summaryJSON().contains("\"text\":\"nan\""))
        try report.write(to: dir + "/out")
        _ = try XMLCollector.parse(report.lossSVG())
    }

    @Test func buildRejectsInconsistentInput() throws {
        let gpt2 = try fixtureVariants()[0]
        func message(_ variants: [VariantRuns]) -> String {
            do {
                _ = try CompareReport.build(variants: variants)
                return "no error"
            } catch { return "\(error)" }
        }
        #expect(message([]) == "compare report: no variants given")
        #expect(message([gpt2, gpt2]) == "compare report: variant \"gpt2\" is given twice")
        #expect(
            message([VariantRuns(name: "x", runs: [])])
                == "compare report: variant \"x\" has no runs")
        #expect(
            message([VariantRuns(name: "rope", runs: gpt2.runs)]).contains("names variant \"gpt2\"")
        )
        #expect(
            message([VariantRuns(name: "gpt2", runs: [gpt2.runs[0], gpt2.runs[0]])])
                == "compare report: variant \"gpt2\" has seed 0 twice")
        var other = gpt2.runs[1].summary
        other.params += 1
        let changed = try RunRecord(summary: other, metrics: gpt2.runs[1].metrics)
        #expect(
            message([VariantRuns(name: "gpt2", runs: [gpt2.runs[0], changed])])
                == "compare report: the seeds of variant \"gpt2\" disagree on \"params\"")
    }

    @Test func curvesAverageSeedsAtCommonTokenCounts() throws {
        let variants = try fixtureVariants()
        let report = try CompareReport.build(variants: variants)
        let gpt2 = report.curves[0]
        #expect(gpt2.name == "gpt2")
        #expect(gpt2.train.map(\.tokens) == (1...6).map { Double($0 * 4096) })
        #expect(abs(gpt2.train[0].mean - 7.05) < Tolerance.double)
        #expect(abs(gpt2.train[0].sd! - 0.1 / 2.0.squareRoot()) < Tolerance.double)
        #expect(gpt2.val.map(\.tokens) == [12288, 24576])
        #expect(abs(gpt2.val[1].mean - 5.3) < Tolerance.double)
        // A seed that stopped early limits the average to the common points.
        let short = MetricsLog(steps: [
            StepRow(step: 1, loss: 1, tokens: 4096), StepRow(step: 2, loss: 2, tokens: 8192),
        ])
        let curve = VariantCurves.aligned(name: "x", logs: [variants[0].runs[0].metrics, short])
        #expect(curve.train.map(\.tokens) == [4096, 8192])
        #expect(curve.train.map(\.mean) == [4, 4.2])
        #expect(curve.val.isEmpty)
    }

    @Test func rebuildingGivesIdenticalFiles() throws {
        let variants = [
            try syntheticVariant("gpt2", seeds: [2, 0, 1], floor: 3.2),
            try syntheticVariant("rope", seeds: [0, 1, 2], floor: 3.0),
        ]
        let first = temporaryDirectory()
        let second = temporaryDirectory()
        let notes = ["data: shards/*.zst", "budget: 245,760 tokens"]
        try CompareReport.build(variants: variants, notes: notes).write(to: first)
        // Runs given in another order: sorted by seed before any arithmetic.
        let shuffled = variants.map { VariantRuns(name: $0.name, runs: $0.runs.reversed()) }
        let paths = try CompareReport.build(variants: shuffled, notes: notes).write(to: second)
        #expect(paths.map { URL(fileURLWithPath: $0).lastPathComponent } == CompareReport.fileNames)
        for name in CompareReport.fileNames {
            let a = try Data(contentsOf: URL(fileURLWithPath: first + "/" + name))
            let b = try Data(contentsOf: URL(fileURLWithPath: second + "/" + name))
            #expect(a == b, "\(name) differs")
            #expect(!a.isEmpty)
        }
        #expect(
            try FileManager.default.contentsOfDirectory(atPath: first).sorted()
                == CompareReport.fileNames.sorted())
    }

    @Test func jsonSummaryRoundTrips() throws {
        let report = try CompareReport.build(variants: try fixtureVariants())
        let line = try report.summaryJSON()
        #expect(!line.contains("\n"))
        let decoded = try JSONDecoder().decode(CompareSummary.self, from: Data(line.utf8))
        #expect(decoded == report.summary)
        #expect(line.contains("\"not_significant\":true"))
        #expect(line.contains("\"text\":\"1.5500 ± 0.0707\""))
    }

    @Test func namesAreEscapedEverywhere() throws {
        let name = "a|b <i>&\"x\"*"
        let report = try CompareReport.build(variants: [
            try syntheticVariant(name, seeds: [0, 1], floor: 3),
            try syntheticVariant("plain", seeds: [0, 1], floor: 3.1),
        ])
        let row = try markdownRow(report.markdown(), "a\\|b \\<i\\>&\"x\"\\*")
        #expect(row.count == report.columns.count && report.columns.count == ReportColumn.allCases.count - 2)
        #expect(report.html().contains("<th scope=\"row\">a|b &lt;i&gt;&amp;&quot;x&quot;*</th>"))
        let svg = try XMLCollector.parse(report.lossSVG())
        #expect(svg.all("path", class: "train-line").map { $0["data-variant"] } == [name, "plain"])
    }

    @Test func defaultDirectoryName() {
        let date = Date(timeIntervalSince1970: 1_795_300_000)  // 2026-11-21 22:26:40 UTC
        #expect(
            CompareReport.defaultDirectory(variantNames: ["gpt2", "rope/yarn x"], date: date)
                == "Checkpoints/compare-gpt2-vs-rope_yarn_x-20261121-222640")
    }
}
