import Foundation
import Testing

/// `toolkit generate`'s options as a user meets them: the model's own EOS ids, temperature 0,
/// stop strings, and a file of prompts.
@Suite struct GenerationOptionsTests {
    static func ids(_ r: (code: Int32, out: String, err: String)) throws -> [Int] {
        #expect(r.code == 0, "\(r.err)")
        return try CLI.json(r.out.split(whereSeparator: \.isNewline).last.map(String.init) ?? "")["ids"] as? [Int] ?? []
    }

    /// eos_token_id from generation_config.json stops greedy decoding; temperature 0 is greedy.
    @Test func theModelsEOSStopsAndTemperatureZeroIsGreedy() throws {
        let tmp = CLI.temp("gen-eos")
        let src = CLI.packageRoot.appendingPathComponent("Tests/Fixtures/qwen3-tiny")
        let dir = tmp.appendingPathComponent("model")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        for f in ["config.json", "model.safetensors"] {
            try FileManager.default.copyItem(at: src.appendingPathComponent(f), to: dir.appendingPathComponent(f))
        }
        let base = ["generate", "--model", dir.path, "--prompt-ids", "5,6,7", "--max-new-tokens", "8", "--json"]
        let full = try Self.ids(CLI.run(base + ["--greedy"]))
        #expect(full.count == 8)
        #expect(try Self.ids(CLI.run(base + ["--temperature", "0"])) == full)
        // The third new token as EOS: decoding stops after it (its first occurrence).
        let stopAt = full.firstIndex(of: full[2])!
        try "{\"eos_token_id\": [99999, \(full[2])]}".write(to: dir.appendingPathComponent("generation_config.json"), atomically: true, encoding: .utf8)
        #expect(try Self.ids(CLI.run(base + ["--greedy"])) == Array(full[...stopAt]))
        let bad = try CLI.run(base + ["--temperature", "-1"])
        #expect(bad.code != 0 && bad.err.contains("--temperature"))
    }

    /// A stop string ends the output before it; a prompt file gives one output per line, each the
    /// same as that prompt alone.
    @Test func stopStringsAndPromptFiles() throws {
        let tmp = CLI.temp("gen-stop")
        // A checkpoint without a tokenizer (the last check needs one), and the tokenizer beside it.
        let tok = tmp.appendingPathComponent("tok.json").path
        try CLI.toyTokenizer(tmp, out: tok)
        let model = tmp.appendingPathComponent("m").path
        #expect(try CLI.run(["build", "--recipe", "nano", "--set", "model.vocab_size=300", "--out", model]).code == 0)
        let base = ["generate", "--checkpoint", model, "--tokenizer", tok, "--max-new-tokens", "24", "--greedy", "--json"]
        let whole = try CLI.json(CLI.run(base + ["--prompt", "the cat"]).out)
        let out = whole["text"] as? String ?? ""
        #expect(out.count >= 6, "\(out)")
        let chars = Array(out), stop = String(chars[3..<6])
        let cut = try CLI.json(CLI.run(base + ["--prompt", "the cat", "--stop", stop]).out)
        let expected = String(out[..<out.range(of: stop)!.lowerBound])
        #expect(cut["text"] as? String == expected, "stop '\(stop)' in '\(out)'")
        // Generation itself stopped there: fewer tokens, a prefix of the whole run's.
        let cutIDs = cut["ids"] as? [Int] ?? [], wholeIDs = whole["ids"] as? [Int] ?? []
        #expect(!cutIDs.isEmpty && cutIDs.count < wholeIDs.count && wholeIDs.starts(with: cutIDs), "\(cutIDs) vs \(wholeIDs)")
        // Three prompts, two of the same length (one batch): each output equals the prompt alone.
        let prompts = ["the cat", "the dog", "on the mat and"]
        let file = tmp.appendingPathComponent("p.txt").path
        try prompts.joined(separator: "\n").write(toFile: file, atomically: true, encoding: .utf8)
        let many = try CLI.run(base + ["--prompt-file", file])
        #expect(many.code == 0, "\(many.err)")
        let rows = try many.out.split(whereSeparator: \.isNewline).map { try CLI.json(String($0)) }
        #expect(rows.count == 3)
        for (i, p) in prompts.enumerated() {
            let alone = try CLI.json(CLI.run(base + ["--prompt", p]).out)
            #expect(rows[i]["ids"] as? [Int] == alone["ids"] as? [Int], "prompt \(i)")
        }
        let noTok = try CLI.run(["generate", "--checkpoint", model, "--prompt-ids", "1,2", "--stop", "x"])
        #expect(noTok.code != 0 && noTok.err.contains("--tokenizer"))
    }
}
