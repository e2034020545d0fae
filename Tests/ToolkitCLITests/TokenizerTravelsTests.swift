import Foundation
import Testing

/// The tokenizer travels with the model: train saves it in every checkpoint, a resume keeps it,
/// generate and eval find it, export writes what transformers' AutoTokenizer loads, and a different
/// tokenizer is refused (naming both) unless the mismatch is allowed.
@Suite struct TokenizerTravelsTests {
    @Test func theTokenizerTravelsAndAWrongOneIsRefused() throws {
        let tmp = CLI.temp("tok-travel")
        func corpus(_ name: String, _ words: [String]) throws -> String {
            var text = ""
            for i in 0..<300 { text += words.map { "\($0) \(i % 7)" }.joined(separator: " ") + ".\n" }
            let path = tmp.appendingPathComponent(name).path
            try text.write(toFile: path, atomically: true, encoding: .utf8)
            return path
        }
        let c1 = try corpus("a.txt", ["the cat sat on the mat", "and the dog ran"])
        let c2 = try corpus("b.txt", ["lorem ipsum dolor", "sit amet consectetur"])
        let tok = tmp.appendingPathComponent("tok.json").path, other = tmp.appendingPathComponent("other.json").path
        #expect(try CLI.run(["train-tokenizer", "--input", c1, "--vocab-size", "300", "--out", tok]).code == 0)
        #expect(try CLI.run(["train-tokenizer", "--input", c2, "--vocab-size", "300", "--out", other]).code == 0)
        let shards = tmp.appendingPathComponent("shards").path
        #expect(try CLI.run(["shard", "--tokenizer", tok, "--input", c1, "--out", shards, "--val-fraction", "0.1"]).code == 0)
        let run = tmp.appendingPathComponent("run").path
        let train = ["train", "--recipe", "nano", "--set", "model.vocab_size=300", "--set", "model.context_length=256",
                     "--set", "model.position.max_positions=256", "--data", shards, "--steps", "2", "--out", run]
        let wrong = try CLI.run(train + ["--tokenizer", other])
        #expect(wrong.code != 0 && wrong.err.contains(other) && wrong.err.contains("not the tokenizer of the shards"), "\(wrong.err)")
        #expect(try CLI.run(train + ["--tokenizer", tok]).code == 0)
        let ckpt = run + "/step-0000002"
        #expect(FileManager.default.fileExists(atPath: ckpt + "/tokenizer.json"))
        // A resume keeps the run's tokenizer without --tokenizer.
        #expect(try CLI.run(["train", "--resume", run, "--data", shards, "--steps", "3", "--reschedule"]).code == 0)
        #expect(FileManager.default.fileExists(atPath: run + "/step-0000003/tokenizer.json"))
        // generate finds it; another one is refused naming both files, unless allowed.
        let gen = ["generate", "--checkpoint", ckpt, "--prompt", "the cat", "--max-new-tokens", "3", "--greedy", "--json"]
        let g = try CLI.run(gen)
        #expect(g.code == 0, "\(g.err)")
        let generated = try CLI.json(g.out)
        #expect(generated["text"] as? String != nil)
        let refused = try CLI.run(gen + ["--tokenizer", other])
        #expect(refused.code != 0 && refused.err.contains(other) && refused.err.contains(ckpt + "/tokenizer.json"), "\(refused.err)")
        #expect(try CLI.run(gen + ["--tokenizer", other, "--allow-tokenizer-mismatch"]).code == 0)
        // eval: bits-per-byte with the model's own tokenizer; another one against the shards is refused.
        let e = try CLI.run(["eval", "--checkpoint", ckpt, "--data", shards, "--json"])
        #expect(e.code == 0, "\(e.err)")
        #expect(try CLI.json(e.out)["bits_per_byte"] as? Double != nil)
        let badEval = try CLI.run(["eval", "--checkpoint", ckpt, "--data", shards, "--tokenizer", other, "--allow-tokenizer-mismatch"])
        #expect(badEval.code == 0)
        let badEval2 = try CLI.run(["eval", "--model", CLI.packageRoot.appendingPathComponent("Tests/Fixtures/gpt2-tiny").path,
                                    "--data", shards, "--tokenizer", other])
        #expect(badEval2.code != 0 && badEval2.err.contains("not the tokenizer of the shards"), "\(badEval2.err)")
        // export: the HF folder has the tokenizer, its config and the end-of-text id, and encodes the same.
        let hf = tmp.appendingPathComponent("hf").path
        #expect(try CLI.run(["export", "--checkpoint", ckpt, "--out", hf]).code == 0)
        for f in ["tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
            #expect(FileManager.default.fileExists(atPath: hf + "/" + f), "\(f)")
        }
        let a = try CLI.run(["encode", "--tokenizer", tok, "--text", "the cat sat on the mat 3"])
        let b = try CLI.run(["encode", "--tokenizer", hf + "/tokenizer.json", "--text", "the cat sat on the mat 3"])
        #expect(a.code == 0 && a.out == b.out)
        // compare: bits-per-byte only with the shards' tokenizer.
        let cmp = try CLI.run(["compare", "nano", "vs", "nano-qwen3", "--data", shards, "--steps", "1", "--tokenizer", other,
                               "--set", "model.vocab_size=300", "--out", tmp.appendingPathComponent("cmp").path])
        #expect(cmp.code != 0 && cmp.err.contains("not the tokenizer of the shards"), "\(cmp.err)")
        // finetune sft finds the checkpoint's tokenizer, and what it saves carries it and the template it taught.
        let sft = tmp.appendingPathComponent("sft.jsonl").path
        try (0..<8).map { "{\"instruction\": \"say the cat \($0)\", \"output\": \"the cat sat on the mat\"}" }
            .joined(separator: "\n").write(toFile: sft, atomically: true, encoding: .utf8)
        let ft = tmp.appendingPathComponent("ft").path
        let f = try CLI.run(["finetune", "--method", "sft", "--checkpoint", ckpt, "--data", sft, "--steps", "1", "--out", ft])
        #expect(f.code == 0, "\(f.err)")
        let saved = (try? FileManager.default.contentsOfDirectory(atPath: ft)) ?? []
        let folder = saved.contains("tokenizer.json") ? ft : saved.map { ft + "/" + $0 }.first {
            FileManager.default.fileExists(atPath: $0 + "/tokenizer.json")
        } ?? ft
        #expect(FileManager.default.fileExists(atPath: folder + "/tokenizer.json"), "\(saved)")
        let chat = try CLI.run(["chat", "--checkpoint", folder, "--max-new-tokens", "2", "--temperature", "0"], input: "hi\n/quit\n")
        #expect(chat.code == 0 && chat.err.contains("template alpaca"), "\(chat.err)")
        let fromHF = try CLI.run(["generate", "--model", hf, "--prompt", "the cat", "--max-new-tokens", "3", "--greedy", "--json"])
        #expect(fromHF.code == 0, "\(fromHF.err)")
        #expect(try CLI.json(fromHF.out)["ids"] as? [Int] == generated["ids"] as? [Int])
    }
}
