import Foundation
import Testing

/// `finetune` runs on the training loop of `train`: periodic checkpoints that `--resume` continues
/// exactly (full SFT with model dropout, LoRA with adapter dropout), the best checkpoint kept by
/// an evaluation metric, and a resume with other settings refused.
@Suite(.serialized) struct FinetuneLoopTests {
    /// A nano checkpoint with the toy tokenizer, and instruction data.
    static func setup(_ tmp: URL) throws -> (checkpoint: String, data: String) {
        let ck = try CLI.toyCheckpoint(tmp, name: "base")
        let data = tmp.appendingPathComponent("sft.jsonl").path
        try (0..<24).map { "{\"prompt\": \"the cat \($0 % 7):\", \"completion\": \" the cat sat on the mat \($0 % 7)\"}" }
            .joined(separator: "\n").write(toFile: data, atomically: true, encoding: .utf8)
        return (ck, data)
    }

    /// The metrics rows of a file, as text lines without the timing fields.
    static func rows(_ path: String) throws -> [String] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n").map { line in
            var o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            o["tokens_per_s"] = nil
            return String(decoding: try JSONSerialization.data(withJSONObject: o, options: .sortedKeys), as: UTF8.self)
        }
    }

    @Test(arguments: [["--method", "sft", "--model-dropout", "0.1"], ["--method", "lora", "--dropout", "0.1", "--targets", "all"]])
    func periodicSavesResumeExactlyAndTheBestIsKept(method: [String]) throws {
        let tmp = CLI.temp("ft-loop")
        let (ck, data) = try Self.setup(tmp)
        let a = tmp.appendingPathComponent("a").path, b = tmp.appendingPathComponent("b").path
        let common = ["finetune", "--checkpoint", ck, "--data", data, "--steps", "6", "--batch-size", "4", "--save-every", "2",
                      "--keep-checkpoints", "5", "--eval-every", "2", "--keep-best", "val_loss", "--json"] + method
        let full = try CLI.run(common + ["--out", a])
        #expect(full.code == 0, "\(full.err)")
        let summary = try CLI.json(full.out)
        let names = try FileManager.default.contentsOfDirectory(atPath: a)
        #expect(["step-0000002", "step-0000004", "step-0000006", "best"].allSatisfy(names.contains), "\(names)")
        #expect(summary["best"] as? String == a + "/best")
        // The best checkpoint is the one of the lowest validation loss.
        let evals = try Self.rows(a + "/metrics.jsonl").compactMap { line -> (Int, Double)? in
            let o = try JSONSerialization.jsonObject(with: Data(line.utf8)) as! [String: Any]
            return (o["val_loss"] as? Double).map { (o["step"] as! Int, $0) }
        }
        #expect(evals.map(\.0) == [2, 4, 6])
        let bestState = try CLI.json(try String(contentsOfFile: a + "/best/trainer_state.json", encoding: .utf8))
        #expect(bestState["step"] as? Int == evals.min { $0.1 < $1.1 }!.0)
        // A run cut after step 2 (its checkpoint and metrics so far), resumed, ends where the whole run ended.
        try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
        try FileManager.default.copyItem(atPath: a + "/step-0000002", toPath: b + "/step-0000002")
        let kept = try String(contentsOfFile: a + "/metrics.jsonl", encoding: .utf8).split(separator: "\n").prefix(3)
        try (kept.joined(separator: "\n") + "\n").write(toFile: b + "/metrics.jsonl", atomically: true, encoding: .utf8)
        let other = try CLI.run(common + ["--out", b, "--resume", "--lr", "0.5"])
        #expect(other.code != 0 && other.err.contains("lr"), "a resume with another learning rate is refused: \(other.err)")
        let resumed = try CLI.run(common + ["--out", b, "--resume"])
        #expect(resumed.code == 0, "\(resumed.err)")
        #expect(try Self.rows(a + "/metrics.jsonl") == Self.rows(b + "/metrics.jsonl"))
        let result = method[1] == "lora" ? "/adapter/adapter_model.safetensors" : "/model.safetensors"
        #expect(FileManager.default.contents(atPath: a + result) == FileManager.default.contents(atPath: b + result), "\(result) differs")
        // A fresh run refuses a folder that holds checkpoints.
        let again = try CLI.run(common + ["--out", a])
        #expect(again.code != 0 && again.err.contains("--resume"), "\(again.err)")
    }
}
