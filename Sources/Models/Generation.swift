import Foundation
import Layers
import TensorCore
import ToolkitSupport

/// How the next token is chosen. The order is HF's and vLLM's: penalties on the logits, then
/// argmax (greedy) or temperature → top-k → top-p → min-p → a draw.
public struct SamplingOptions: Sendable, Equatable {
    /// Argmax (first maximum on ties) after the penalties; temperature, top-k/p and min-p are ignored.
    public var greedy: Bool
    /// Logits are divided by the temperature (> 0).
    public var temperature: Float
    /// Keep only the k most likely tokens (nil: all).
    public var topK: Int?
    /// Keep the smallest set whose probability reaches p, always including the most likely token (nil: all).
    public var topP: Float?
    /// Keep tokens whose probability is at least `minP` times the most likely one's (nil: all).
    public var minP: Float?
    /// HF `repetition_penalty` over the prompt and the generated tokens: a positive logit is divided
    /// by it, a negative one multiplied (1: off).
    public var repetitionPenalty: Float
    /// OpenAI / vLLM, over the generated tokens: `presence` is subtracted once from a token that has
    /// appeared, `frequency` once per appearance (0: off).
    public var presencePenalty: Float
    public var frequencyPenalty: Float
    public var seed: UInt64

    public init(greedy: Bool = true, temperature: Float = 1, topK: Int? = nil, topP: Float? = nil, minP: Float? = nil,
                repetitionPenalty: Float = 1, presencePenalty: Float = 0, frequencyPenalty: Float = 0, seed: UInt64 = 0) {
        self.greedy = greedy
        self.temperature = temperature
        self.topK = topK
        self.topP = topP
        self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.presencePenalty = presencePenalty
        self.frequencyPenalty = frequencyPenalty
        self.seed = seed
    }

    public var penalises: Bool { repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0 }
}

/// What a row has seen, for the penalties: the prompt's tokens and the generated tokens' counts.
public struct TokenHistory: Sendable {
    public var context: Set<Int32>
    public var generated: [Int32: Int] = [:]
    public init(prompt: [Int32]) { context = Set(prompt) }
    public mutating func add(_ t: Int32) {
        context.insert(t)
        generated[t, default: 0] += 1
    }
}

/// The result of a generation call.
public struct GenerationResult: Sendable {
    /// New tokens per row (up to and including an EOS token).
    public var newTokens: [[Int32]]
    /// The logits of each decoding step, `[steps][batch·V]` (when requested).
    public var stepLogits: [[Float]]
    public var prefillTokens: Int
    public var prefillSeconds: Double
    public var decodeTokens: Int
    public var decodeSeconds: Double
}

/// Autoregressive decoding with a KV cache sized by KV heads (or full recomputation).
public struct Generator {
    public let model: DecoderModel

    public init(model: DecoderModel) { self.model = model }

    /// Chooses one token from a row of logits (penalised by `history` when given).
    public static func sample(_ raw: UnsafeBufferPointer<Float>, _ o: SamplingOptions, history: TokenHistory? = nil,
                              rng: inout SplitMix64) -> Int32 {
        var penalised: [Float] = []
        if o.penalises, let history {
            penalised = Array(raw)
            for t in history.context where Int(t) < penalised.count {
                let x = penalised[Int(t)]
                penalised[Int(t)] = x > 0 ? x / o.repetitionPenalty : x * o.repetitionPenalty
            }
            for (t, n) in history.generated where Int(t) < penalised.count {
                penalised[Int(t)] -= o.presencePenalty + o.frequencyPenalty * Float(n)
            }
        }
        return penalised.isEmpty ? pick(raw, o, rng: &rng) : penalised.withUnsafeBufferPointer { pick($0, o, rng: &rng) }
    }

    static func pick(_ logits: UnsafeBufferPointer<Float>, _ o: SamplingOptions, rng: inout SplitMix64) -> Int32 {
        var best = 0
        for i in 1..<logits.count where logits[i] > logits[best] { best = i }
        if o.greedy { return Int32(best) }
        let t = max(o.temperature, 1e-6)
        var order = Array(0..<logits.count)
        if let k = o.topK, k > 0, k < logits.count {
            order.sort { logits[$0] != logits[$1] ? logits[$0] > logits[$1] : $0 < $1 }
            order = Array(order.prefix(k))
        }
        let m = order.map { logits[$0] }.max() ?? 0
        var probs = order.map { Foundation.exp(Double((logits[$0] - m) / t)) }
        var total = probs.reduce(0, +)
        if let p = o.topP, p < 1 {
            let sorted = probs.indices.sorted { probs[$0] != probs[$1] ? probs[$0] > probs[$1] : order[$0] < order[$1] }
            var keep = Set<Int>(), cum = 0.0
            for i in sorted {
                keep.insert(i)
                cum += probs[i] / total
                if cum >= Double(p) { break }
            }
            for i in probs.indices where !keep.contains(i) { probs[i] = 0 }
            total = probs.reduce(0, +)
        }
        if let minP = o.minP, minP > 0, let top = probs.max() {
            for i in probs.indices where probs[i] < Double(minP) * top { probs[i] = 0 }
            total = probs.reduce(0, +)
        }
        var u = rng.nextUniform() * total
        for (i, pr) in probs.enumerated() {
            u -= pr
            if u < 0 && pr > 0 { return Int32(order[i]) }
        }
        return Int32(order[probs.lastIndex { $0 > 0 } ?? 0])
    }

    /// Generates up to `maxNewTokens` for each prompt (all prompts the same length). Stops a row
    /// at an EOS id, or when `stop` says so for its new tokens (stop strings); stops when every row
    /// has stopped. `onStep` sees each step's new tokens.
    /// With `engine` (one prompt, with the cache), the prompt runs through the tensor path and every
    /// later token through the engine.
    public func generate(
        prompts: [[Int32]], maxNewTokens: Int, sampling: SamplingOptions = .init(), eos: Set<Int32> = [],
        useCache: Bool = true, keepStepLogits: Bool = false, engine: DecodeEngine? = nil,
        stop: ((_ row: Int, _ newTokens: [Int32]) -> Bool)? = nil, onStep: (([Int32]) -> Void)? = nil
    ) throws -> GenerationResult {
        if let engine {
            guard engine.model === model else { throw ToolkitError("generate: the decode engine belongs to another model") }
            guard prompts.count == 1, useCache else { throw ToolkitError("generate: the decode engine takes one prompt and the KV cache") }
        }
        guard let first = prompts.first, !first.isEmpty, prompts.allSatisfy({ $0.count == first.count }) else {
            throw ToolkitError("generate: prompts must be non-empty and of equal length")
        }
        let v = model.dims.vocabSize
        for p in prompts {
            if let bad = p.first(where: { $0 < 0 || Int($0) >= v }) {
                throw ToolkitError("prompt id \(bad) is outside the vocabulary (0..<\(v))")
            }
        }
        let b = prompts.count, p = first.count
        guard p + maxNewTokens <= model.dims.contextLength else {
            throw ToolkitError("prompt (\(p)) + new tokens (\(maxNewTokens)) exceed the context length \(model.dims.contextLength)")
        }
        var rng = SplitMix64(seed: sampling.seed)
        var sequences = prompts
        var done = [Bool](repeating: false, count: b)
        var histories = prompts.map { TokenHistory(prompt: $0) }
        var result = GenerationResult(newTokens: Array(repeating: [], count: b), stepLogits: [], prefillTokens: b * p,
                                      prefillSeconds: 0, decodeTokens: 0, decodeSeconds: 0)
        let cache = useCache ? model.makeCache(batch: b, capacity: p + maxNewTokens) : nil
        try GradMode.withoutGrad {
            var input = prompts.flatMap { $0 }
            for step in 0..<maxNewTokens {
                let t0 = monotonicSeconds()
                var next = [Int32](repeating: 0, count: b)
                if let engine, let cache, step > 0 {
                    let row = try engine.step(token: input[0], cache: cache)  // b == 1
                    if keepStepLogits { result.stepLogits.append(Array(row)) }
                    next[0] = Generator.sample(row, sampling, history: histories[0], rng: &rng)
                } else {
                    let values: [Float]  // [B, V], the last position's
                    if let cache {
                        values = try model.nextTokenLogits(input, batch: b, cache: cache)
                    } else {
                        let full = sequences.flatMap { $0 }
                        let n = full.count / b
                        let h = try model.hiddenStates(full, batch: b)
                        values = try model.logits(h.slice(axis: 1, (n - 1)..<n)).scalars
                    }
                    if keepStepLogits { result.stepLogits.append(values) }
                    values.withUnsafeBufferPointer { buf in
                        for r in 0..<b {
                            next[r] = Generator.sample(UnsafeBufferPointer(rebasing: buf[(r * v)..<((r + 1) * v)]), sampling,
                                                       history: histories[r], rng: &rng)
                        }
                    }
                }
                let dt = monotonicSeconds() - t0
                if step == 0 { result.prefillSeconds = dt } else { result.decodeSeconds += dt; result.decodeTokens += b }
                for r in 0..<b {
                    sequences[r].append(next[r])
                    if !done[r] {
                        result.newTokens[r].append(next[r])
                        if sampling.penalises { histories[r].add(next[r]) }
                        if eos.contains(next[r]) || stop?(r, result.newTokens[r]) == true { done[r] = true }
                    }
                }
                onStep?(next)
                if done.allSatisfy({ $0 }) { break }
                input = next
            }
        }
        return result
    }
}

extension String {
    /// The text before the first occurrence of any of `stops` (all of it when none occurs): stop
    /// strings and end-of-turn markers are cut off this way.
    public func truncated(atFirstOf stops: [String]) -> String {
        stops.compactMap { range(of: $0)?.lowerBound }.min().map { String(self[..<$0]) } ?? self
    }
}
