import Foundation
import Testing

/// `toolkit chat` driven through its standard input as a user types: answers stream with the
/// family's template, equal to `generate --greedy` on the rendered prompt; /set, /save, /reset;
/// the oldest turn goes when the context fills.
@Suite struct ChatTests {
    @Test func aConversationThroughStandardInput() throws {
        let tmp = CLI.temp("chat")
        var text = ""
        for i in 0..<300 { text += "the cat sat on the mat \(i % 7) and the dog ran to the park.\n" }
        let corpus = tmp.appendingPathComponent("c.txt").path
        try text.write(toFile: corpus, atomically: true, encoding: .utf8)
        let model = tmp.appendingPathComponent("m").path
        #expect(try CLI.run(["build", "--recipe", "nano-qwen3", "--set", "model.vocab_size=300", "--out", model]).code == 0)
        #expect(try CLI.run(["train-tokenizer", "--input", corpus, "--vocab-size", "300", "--special", "<|endoftext|>",
                             "--special", "<|im_start|>", "--special", "<|im_end|>", "--out", model + "/tokenizer.json"]).code == 0)
        // The first answer equals greedy generation on the ChatML prompt (the model's tokenizer, found in its folder).
        let prompt = "<|im_start|>user\nthe cat<|im_end|>\n<|im_start|>assistant\n"
        let g = try CLI.run(["generate", "--checkpoint", model, "--prompt", prompt, "--max-new-tokens", "6", "--greedy",
                             "--stop", "<|im_end|>", "--json"])
        #expect(g.code == 0, "\(g.err)")
        let expected = try CLI.json(g.out)["text"] as? String ?? "?"
        let save = tmp.appendingPathComponent("conv.json").path
        let input = "the cat\n/set max_new_tokens 3\nthe dog\n/save \(save)\n/reset\n" + String(repeating: "the park and the mat\n", count: 6) + "/quit\n"
        let r = try CLI.run(["chat", "--checkpoint", model, "--max-new-tokens", "6", "--temperature", "0"], input: input)
        #expect(r.code == 0, "\(r.err)")
        #expect(r.err.contains("template chatml"))
        #expect(r.out.hasPrefix(expected), "\(r.out) vs \(expected)")  // streamed first
        #expect(r.out.contains("(max_new_tokens = 3)") && r.out.contains("(conversation reset)"))
        #expect(r.out.contains("(history truncated: dropped the oldest turn"), "\(r.out)")
        let saved = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: save))) as? [[String: String]]
        #expect(saved?.map { $0["role"] ?? "" } == ["user", "assistant", "user", "assistant"])
        #expect(saved?.first?["content"] == "the cat")
        #expect(saved?[1]["content"] == expected)
    }
}
