import Foundation

/// One turn of a conversation.
public struct ChatMessage: Codable, Sendable, Equatable {
    public var role: String
    public var content: String
    public init(role: String, content: String) {
        self.role = role
        self.content = content
    }
}

/// How a family's instruction-tuned models expect a conversation, as their HF chat templates render
/// it with `add_generation_prompt`.
/// - `chatml` (Qwen3, SmolLM3): `<|im_start|>role\ncontent<|im_end|>\n` per message, then `<|im_start|>assistant\n`;
/// - `llama3`: `<|begin_of_text|>`, `<|start_header_id|>role<|end_header_id|>\n\ncontent<|eot_id|>` per message;
/// - `gemma`: `<bos>`, `<start_of_turn>user\n…<end_of_turn>\n`, the model's turns as `model`, a system
///   prompt folded into the first user turn (Gemma has no system role);
/// - `alpaca`: the book's instruction format (`finetune sft` on instruction/output records), earlier
///   exchanges as earlier instruction/response pairs.
public enum ChatTemplate: String, CaseIterable, Sendable {
    case chatml, llama3, gemma, alpaca

    /// The text the model reads before its next answer.
    public func render(_ messages: [ChatMessage]) -> String {
        switch self {
        case .chatml:
            return messages.map { "<|im_start|>\($0.role)\n\($0.content)<|im_end|>\n" }.joined() + "<|im_start|>assistant\n"
        case .llama3:
            return "<|begin_of_text|>" + messages.map { "<|start_header_id|>\($0.role)<|end_header_id|>\n\n\($0.content)<|eot_id|>" }.joined()
                + "<|start_header_id|>assistant<|end_header_id|>\n\n"
        case .gemma:
            var s = "<bos>", system = ""
            for m in messages {
                switch m.role {
                case "system": system = m.content + "\n\n"
                case "assistant": s += "<start_of_turn>model\n\(m.content)<end_of_turn>\n"
                default:
                    s += "<start_of_turn>user\n\(system)\(m.content)<end_of_turn>\n"
                    system = ""
                }
            }
            return s + "<start_of_turn>model\n"
        case .alpaca:
            var s = messages.first { $0.role == "system" }?.content.appending("\n\n") ?? ""
            var pending: String?
            for m in messages where m.role != "system" {
                if m.role == "assistant", let instruction = pending {
                    s += Self.alpaca(instruction) + m.content + "\n\n"
                    pending = nil
                } else if m.role != "assistant" {
                    pending = m.content
                }
            }
            return s + Self.alpaca(pending ?? "")
        }
    }

    /// The book's (LFS ch07) prompt for one instruction.
    static func alpaca(_ instruction: String) -> String {
        "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            + "\n\n### Instruction:\n" + instruction + "\n\n### Response:\n"
    }

    /// Text that ends the model's turn (also matched as a special token when the tokenizer has it).
    public var endOfTurn: [String] {
        switch self {
        case .chatml: return ["<|im_end|>"]
        case .llama3: return ["<|eot_id|>"]
        case .gemma: return ["<end_of_turn>"]
        case .alpaca: return ["\n\n### Instruction:", "\n### Instruction:"]
        }
    }

    /// The template a model's family uses (HF `model_type`), or one a fine-tuning recorded.
    public static func `default`(modelType: String?, recorded: String?) -> ChatTemplate {
        if let recorded, let t = ChatTemplate(rawValue: recorded) { return t }
        switch modelType {
        case "llama": return .llama3
        case "gemma3_text": return .gemma
        case "gpt2": return .alpaca
        default: return .chatml
        }
    }
}
