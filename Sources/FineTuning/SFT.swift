import Foundation
import Models
import TensorCore
import ToolkitSupport
import Training

/// A token sequence with a per-token loss mask: `trainable[i]` says whether token i is a target
/// (predicted from the tokens before it). Prompt tokens are not.
public struct MaskedSequence: Sendable, Equatable {
    public var ids: [Int32]
    public var trainable: [Bool]

    public init(ids: [Int32], trainable: [Bool]) {
        self.ids = ids
        self.trainable = trainable
    }

    /// Text pieces with their trainability, each encoded on its own.
    public init(segments: [(text: String, trainable: Bool)], encode: (String) -> [Int32], eos: Int32? = nil) {
        ids = []
        trainable = []
        for (text, t) in segments {
            let piece = encode(text)
            ids += piece
            trainable += Array(repeating: t, count: piece.count)
        }
        if let eos {
            ids.append(eos)
            trainable.append(true)
        }
    }

    /// Keeps the first `n` tokens.
    public func truncated(to n: Int) -> MaskedSequence {
        MaskedSequence(ids: Array(ids.prefix(n)), trainable: Array(trainable.prefix(n)))
    }

    public var trainableCount: Int { trainable.dropFirst().filter { $0 }.count }
}

/// Prompt formats for instruction data.
public enum PromptTemplate {
    /// The Alpaca prompt (LFS ch07 `format_input`), ending with the response header.
    public static func alpaca(instruction: String, input: String) -> String {
        var s = "Below is an instruction that describes a task. Write a response that appropriately completes the request."
            + "\n\n### Instruction:\n" + instruction
        if !input.isEmpty { s += "\n\n### Input:\n" + input }
        return s + "\n\n### Response:\n"
    }

    /// Qwen chat template pieces: `<|im_start|>role\ncontent<|im_end|>\n` per message; only the
    /// assistant contents and their `<|im_end|>` are trainable.
    public static func chat(_ messages: [(role: String, content: String)]) -> [(text: String, trainable: Bool)] {
        var out: [(String, Bool)] = []
        for m in messages {
            let assistant = m.role == "assistant"
            out.append(("<|im_start|>\(m.role)\n", false))
            out.append((m.content + "<|im_end|>", assistant))
            out.append(("\n", false))
        }
        return out
    }
}

/// Instruction-tuning data: JSONL records with `instruction`/`input`/`output` (Alpaca), `messages`
/// (`[{role, content}]`, Qwen chat template) or `prompt`/`completion`; `text` trains on every token.
public enum SFTData {
    /// Text segments of one record (key errors name the line).
    public static func segments(_ obj: [String: Any], at location: String) throws -> (segments: [(text: String, trainable: Bool)], usesEOS: Bool) {
        func string(_ key: String) throws -> String? {
            guard let v = obj[key] else { return nil }
            guard let s = v as? String else { throw ToolkitError("\(location): key \(key) must be a string") }
            return s
        }
        if let messages = obj["messages"] {
            guard let list = messages as? [[String: Any]] else { throw ToolkitError("\(location): messages must be a list of objects") }
            var ms: [(String, String)] = []
            for (i, m) in list.enumerated() {
                guard let role = m["role"] as? String, let content = m["content"] as? String else {
                    throw ToolkitError("\(location): messages[\(i)] needs string role and content")
                }
                ms.append((role, content))
            }
            guard ms.contains(where: { $0.0 == "assistant" }) else { throw ToolkitError("\(location): messages has no assistant turn") }
            return (PromptTemplate.chat(ms), false)
        }
        if let instruction = try string("instruction") {
            guard let output = try string("output") else { throw ToolkitError("\(location): key output missing") }
            return ([(PromptTemplate.alpaca(instruction: instruction, input: try string("input") ?? ""), false), (output, true)], true)
        }
        if let prompt = try string("prompt") {
            guard let completion = try string("completion") else { throw ToolkitError("\(location): key completion missing") }
            return ([(prompt, false), (completion, true)], true)
        }
        if let text = try string("text") { return ([(text, true)], true) }
        throw ToolkitError("\(location): expected instruction/output, messages, prompt/completion or text")
    }

    /// The chat template a JSONL file's first record teaches: `chatml` for `messages`, `alpaca` for
    /// instruction records, nil otherwise (`toolkit chat` reads it from the checkpoint).
    public static func chatTemplate(ofFile path: String) -> String? {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8),
              let line = text.split(whereSeparator: \.isNewline).first(where: { !$0.allSatisfy(\.isWhitespace) }),
              let obj = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any] else { return nil }
        if obj["messages"] != nil { return "chatml" }
        if obj["instruction"] != nil { return "alpaca" }
        return nil
    }

    /// Encodes a JSONL file.
    public static func load(_ path: String, encode: (String) -> [Int32], eos: Int32?) throws -> [MaskedSequence] {
        try JSONL.read(path).map { obj, location in
            let (segs, usesEOS) = try segments(obj, at: location)
            return MaskedSequence(segments: segs, encode: encode, eos: usesEOS ? eos : nil)
        }
    }
}

extension SFTData {
    /// Drops examples with no target left within `maxLength + 1` tokens (a prompt that fills the
    /// context); returns the kept ones and how many were dropped.
    public static func usable(_ seqs: [MaskedSequence], maxLength: Int) -> (kept: [MaskedSequence], dropped: Int) {
        let kept = seqs.filter { $0.truncated(to: maxLength + 1).trainableCount > 0 }
        return (kept, seqs.count - kept.count)
    }
}

/// Collation of masked sequences into `Batch`es (inputs `[B, T]`, targets shifted by one,
/// −100 for prompt and padding targets).
public enum SequenceBatching {
    /// Right-pads each sequence (truncated to `maxLength + 1` tokens) with `padID` to the longest.
    public static func pad(_ seqs: [MaskedSequence], padID: Int32, maxLength: Int) -> Batch {
        let cut = seqs.map { $0.truncated(to: maxLength + 1) }
        let t = max(1, cut.map { $0.ids.count - 1 }.max() ?? 1)
        var input: [Int32] = [], targets: [Int32] = []
        for s in cut {
            for i in 0..<t {
                input.append(i < s.ids.count ? s.ids[i] : padID)
                targets.append(i + 1 < s.ids.count && s.trainable[i + 1] ? s.ids[i + 1] : -100)
            }
        }
        return Batch(input: input, targets: targets, rows: cut.count)
    }

    /// Packs sequences back to back into rows of `seqLen + 1` tokens (the last row padded);
    /// targets keep each token's own mask, so prompts stay masked across boundaries. Rows without any
    /// target are left out.
    public static func pack(_ seqs: [MaskedSequence], seqLen: Int, padID: Int32) -> [Batch] {
        var ids: [Int32] = [], mask: [Bool] = []
        for s in seqs { ids += s.ids; mask += s.trainable }
        var rows: [MaskedSequence] = []
        var start = 0
        while start + 1 < ids.count {
            let end = min(ids.count, start + seqLen + 1)
            var r = MaskedSequence(ids: Array(ids[start..<end]), trainable: Array(mask[start..<end]))
            while r.ids.count < seqLen + 1 { r.ids.append(padID); r.trainable.append(false) }
            rows.append(r)
            start += seqLen  // rows overlap by one token: the last input's target starts the next row
        }
        // A row holding only prompt tokens has no target: it would contribute nothing (and alone, a NaN mean).
        return rows.map { pad([$0], padID: padID, maxLength: seqLen) }.filter { $0.targets.contains { $0 != -100 } }
    }

    /// Concatenates single- or multi-row batches of equal width.
    public static func stack(_ batches: [Batch]) -> Batch {
        Batch(input: batches.flatMap(\.input), targets: batches.flatMap(\.targets), rows: batches.reduce(0) { $0 + $1.rows })
    }
}

/// The SFT objective: mean next-token cross-entropy over response targets only (the model's LM
/// loss, `DecoderModel.crossEntropy`, on targets masked to the responses).
public enum SFTLoss {
    public static func loss(model: DecoderModel, batch: Batch, dropoutSeed: UInt64? = nil) throws -> Tensor {
        try model.crossEntropy(batch.input, targets: batch.targets, batch: batch.rows, dropoutSeed: dropoutSeed)
    }

    /// Token-weighted mean loss and perplexity over batches (no gradients).
    public static func evaluate(model: DecoderModel, batches: [Batch]) throws -> [String: Double] {
        var total = 0.0, count = 0
        try GradMode.withoutGrad {
            for b in batches {
                let n = b.targets.filter { $0 != -100 }.count
                guard n > 0 else { continue }
                total += Double(try loss(model: model, batch: b).item()) * Double(n)
                count += n
            }
        }
        let mean = total / Double(max(count, 1))
        return ["loss": mean, "perplexity": Foundation.exp(mean)]
    }
}
