import Foundation
import Testing
import ToolkitSupport
@testable import Models

/// The sampler's penalties and min-p on hand-made logits (HF / vLLM semantics).
@Suite struct SamplingTests {
    static func pick(_ logits: [Float], _ o: SamplingOptions, _ history: TokenHistory? = nil, seed: UInt64 = 1) -> Int32 {
        var rng = SplitMix64(seed: seed)
        return logits.withUnsafeBufferPointer { Generator.sample($0, o, history: history, rng: &rng) }
    }

    @Test func repetitionPenaltyDividesPositiveAndMultipliesNegativeLogits() {
        let logits: [Float] = [3, 2, -1, 0.5]
        var h = TokenHistory(prompt: [0, 2])
        #expect(Self.pick(logits, SamplingOptions(greedy: true)) == 0)
        // 3 → 1.5 (seen), 2 stays: token 1 wins; a seen negative logit gets more negative, not less.
        #expect(Self.pick(logits, SamplingOptions(greedy: true, repetitionPenalty: 2), h) == 1)
        #expect(Self.pick([-1, -1.5], SamplingOptions(greedy: true, repetitionPenalty: 2), TokenHistory(prompt: [0])) == 1)
        h.add(1)  // now 0, 1 and 2 are penalised: 0.75, 0.5, −4, and 0.5 unpenalised
        #expect(Self.pick(logits, SamplingOptions(greedy: true, repetitionPenalty: 4), h) == 0)
        #expect(Self.pick(logits, SamplingOptions(greedy: true, repetitionPenalty: 8), h) == 3)  // 0.375, 0.25, −8, 0.5
    }

    @Test func presenceAndFrequencyPenaltiesCountTheOutputOnly() {
        let logits: [Float] = [0, 2, 1, 0]
        var h = TokenHistory(prompt: [2])
        h.add(1)
        h.add(1)
        // token 1: 2 − 0.3 − 2 × 0.4 = 0.9 < 1; the prompt's token 2 is not penalised.
        #expect(Self.pick(logits, SamplingOptions(greedy: true, presencePenalty: 0.3, frequencyPenalty: 0.4), h) == 2)
        #expect(Self.pick(logits, SamplingOptions(greedy: true, presencePenalty: 0.3), h) == 1)  // 1.7 > 1
    }

    @Test func minPKeepsTokensNearTheMostLikely() {
        let logits: [Float] = [log(0.5), log(0.3), log(0.2)]
        var seen = Set<Int32>()
        for seed in 0..<400 { seen.insert(Self.pick(logits, SamplingOptions(greedy: false, minP: 0.5), seed: UInt64(seed))) }
        #expect(seen == [0, 1])  // 0.2 < 0.5 × 0.5
        seen = []
        for seed in 0..<400 { seen.insert(Self.pick(logits, SamplingOptions(greedy: false), seed: UInt64(seed))) }
        #expect(seen == [0, 1, 2])
    }
}
