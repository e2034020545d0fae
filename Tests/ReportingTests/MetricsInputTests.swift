import Foundation
import Testing
import ToolkitSupport

@testable import Reporting

@Suite struct MetricsInputTests {
    @Test func parsesStepAndEvalRows() throws {
        let text = """
            {"step": 1, "loss": 7.1, "lr": 0.001, "grad_norm": 1.2, "tokens_per_s": 1500, "tokens": 4096}

            {"step": 2, "loss": 6.5, "tokens": 8192, "extra_key": "ignored"}
            {"step": 2, "val_loss": 6.9, "tokens": 8192, "val_bpb": 1.7}
            """
        let log = try MetricsLog.parse(text, path: "m.jsonl")
        #expect(
            log.steps == [
                StepRow(
                    step: 1, loss: 7.1, lr: 0.001, gradNorm: 1.2, tokensPerSecond: 1500,
                    tokens: 4096),
                StepRow(step: 2, loss: 6.5, tokens: 8192),
            ])
        #expect(log.evals == [EvalRow(step: 2, valLoss: 6.9, valBitsPerByte: 1.7, tokens: 8192)])
        #expect(log.finalTrainLoss == 6.5)
        #expect(log.tokensSeen == 8192)
    }

    @Test func resumeDropsSupersededRows() throws {
        let rows = [(1, 7.0), (2, 6.0), (3, 5.5), (2, 6.1), (3, 5.4), (4, 5.0)]
        let text = rows.map { "{\"step\": \($0.0), \"loss\": \($0.1), \"tokens\": \($0.0 * 10)}" }
            .joined(separator: "\n")
        let log = try MetricsLog.parse(text, path: "m.jsonl")
        #expect(log.steps.map(\.step) == [1, 2, 3, 4])
        #expect(log.steps.map(\.loss) == [7.0, 6.1, 5.4, 5.0])
    }

    @Test(arguments: [
        (
            "{\"step\": 1, \"loss\": 7.1, \"tokens\": 4096}\n{\"step\": 2, \"loss\": 7.",
            "line 2: not a valid JSON object"
        ),
        ("{\"step\": 1, \"tokens\": 4096}", "line 1: row has neither \"loss\" nor \"val_loss\""),
        ("{\"step\": 1, \"loss\": 7.1}", "line 1: missing key \"tokens\""),
        (
            "{\"step\": 1, \"loss\": \"high\", \"tokens\": 1}",
            "line 1: key \"loss\" has the wrong type"
        ),
        ("{\"step\": -1, \"loss\": 7.1, \"tokens\": 1}", "line 1: key \"step\" must be >= 0"),
        ("[1, 2]", "line 1: not a JSON object"),
    ])
    func badRowsNameFileAndLine(text: String, message: String) throws {
        let error = #expect(throws: ToolkitError.self) {
            try MetricsLog.parse(text, path: "runs/a.jsonl")
        }
        let description = error?.message ?? ""
        #expect(description.hasPrefix("runs/a.jsonl: "), "\(description)")
        #expect(description.contains(message), "\(description)")
    }

    @Test func missingFilesAreNamed() throws {
        let dir = temporaryDirectory()
        let e1 = #expect(throws: ToolkitError.self) {
            try MetricsLog.read(path: dir + "/none.jsonl")
        }
        #expect(e1?.message.hasPrefix("\(dir)/none.jsonl: cannot read metrics file") == true)
        // A summary whose metrics file is missing names the summary and the metrics path.
        var summary = try RunSummary.read(path: fixturePath("gpt2-seed0.summary.json"))
        summary.metricsPath = "gone.jsonl"
        try summary.write(to: dir + "/s.json")
        let e2 = #expect(throws: ToolkitError.self) {
            try RunRecord.load(summaryPath: dir + "/s.json")
        }
        #expect(
            e2?.message.hasPrefix("\(dir)/s.json: \(dir)/gone.jsonl: cannot read metrics file")
                == true)
    }

    @Test func summaryDerivesFromMetrics() throws {
        let log = MetricsLog(
            steps: [
                StepRow(step: 1, loss: 7, tokensPerSecond: 100, tokens: 10),
                StepRow(step: 2, loss: 6, tokensPerSecond: 300, tokens: 20),
                StepRow(step: 3, loss: 5.5, tokensPerSecond: 200, tokens: 30),
                StepRow(step: 4, loss: 5.25, tokensPerSecond: 250, tokens: 40),
            ],
            evals: [
                EvalRow(step: 2, valLoss: 6.5, valBitsPerByte: 2, tokens: 20),
                EvalRow(step: 4, valLoss: 5.75, tokens: 40),
            ])
        let s = try RunSummary(
            variant: "a", seed: 3, params: 10, nonEmbeddingParams: 5, flopsPerToken: 60,
            wallSeconds: 2, metricsPath: "a.jsonl", metrics: log)
        #expect(s.finalTrainLoss == 5.25)
        #expect(s.valLoss == 5.75)
        #expect(s.perplexity == exp(5.75))
        #expect(s.bitsPerByte == nil)  // the last eval row has no val_bpb
        #expect(s.tokensSeen == 40)
        #expect(s.tokensPerSecond == 250)  // median of 300, 200, 250 (first row is warm-up)
        let empty = #expect(throws: ToolkitError.self) {
            try RunSummary(
                variant: "a", seed: 0, params: 1, nonEmbeddingParams: 1, flopsPerToken: 1,
                wallSeconds: 1, metricsPath: "e.jsonl", metrics: MetricsLog())
        }
        #expect(empty?.message.contains("no training step rows") == true)
    }

    @Test func summaryRoundTripsAndRejectsUnknownKeys() throws {
        let dir = temporaryDirectory()
        let original = try RunSummary.read(path: fixturePath("gpt2-seed1.summary.json"))
        try original.write(to: dir + "/s.json")
        #expect(try RunSummary.read(path: dir + "/s.json") == original)

        var text = try String(contentsOfFile: dir + "/s.json", encoding: .utf8)
        text = text.replacingOccurrences(of: "\"seed\"", with: "\"sead\"")
        try AtomicFile.write(text, to: dir + "/bad.json")
        let error = #expect(throws: ToolkitError.self) {
            try RunSummary.read(path: dir + "/bad.json")
        }
        #expect(error?.message == "\(dir)/bad.json: unknown key \"sead\" in run summary")
    }

    @Test func loadsFixtureRunsWithRelativeMetricsPaths() throws {
        let record = try RunRecord.load(summaryPath: fixturePath("rope-seed1.summary.json"))
        #expect(record.summary.variant == "rope")
        #expect(record.summary.finalTrainLoss == 4.9)
        #expect(record.metrics.steps.count == 6)
        #expect(record.metrics.evals.map(\.valLoss) == [5.6, 5.1])
    }

    @Test func summaryThatDisagreesWithItsLogIsRejected() throws {
        let record = try RunRecord.load(summaryPath: fixturePath("gpt2-seed0.summary.json"))
        var s = record.summary
        s.finalTrainLoss = 5.0001
        let e1 = #expect(throws: ToolkitError.self) {
            try RunRecord(summary: s, metrics: record.metrics)
        }
        #expect(e1?.message.contains("summary key \"final_train_loss\" is 5.0001") == true)

        s = record.summary
        s.valLoss = nil
        let e2 = #expect(throws: ToolkitError.self) {
            try RunRecord(summary: s, metrics: record.metrics)
        }
        #expect(e2?.message.contains("\"val_loss\" is none") == true)

        s = record.summary
        s.perplexity = exp(5.2) * (1 + 1e-6)
        let e3 = #expect(throws: ToolkitError.self) {
            try RunRecord(summary: s, metrics: record.metrics)
        }
        #expect(e3?.message.contains("\"perplexity\"") == true)

        s = record.summary
        s.tokensSeen += 1
        #expect(throws: ToolkitError.self) { try RunRecord(summary: s, metrics: record.metrics) }
    }
}
