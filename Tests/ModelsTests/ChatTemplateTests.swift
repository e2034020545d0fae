import Testing
@testable import Models

/// The chat templates render as the families' HF templates do with `add_generation_prompt`.
@Suite struct ChatTemplateTests {
    static let conversation = [ChatMessage(role: "system", content: "Be brief."), ChatMessage(role: "user", content: "Hi"),
                               ChatMessage(role: "assistant", content: "Hello."), ChatMessage(role: "user", content: "Bye")]

    @Test func everyTemplateRendersAsItsFamily() {
        #expect(ChatTemplate.chatml.render(Self.conversation) == "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n"
                + "<|im_start|>assistant\nHello.<|im_end|>\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n")
        #expect(ChatTemplate.llama3.render(Self.conversation) == "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nBe brief.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello.<|eot_id|>"
                + "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n")
        #expect(ChatTemplate.gemma.render(Self.conversation) == "<bos><start_of_turn>user\nBe brief.\n\nHi<end_of_turn>\n"
                + "<start_of_turn>model\nHello.<end_of_turn>\n<start_of_turn>user\nBye<end_of_turn>\n<start_of_turn>model\n")
        let header = "Below is an instruction that describes a task. Write a response that appropriately completes the request.\n\n"
        #expect(ChatTemplate.alpaca.render(Self.conversation) == "Be brief.\n\n" + header + "### Instruction:\nHi\n\n### Response:\nHello.\n\n"
                + header + "### Instruction:\nBye\n\n### Response:\n")
    }

    @Test func defaultsAndStreamingCuts() {
        #expect(ChatTemplate.default(modelType: "qwen3", recorded: nil) == .chatml)
        #expect(ChatTemplate.default(modelType: "llama", recorded: nil) == .llama3)
        #expect(ChatTemplate.default(modelType: "gemma3_text", recorded: nil) == .gemma)
        #expect(ChatTemplate.default(modelType: "qwen3", recorded: "alpaca") == .alpaca)
        #expect("yes<|im_end|>junk".truncated(atFirstOf: ["<|im_end|>"]) == "yes")
        // A tail that may grow into a marker waits.
        func shown(_ text: String) -> String { var a = AnswerText(stops: ["<|im_end|>"]); return a.add(text).text }
        #expect(shown("yes<|im_") == "yes")
        #expect(shown("yes<") == "yes")
        #expect(shown("yes") == "yes")
    }
}
