import ArgumentParser
import Foundation
import Models
import Tokenization
import TensorCore
import ToolkitSupport

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a KV cache (greedy or temperature / top-k / top-p sampling).")

    @OptionGroup var source: ModelSourceOptions
    @Option(help: "Prompt text (needs --tokenizer).") var prompt: String?
    @Option(help: "Tokenizer file for --prompt and for printing text.") var tokenizer: String?
    @Option(help: "Prompt token ids, e.g. 1,2,3.") var promptIds: String?
    @Option(help: "Tokens to generate.") var maxNewTokens = 64
    @Flag(help: "Greedy decoding (argmax).") var greedy = false
    @Option(help: "Sampling temperature (> 0).") var temperature: Float = 1
    @Option(help: "Sample from the k most likely tokens.") var topK: Int?
    @Option(help: "Nucleus sampling: smallest set with probability >= p.") var topP: Float?
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Stop at this token id (default: the model's or tokenizer's end-of-text id).") var eos: [Int32] = []
    @Flag(help: "Recompute the whole sequence each step instead of using the KV cache.") var noCache = false
    @Flag(help: "Print one JSON object: new ids, text and timings.") var json = false

    func validate() throws {
        guard (prompt == nil) != (promptIds == nil) else { throw ValidationError("give exactly one of --prompt or --prompt-ids") }
        if prompt != nil && tokenizer == nil { throw ValidationError("--prompt needs --tokenizer") }
        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
        guard temperature > 0 else { throw ValidationError("--temperature must be positive") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
    }

    struct Output: Codable {
        var ids: [Int32]
        var text: String?
        var prefill_tokens_per_s: Double
        var decode_tokens_per_s: Double
        var prefill_seconds: Double
        var decode_seconds: Double
    }

    func run() throws {
        let model = try source.load()
        let text = try TextCodec.load(tokenizer)
        let ids: [Int32] = try promptIds.map { try parseIDs($0, flag: "--prompt-ids") } ?? text!.encode(prompt!)
        let sampling = SamplingOptions(greedy: greedy, temperature: temperature, topK: topK, topP: topP, seed: seed)
        let stops = Set(eos.isEmpty ? (text?.endOfText.map { [$0] } ?? []) : eos)
        var streamer = text?.streamer()
        if !json, let prompt { FileHandle.standardOutput.write(Data(prompt.utf8)) }
        let r = try Generator(model: model).generate(
            prompts: [ids], maxNewTokens: maxNewTokens, sampling: sampling, eos: stops, useCache: !noCache
        ) { next in
            guard !json else { return }
            if var s = streamer {
                FileHandle.standardOutput.write(Data(s.push(next[0]).utf8))
                streamer = s
            } else {
                FileHandle.standardOutput.write(Data("\(next[0]) ".utf8))
            }
        }
        let new = r.newTokens[0]
        let prefillRate = Double(r.prefillTokens) / max(r.prefillSeconds, 1e-9)
        let decodeRate = Double(r.decodeTokens) / max(r.decodeSeconds, 1e-9)
        if json {
            print(try jsonLine(Output(ids: new, text: text?.decode(new), prefill_tokens_per_s: prefillRate,
                                      decode_tokens_per_s: decodeRate, prefill_seconds: r.prefillSeconds,
                                      decode_seconds: r.decodeSeconds)))
        } else {
            if var s = streamer { FileHandle.standardOutput.write(Data(s.flush().utf8)) }
            print("")
            printError(String(format: "prefill %d tok at %.1f tok/s, decode %d tok at %.1f tok/s", r.prefillTokens, prefillRate,
                              r.decodeTokens, decodeRate))
        }
    }
}

/// Text ↔ ids for commands that take a tokenizer.
struct TextCodec {
    let tokenizer: BPETokenizer

    var endOfText: Int32? { tokenizer.endOfTextID.map { Int32($0) } }

    func encode(_ text: String) throws -> [Int32] { tokenizer.encode(text).map { Int32($0) } }

    func decode(_ ids: [Int32]) -> String { (try? tokenizer.decode(ids)) ?? "" }

    /// Incremental decoding that never splits a UTF-8 character.
    struct Streamer {
        var decoder: StreamingDecoder
        mutating func push(_ id: Int32) -> String { (try? decoder.push(Int(id))) ?? "\u{FFFD}" }
        mutating func flush() -> String { decoder.finish() }
    }

    func streamer() -> Streamer { Streamer(decoder: StreamingDecoder(tokenizer: tokenizer)) }

    static func load(_ path: String?) throws -> TextCodec? {
        guard let path else { return nil }
        return TextCodec(tokenizer: try BPETokenizer.load(path: path))
    }
}

struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Prefill and decode tokens/s at batch 1 with a KV cache.")

    @Option(help: "Recipe (random weights).") var recipe: String?
    @Option(help: "HF model folder or toolkit checkpoint.") var model: String?
    @Option(help: "Prompt length.") var promptLen = 64
    @Option(help: "New tokens.") var newTokens = 128
    @Option(help: "Repeats (median reported).") var repeats = 3
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (recipe == nil) != (model == nil) else { throw ValidationError("give exactly one of --recipe or --model") }
        guard promptLen >= 1, newTokens >= 2, repeats >= 1 else {
            throw ValidationError("--prompt-len >= 1, --new-tokens >= 2 and --repeats >= 1 are required")
        }
    }

    struct Output: Codable {
        var prefill_tokens_per_s: Double
        var decode_tokens_per_s: Double
        var prompt_len: Int
        var new_tokens: Int
    }

    func run() throws {
        let m = try recipe.map { try ModelBuilder.build(Recipe.load($0)) } ?? ModelIO.load(model!)
        var rng = SplitMix64(seed: 7)
        let prompt = (0..<promptLen).map { _ in Int32(rng.next() % UInt64(m.dims.vocabSize)) }
        var pre: [Double] = [], dec: [Double] = []
        let gen = Generator(model: m)
        _ = try gen.generate(prompts: [prompt], maxNewTokens: 4)  // warm-up
        for _ in 0..<repeats {
            let r = try gen.generate(prompts: [prompt], maxNewTokens: newTokens)
            pre.append(Double(r.prefillTokens) / r.prefillSeconds)
            dec.append(Double(r.decodeTokens) / r.decodeSeconds)
        }
        let out = Output(prefill_tokens_per_s: Stats.median(pre), decode_tokens_per_s: Stats.median(dec),
                         prompt_len: promptLen, new_tokens: newTokens)
        if json { print(try jsonLine(out)) } else {
            print(String(format: "prefill %.1f tok/s, decode %.1f tok/s (batch 1, prompt %d, %d new tokens, median of %d)",
                         out.prefill_tokens_per_s, out.decode_tokens_per_s, promptLen, newTokens, repeats))
        }
    }
}
