import Foundation
import Testing

/// `train` off a terminal (the tests' standard error is a pipe): a start-up summary, a line every
/// --log-every steps, samples at evaluations; `plot` draws the run; JSON Lines corpora shard.
@Suite struct TrainLogTests {
    @Test func logLinesSamplesAndPlot() throws {
        let tmp = CLI.temp("trainlog")
        var lines: [String] = []
        for i in 0..<300 {
            let record = ["text": "The quick brown fox \(i % 17) jumps over the lazy dog number \(i % 5).", "id": "\(i)"]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self))
        }
        let corpus = tmp.appendingPathComponent("corpus.jsonl").path
        try lines.joined(separator: "\n").write(toFile: corpus, atomically: true, encoding: .utf8)
        let plain = tmp.appendingPathComponent("plain.txt").path
        try "The quick brown fox jumps over the lazy dog.\n".write(toFile: plain, atomically: true, encoding: .utf8)
        let tok = tmp.appendingPathComponent("tok.json").path
        #expect(try CLI.run(["train-tokenizer", "--input", plain, "--input", corpus, "--vocab-size", "300", "--out", tok]).code == 0)
        let shards = tmp.appendingPathComponent("shards").path
        let s = try CLI.run(["shard", "--tokenizer", tok, "--input", corpus, "--out", shards, "--shard-tokens", "2000", "--json"])
        #expect(s.code == 0, "\(s.err)")
        let manifest = try CLI.json(s.out)["manifest"] as? [String: Any]
        #expect(manifest?["documents"] as? Int == 300)
        let run = tmp.appendingPathComponent("run").path
        let task = tmp.appendingPathComponent("task.jsonl").path
        try """
            {"query": "The quick brown fox", "choices": ["jumps over the lazy dog", "the the the"], "gold": 0}
            {"ctx": "The lazy dog number", "endings": ["3.", "fox fox fox fox"], "label": 0}
            """.write(toFile: task, atomically: true, encoding: .utf8)
        let t = try CLI.run(["train", "--recipe", "nano", "--set", "model.vocab_size=300", "--data", shards, "--tokenizer", tok,
                             "--steps", "12", "--batch-size", "2", "--seq-len", "16", "--eval-every", "6", "--log-every", "4",
                             "--sample-prompt", "The quick", "--sample-tokens", "4", "--eval-task", task, "--out", run])
        #expect(t.code == 0, "\(t.err)")
        #expect(t.err.contains("train: nano,") && t.err.contains("2 × 16 tokens × 1 micro-batches = 32 tokens a step"), "\(t.err)")
        #expect(t.err.contains("384 tokens planned"), "\(t.err)")
        let logged = t.err.split(separator: "\n").filter { $0.hasPrefix("step ") && $0.contains("ETA") }
        #expect(logged.map { $0.split(separator: " ")[1] } == ["4/12", "8/12", "12/12"], "\(t.err)")
        #expect(logged.allSatisfy { $0.contains("loss ") && $0.contains("lr ") && $0.contains("grad_norm ") && $0.contains("tok/s") })
        #expect(t.err.contains("step 6: sample: \"The quick") && t.err.contains("step 12: sample: "), "\(t.err)")
        #expect(t.err.contains("task_acc ") && t.err.contains("task_acc_norm "), "\(t.err)")
        let evals = try String(contentsOfFile: run + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").filter { $0.contains("val_loss") }
        #expect(evals.count == 2 && evals.allSatisfy { $0.contains("\"task_acc\"") && $0.contains("\"task_acc_norm\"") })
        let noData = try CLI.run(["train", "--recipe", "nano", "--tokens", task, "--eval-task", task, "--tokenizer", tok])
        #expect(noData.code != 0)
        // plot: a run folder and a metrics file, into another folder.
        let out = tmp.appendingPathComponent("plots").path
        let p = try CLI.run(["plot", run, run + "/metrics.jsonl", "--out", out, "--title", "two"])
        #expect(p.code == 0, "\(p.err)")
        let html = try String(contentsOfFile: out + "/plot.html", encoding: .utf8)
        #expect(html.contains("<svg") && html.contains("learning rate") && html.contains(">run<") && html.contains(">run (2)<"))
        #expect(!html.contains("<script") && !html.contains("http://www.w3.org/1999/xhtml\" src"))
        let lr = try String(contentsOfFile: out + "/lr.svg", encoding: .utf8)
        #expect(lr.hasPrefix("<?xml") && lr.contains("learning rate against tokens seen"))
        #expect(FileManager.default.fileExists(atPath: out + "/loss.svg"))
        let missing = try CLI.run(["plot", tmp.path])
        #expect(missing.code != 0 && missing.err.contains("no metrics.jsonl"), "\(missing.err)")
    }
}
