import ArgumentParser
import Foundation
import Layers
import Models
import Tokenization
import TensorCore
import ToolkitSupport

struct Generate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Generate text with a KV cache (greedy or temperature / top-k / top-p sampling).")

    @OptionGroup var source: ModelSourceOptions
    @Option(help: "Prompt text (needs --tokenizer).") var prompt: String?
    @Option(help: "Tokenizer file for --prompt and for printing text (default: the model folder's tokenizer.json).")
    var tokenizer: String?
    @Flag(help: "Use --tokenizer even when it differs from the model's own tokenizer.json.") var allowTokenizerMismatch = false
    @Option(help: "Prompt token ids, e.g. 1,2,3.") var promptIds: String?
    @Option(help: "A file of prompts, one per line (needs --tokenizer); prompts of equal token length decode as one batch.")
    var promptFile: String?
    @Option(help: "Tokens to generate.") var maxNewTokens = 64
    @Flag(help: "Greedy decoding (argmax).") var greedy = false
    @Option(help: "Sampling temperature (0: greedy; default: the model's generation_config.json, else 1).") var temperature: Float?
    @Option(help: "Sample from the k most likely tokens.") var topK: Int?
    @Option(help: "Nucleus sampling: smallest set with probability >= p.") var topP: Float?
    @Option(help: "Keep tokens with probability >= min-p × the most likely one's.") var minP: Float?
    @Option(help: "HF repetition penalty over the prompt and the output (1: off).") var repetitionPenalty: Float?
    @Option(help: "Subtracted from the logit of every token already generated (OpenAI presence_penalty).") var presencePenalty: Float = 0
    @Option(help: "Subtracted once per earlier occurrence in the output (OpenAI frequency_penalty).") var frequencyPenalty: Float = 0
    @Option(help: "Stop when the output contains this text (repeatable; needs --tokenizer; not printed).") var stop: [String] = []
    @Option(help: "Sampling seed.") var seed: UInt64 = 0
    @Option(help: "Stop at this token id (default: the model's eos_token_id from config.json / generation_config.json, else the tokenizer's end-of-text id).")
    var eos: [Int32] = []
    @Flag(help: "Recompute the whole sequence each step instead of using the KV cache.") var noCache = false
    @Option(help: "Decode path: fast (single-token C kernels; falls back to tensor for MoE/adapters) or tensor.")
    var decoder: DecoderPath = .fast
    @Option(help: "Weights of the fast decoder: f32 (exact), bf16 or int8 (per-row weight-only quantisation).")
    var weights: DecodeWeightFormat = .f32
    @Flag(help: "Print one JSON object: new ids, text and timings.") var json = false

    func validate() throws {
        guard [prompt != nil, promptIds != nil, promptFile != nil].filter({ $0 }).count == 1 else {
            throw ValidationError("give exactly one of --prompt, --prompt-ids or --prompt-file")
        }

        guard maxNewTokens >= 1 else { throw ValidationError("--max-new-tokens must be at least 1") }
        if let temperature, !(temperature >= 0 && temperature.isFinite) { throw ValidationError("--temperature must be >= 0") }
        if let topK, topK < 1 { throw ValidationError("--top-k must be at least 1") }
        if let topP, !(topP > 0 && topP <= 1) { throw ValidationError("--top-p must be in (0, 1]") }
        if let minP, !(minP >= 0 && minP <= 1) { throw ValidationError("--min-p must be in [0, 1]") }
        if let repetitionPenalty, !(repetitionPenalty > 0 && repetitionPenalty.isFinite) {
            throw ValidationError("--repetition-penalty must be positive")
        }
        guard presencePenalty.isFinite, frequencyPenalty.isFinite else { throw ValidationError("penalties must be finite numbers") }
        if stop.contains("") { throw ValidationError("--stop: an empty string would stop at once") }
        if weights != .f32 && (decoder == .tensor || noCache) {
            throw ValidationError("--weights \(weights.rawValue) needs the fast decoder with the KV cache")
        }
    }

    struct Output: Codable {
        var ids: [Int32]
        var text: String?
        var prefill_tokens_per_s: Double
        var decode_tokens_per_s: Double
        var prefill_seconds: Double
        var decode_seconds: Double
        var decoder: String
        var weights: String
    }

    /// The sampling settings: flags first, then the model folder's generation_config.json, then the
    /// defaults (temperature 1, no penalties). `--greedy` or a temperature of 0 means argmax.
    func sampling(_ d: GenerationDefaults) -> SamplingOptions {
        let t = temperature ?? d.temperature ?? 1
        let sample = temperature.map { $0 > 0 } ?? d.doSample ?? true
        return SamplingOptions(greedy: greedy || t == 0 || !sample, temperature: t, topK: topK ?? d.topK, topP: topP ?? d.topP,
                               minP: minP ?? d.minP, repetitionPenalty: repetitionPenalty ?? d.repetitionPenalty ?? 1,
                               presencePenalty: presencePenalty, frequencyPenalty: frequencyPenalty, seed: seed)
    }

    func run() throws {
        let model = try source.load()
        let defaults = try GenerationDefaults.load(folder: source.path)
        let text = try TextCodec.load(try resolveTokenizer(explicit: tokenizer, modelFolder: source.path, allowMismatch: allowTokenizerMismatch))
        if (prompt != nil || promptFile != nil || !stop.isEmpty) && text == nil {
            throw ValidationError("--prompt, --prompt-file and --stop need a tokenizer: --tokenizer FILE, or a tokenizer.json in the model folder")
        }
        var prompts: [[Int32]]
        if let promptIds {
            prompts = [try parseIDs(promptIds, flag: "--prompt-ids")]
        } else if let promptFile {
            let lines = try String(contentsOfFile: promptFile, encoding: .utf8).split(whereSeparator: \.isNewline).map(String.init)
            prompts = try lines.filter { !$0.isEmpty }.map { try text!.encode($0) }
            guard !prompts.isEmpty else { throw ToolkitError.file(promptFile, "no prompts (one per line)") }
        } else {
            prompts = [try text!.encode(prompt!)]
        }
        let sampling = sampling(defaults)
        let stops = Set(!eos.isEmpty ? eos : !defaults.eosTokenIds.isEmpty ? defaults.eosTokenIds : (text?.endOfText.map { [$0] } ?? []))
        // Stop strings: each row's text, decoded token by token, reaches one (it is cut off there when printed).
        var answers = prompts.map { _ in (text?.streamer(), AnswerText(stops: stop)) }
        let stopCheck: ((Int, [Int32]) -> Bool)? = stop.isEmpty ? nil : { r, new in
            answers[r].1.add(answers[r].0!.push(new.last!)).stopped
        }
        if prompts.count > 1 { return try runMany(model, prompts, sampling: sampling, stops: stops, text: text!, stopCheck: stopCheck) }
        let ids = prompts[0]
        var streamer = stop.isEmpty ? text?.streamer() : nil  // with stop strings the text is printed once, cut
        let engine = try decoder.engine(for: model, weights: weights, useCache: !noCache, quiet: json)
        if !json, let prompt { FileHandle.standardOutput.write(Data(prompt.utf8)) }
        let r = try Generator(model: model).generate(
            prompts: [ids], maxNewTokens: maxNewTokens, sampling: sampling, eos: stops, useCache: !noCache, engine: engine,
            stop: stopCheck, onStep: { next in
                guard !json, stop.isEmpty else { return }
                if var s = streamer {
                    FileHandle.standardOutput.write(Data(s.push(next[0]).utf8))
                    streamer = s
                } else {
                    FileHandle.standardOutput.write(Data("\(next[0]) ".utf8))
                }
            })
        let new = r.newTokens[0]
        let prefillRate = Double(r.prefillTokens) / max(r.prefillSeconds, 1e-9)
        let decodeRate = Double(r.decodeTokens) / max(r.decodeSeconds, 1e-9)
        let output = text.map { $0.decode(new).truncated(atFirstOf: stop) }
        if json {
            print(try jsonLine(Output(ids: new, text: output, prefill_tokens_per_s: prefillRate,
                                      decode_tokens_per_s: decodeRate, prefill_seconds: r.prefillSeconds,
                                      decode_seconds: r.decodeSeconds, decoder: engine == nil ? "tensor" : "fast",
                                      weights: engine?.format.rawValue ?? "f32")))
        } else {
            if !stop.isEmpty, let output { FileHandle.standardOutput.write(Data(output.utf8)) }
            if var s = streamer { FileHandle.standardOutput.write(Data(s.flush().utf8)) }
            print("")
            printError(String(format: "prefill %d tok at %.1f tok/s, decode %d tok at %.1f tok/s", r.prefillTokens, prefillRate,
                              r.decodeTokens, decodeRate))
        }
    }

    /// A prompt file: prompts of equal token length decode together as one batch (the tensor
    /// path), the groups one after another; outputs in the file's order, one line (or JSON object) each.
    func runMany(_ model: DecoderModel, _ prompts: [[Int32]], sampling: SamplingOptions, stops: Set<Int32>, text: TextCodec,
                 stopCheck: ((Int, [Int32]) -> Bool)?) throws {
        struct Row: Codable { var prompt: Int; var ids: [Int32]; var text: String }
        var outputs = [[Int32]](repeating: [], count: prompts.count)
        let groups = Dictionary(grouping: prompts.indices, by: { prompts[$0].count })
        for (_, members) in groups.sorted(by: { $0.key < $1.key }) {
            let r = try Generator(model: model).generate(
                prompts: members.map { prompts[$0] }, maxNewTokens: maxNewTokens, sampling: sampling, eos: stops, useCache: !noCache,
                stop: stopCheck)
            for (row, index) in members.enumerated() { outputs[index] = r.newTokens[row] }
        }
        for (i, ids) in outputs.enumerated() {
            let s = text.decode(ids).truncated(atFirstOf: stop)
            if json { print(try jsonLine(Row(prompt: i, ids: ids, text: s))) } else { print(s.replacingOccurrences(of: "\n", with: " ")) }
        }
    }
}

/// Which code decodes tokens after the prompt.
enum DecoderPath: String, ExpressibleByArgument, CaseIterable {
    case fast, tensor

    /// The engine to use, or nil for the tensor path (also when the model needs it: MoE, adapters).
    func engine(for model: DecoderModel, weights: DecodeWeightFormat, useCache: Bool, quiet: Bool) throws -> DecodeEngine? {
        guard self == .fast, useCache else { return nil }
        if let reason = DecodeEngine.unsupportedReason(model) {
            if weights != .f32 { throw ToolkitError("--weights \(weights.rawValue): \(reason), so only the tensor path (f32) can decode it") }
            if !quiet { printError("note: using the tensor decoder (\(reason))") }
            return nil
        }
        return try DecodeEngine(model: model, format: weights)
    }
}

extension DecodeWeightFormat: ExpressibleByArgument {}

struct BenchGenerate: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Prefill and decode tokens/s at batch 1 with a KV cache.")

    @Option(help: "Recipe (random weights).") var recipe: String?
    @Option(help: "HF model folder or toolkit checkpoint.") var model: String?
    @Option(help: "Prompt length.") var promptLen = 64
    @Option(help: "New tokens.") var newTokens = 128
    @Option(help: "Repeats (median reported).") var repeats = 5
    @Option(help: "Paths to time, comma-separated: tensor (the baseline), f32, bf16, int8 (the fast decoder's weights).")
    var paths = "tensor,f32,bf16,int8"
    @Flag(help: "Also time every repeat with a busy process beside it (one core of integer work), interleaved with the idle runs.")
    var contend = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard (recipe == nil) != (model == nil) else { throw ValidationError("give exactly one of --recipe or --model") }
        guard promptLen >= 1, newTokens >= 2, repeats >= 1 else {
            throw ValidationError("--prompt-len >= 1, --new-tokens >= 2 and --repeats >= 1 are required")
        }
        _ = try selectedPaths()
    }

    /// nil stands for the tensor path.
    func selectedPaths() throws -> [DecodeWeightFormat?] {
        try paths.split(separator: ",").map { name in
            if name == "tensor" { return nil }
            guard let f = DecodeWeightFormat(rawValue: String(name)) else {
                throw ValidationError("--paths: unknown path '\(name)' (tensor, f32, bf16, int8)")
            }
            return f
        }
    }

    struct Row: Codable {
        var decoder: String
        var weights: String
        var prefill_tokens_per_s: Double
        var decode_tokens_per_s: Double
        /// Decode tokens/s over the tensor path's (when it ran).
        var speedup: Double?
        var weight_bytes_per_token: Int?
        /// Largest |logit − f32 tensor logit| over the decode steps, and the share of steps whose
        /// argmax agrees with the f32 tensor path (same prompt and tokens).
        var max_abs_logit_diff: Double
        var argmax_agreement: Double
        /// With --contend: decode tokens/s beside a busy process, and its ratio to the idle figure
        /// (medians of interleaved repeats).
        var contended_decode_tokens_per_s: Double?
        var contended_ratio: Double?
    }

    struct Output: Codable {
        var rows: [Row]
        var prompt_len: Int
        var new_tokens: Int
        var repeats: Int
    }

    func run() throws {
        let m = try recipe.map { try ModelBuilder.build(Recipe.load($0)) } ?? ModelIO.load(model!)
        var rng = SplitMix64(seed: 7)
        let prompt = (0..<promptLen).map { _ in Int32(rng.next() % UInt64(m.dims.vocabSize)) }
        let gen = Generator(model: m)
        var runs: [(String, DecodeEngine?)] = []
        for f in try selectedPaths() {
            guard let f else { runs.append(("tensor", nil)); continue }
            if let reason = DecodeEngine.unsupportedReason(m) {
                printError("note: skipping the fast decoder (\(reason))")
                continue
            }
            runs.append(("fast", try DecodeEngine(model: m, format: f)))
        }
        // Reference: the tensor path's logits for a fixed token sequence (greedy from the prompt).
        let reference = try gen.generate(prompts: [prompt], maxNewTokens: newTokens, keepStepLogits: true)
        var rows: [Row] = []
        for (name, engine) in runs {
            _ = try gen.generate(prompts: [prompt], maxNewTokens: 4, engine: engine)  // warm-up
            var pre: [Double] = [], dec: [Double] = [], busy: [Double] = []
            for _ in 0..<repeats {
                let r = try gen.generate(prompts: [prompt], maxNewTokens: newTokens, engine: engine)
                pre.append(Double(r.prefillTokens) / r.prefillSeconds)
                dec.append(Double(r.decodeTokens) / r.decodeSeconds)
                if contend {
                    guard let neighbour = SystemPolicy.BusyNeighbour() else {
                        throw ValidationError("--contend: could not start the busy process")
                    }
                    let rc = try gen.generate(prompts: [prompt], maxNewTokens: newTokens, engine: engine)
                    neighbour.stop()
                    busy.append(Double(rc.decodeTokens) / rc.decodeSeconds)
                }
            }
            let (diff, agree) = try agreement(gen, prompt, reference, engine)
            let decode = Stats.median(dec)
            rows.append(Row(decoder: name, weights: engine?.format.rawValue ?? "f32", prefill_tokens_per_s: Stats.median(pre),
                            decode_tokens_per_s: decode, speedup: rows.first { $0.decoder == "tensor" }.map { decode / $0.decode_tokens_per_s } ?? (engine == nil ? 1 : nil),
                            weight_bytes_per_token: engine?.matrixBytes, max_abs_logit_diff: diff, argmax_agreement: agree,
                            contended_decode_tokens_per_s: busy.isEmpty ? nil : Stats.median(busy),
                            contended_ratio: busy.isEmpty ? nil : Stats.median(busy) / decode))
        }
        let out = Output(rows: rows, prompt_len: promptLen, new_tokens: newTokens, repeats: repeats)
        if json { print(try jsonLine(out)); return }
        print(String(format: "batch 1, prompt %d, %d new tokens, median of %d, SIMD %@, %d cores", promptLen, newTokens, repeats,
                     SIMDLevel.current.rawValue, SystemPolicy.availableCores))
        print("decoder  weights  prefill tok/s  decode tok/s  vs tensor  weight MB/token  max|dlogit|  argmax agree"
              + (contend ? "  busy-neighbour tok/s (ratio)" : ""))
        for r in rows {
            let mb = r.weight_bytes_per_token.map { String(format: "%.1f", Double($0) / 1e6) } ?? "-"
            let speedup = r.speedup.map { String(format: "%.2fx", $0) } ?? "-"
            let busy = r.contended_decode_tokens_per_s.map { String(format: "  %13.1f (%.2f)", $0, r.contended_ratio ?? 0) } ?? ""
            print(String(format: "%-8@ %-8@ %13.1f %13.1f %10@ %16@ %12.2e %12.3f", r.decoder as NSString, r.weights as NSString,
                         r.prefill_tokens_per_s, r.decode_tokens_per_s, speedup as NSString, mb as NSString, r.max_abs_logit_diff,
                         r.argmax_agreement) + busy)
        }
    }

    /// Feeds the reference's tokens through `engine` (teacher forcing) and compares each step's logits.
    private func agreement(_ gen: Generator, _ prompt: [Int32], _ reference: GenerationResult, _ engine: DecodeEngine?)
        throws -> (Double, Double)
    {
        guard let engine else { return (0, 1) }
        let m = gen.model
        let cache = m.makeCache(batch: 1, capacity: prompt.count + newTokens)
        _ = try GradMode.withoutGrad { try m.hiddenStates(prompt, batch: 1, cache: cache) }
        cache.advance(by: prompt.count)
        var maxDiff = 0.0, agree = 0
        let tokens = reference.newTokens[0]
        for i in 1..<min(tokens.count, reference.stepLogits.count) {
            let row = try engine.step(token: tokens[i - 1], cache: cache)
            let ref = reference.stepLogits[i]
            var best = 0, refBest = 0
            for j in 0..<ref.count {
                maxDiff = max(maxDiff, Double(abs(row[j] - ref[j])))
                if row[j] > row[best] { best = j }
                if ref[j] > ref[refBest] { refBest = j }
            }
            if best == refBest { agree += 1 }
        }
        return (maxDiff, Double(agree) / Double(max(1, min(tokens.count, reference.stepLogits.count) - 1)))
    }
}
