import Foundation
import Testing
import _TestSupport

/// `toolkit train --init HF-DIR --tokens FILE` against PyTorch: the 5-step full-batch loss
/// trajectories in `Fixtures/hf-trajectories/expected.json`, made by
/// `scripts/fixtures/make-train-trajectories.py` from small random HF models (gpt2, qwen3 with GQA,
/// qwen3_moe with router aux loss, qwen3 with an untied head) with torch.optim.AdamW / SGD.
@Suite struct TrainTrajectoryTests {
    static let tolerance = Tolerance.Training.trajectoryLoss

    static var root: URL {
        get throws {
            guard let url = Bundle.module.url(forResource: "Fixtures/hf-trajectories", withExtension: nil) else {
                throw CocoaError(.fileNoSuchFile, userInfo: [NSFilePathErrorKey: "Fixtures/hf-trajectories"])
            }
            return url
        }
    }

    /// The metrics JSONL's per-step rows (evaluation rows have no `loss`).
    static func stepRows(_ path: String) throws -> [[String: Any]] {
        try String(contentsOfFile: path, encoding: .utf8).split(separator: "\n")
            .map { try CLI.json(String($0)) }
            .filter { $0["loss"] != nil }
    }

    @Test(arguments: ["gpt2", "qwen3-gqa", "qwen3-moe", "qwen3-untied", "llama3-untied", "llama-bias", "olmo2", "smollm3", "gemma3", "gptoss"])
    func fiveStepLossesMatchPyTorch(model: String) throws {
        let root = try Self.root
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: root.appendingPathComponent("expected.json")))
        let entry = try #require(((expected as? [String: Any])?["models"] as? [String: Any])?[model] as? [String: Any])
        let runs = try #require(entry["runs"] as? [String: [String: Any]])
        #expect(Set(runs.keys) == ["adamw", "sgd", "sgd-momentum"])
        let dir = root.appendingPathComponent(model).path
        let tokens = root.appendingPathComponent(model + "/tokens.json").path
        for (run, spec) in runs.sorted(by: { $0.key < $1.key }) {
            let flags = try #require(spec["flags"] as? [String])
            let want = try #require(spec["loss"] as? [Double])
            let tmp = CLI.temp("traj-\(model)-\(run)")
            defer { try? FileManager.default.removeItem(at: tmp) }
            let metrics = tmp.appendingPathComponent("metrics.jsonl").path
            let r = try CLI.run(["train", "--init", dir, "--tokens", tokens, "--metrics", metrics,
                                 "--out", tmp.appendingPathComponent("run").path, "--json"] + flags)
            #expect(r.code == 0, "\(model) \(run): \(r.err)")
            let rows = try Self.stepRows(metrics)
            #expect(rows.map { $0["step"] as? Int } == Array(1...want.count), "\(model) \(run)")
            let got = rows.map { $0["loss"] as? Double ?? .nan }
            let diff = zip(got, want).map { abs($0 - $1) }.max() ?? .infinity
            #expect(got.count == want.count && diff <= Self.tolerance, "\(model) \(run): losses \(got) vs PyTorch \(want)")
            if let wantAux = spec["aux_loss"] as? [Double] {
                let aux = rows.map { $0["aux_loss"] as? Double ?? .nan }
                let auxDiff = zip(aux, wantAux).map { abs($0 - $1) }.max() ?? .infinity
                #expect(aux.count == wantAux.count && auxDiff <= Self.tolerance,
                        "\(model) \(run): aux losses \(aux) vs PyTorch \(wantAux)")
            }
        }
    }
}

/// Greedy decoding and eval on the same unseen-shape HF models (head_dim·heads ≠ hidden, GQA,
/// attention biases, an untied head, MoE) against transformers: `generation.json`, made by
/// `scripts/fixtures/make-generation-references.py`. Both decoders, and eval through the fast one.
@Suite struct UnseenModelGenerationTests {
    @Test(arguments: ["gpt2", "qwen3-gqa", "qwen3-moe", "qwen3-untied", "llama3-untied", "llama-bias", "olmo2", "smollm3", "gemma3", "gptoss"])
    func greedyTokensAndEvalLossMatchTransformers(model: String) throws {
        let dir = try TrainTrajectoryTests.root.appendingPathComponent(model)
        let ref = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("generation.json"))) as? [String: Any])
        let prompt = try #require(ref["prompt_ids"] as? [Int]), want = try #require(ref["new_tokens"] as? [Int])
        for decoder in ["fast", "tensor"] {
            let r = try CLI.run(["generate", "--model", dir.path, "--prompt-ids", prompt.map(String.init).joined(separator: ","),
                                 "--max-new-tokens", String(want.count), "--greedy", "--decoder", decoder, "--json"])
            #expect(r.code == 0, "\(r.err)")
            #expect(try CLI.json(r.out)["ids"] as? [Int] == want, "\(model) \(decoder)")
        }
        let tokens = dir.appendingPathComponent("tokens.json").path
        let wantLoss = try #require(ref["eval_loss"] as? Double)
        var variants: [[String]] = [[]]
        if !["qwen3-moe", "gptoss"].contains(model) { variants.append(["--weights", "f32"]) }  // MoE: the tensor path only
        for extra in variants {
            let e = try CLI.run(["eval", "--model", dir.path, "--tokens", tokens, "--json"] + extra)
            #expect(e.code == 0, "\(e.err)")
            let loss = try CLI.json(e.out)["loss"] as? Double ?? .nan
            #expect(abs(loss - wantLoss) < Tolerance.Model.loss, "\(model) \(extra): \(loss) vs \(wantLoss)")
        }
    }
}
