import CKernels
import Foundation
import Testing
import _TestSupport
@testable import Layers
@testable import Models
@testable import TensorCore

/// Shrinks a gpt2-sized recipe to the nano shape.
private let nanoSize = [
    "model.vocab_size=512", "model.hidden_size=64", "model.layers=2", "model.context_length=64", "model.attention.heads=4",
    "model.attention.kv_heads=4", "model.attention.head_dim=16", "model.mlp.intermediate_size=256",
]
private let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

/// The single-token decode engine against the tensor path and the HF fixtures.
@Suite(.serialized) struct DecodeEngineTests {
    /// Feeds `tokens` one at a time after `prompt` through the engine and through the tensor path
    /// (each with its own cache) and returns the largest logit difference and the logit scale.
    static func compare(_ m: DecoderModel, format: DecodeWeightFormat, prompt: [Int32], tokens: [Int32]) throws
        -> (maxDiff: Float, scale: Float, argmaxAgree: Int)
    {
        let engine = try DecodeEngine(model: m, format: format)
        let capacity = prompt.count + tokens.count
        let a = m.makeCache(batch: 1, capacity: capacity), b = m.makeCache(batch: 1, capacity: capacity)
        try GradMode.withoutGrad {
            for c in [a, b] {
                _ = try m.hiddenStates(prompt, batch: 1, cache: c)
                c.advance(by: prompt.count)
            }
        }
        var maxDiff: Float = 0, scale: Float = 0, agree = 0
        for (i, t) in tokens.enumerated() {
            let fast = Array(try engine.step(token: t, cache: a))
            let ref = try GradMode.withoutGrad { () -> [Float] in
                let h = try m.hiddenStates([t], batch: 1, offset: prompt.count + i, cache: b)
                b.advance(by: 1)
                return try m.logits(h).scalars
            }
            #expect(a.length == b.length)
            for j in ref.indices {
                maxDiff = max(maxDiff, abs(fast[j] - ref[j]))
                scale = max(scale, abs(ref[j]))
            }
            if fast.indices.max(by: { fast[$0] < fast[$1] }) == ref.indices.max(by: { ref[$0] < ref[$1] }) { agree += 1 }
        }
        return (maxDiff, scale, agree)
    }

    static func randomIDs(_ n: Int, vocab: Int, seed: UInt64) -> [Int32] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in Int32(rng.next() % UInt64(vocab)) }
    }

    /// Every supported architecture variant (recipe, overrides).
    static let variants: [(String, [String])] = [
        ("nano", [String]()), ("nano-qwen3", []), ("alibi", nanoSize), ("alibi", nanoSize + ["model.position.kind=none"]),
        ("nano", ["model.attention.window=5"]), ("nano-qwen3", ["model.position.layout=interleaved"]),
        ("nano-qwen3", ["model.position.partial_rotary_factor=0.5"]),
        ("nano", ["model.mlp.approximation=exact"]), ("nano-qwen3", ["model.attention.kv_heads=1"]),
        // head_dim 64 and 128 take the register-resident attention kernels
        ("nano", ["model.attention.heads=1", "model.attention.kv_heads=1", "model.attention.head_dim=64"]),
        ("nano-qwen3", ["model.attention.head_dim=128"]),
        ("alibi", nanoSize + ["model.attention.heads=1", "model.attention.kv_heads=1", "model.attention.head_dim=64",
                              "model.attention.window=5"]),
        // per-layer windows and positions: a local RoPE layer with its own base, a NoPE global layer
        ("nano-qwen3", ["model.layer_types=[local, global]",
                        "model.layer_type_overrides={local: {attention: {window: 3}, position: {theta: 100.0}}, global: {position: {kind: none}}}"]),
        ("nano-qwen3", ["model.position.scaling={kind: llama3, factor: 8.0, original_max_position_embeddings: 16}"]),
        // the blocks and components the newer families brought
        ("nano-qwen3", ["model.norm_placement=post", "model.attention.qk_norm_scope=projection"]),
        ("nano-qwen3", ["model.norm_placement=sandwich", "model.norm.unit_offset=true", "model.mlp={kind: geglu, intermediate_size: 96}",
                        "model.embedding_scale=8.0", "model.final_logit_softcap=5.0", "model.attention.scale=0.3"]),
        ("nano-qwen3", ["model.attention.softcap=2.0", "model.attention.sinks=true", "model.attention.window=4"]),
        ("nano", ["model.attention.softcap=1.5", "model.attention.sinks=true", "model.attention.heads=1",
                  "model.attention.kv_heads=1", "model.attention.head_dim=64"]),
    ]

    static func build(_ recipe: String, _ overrides: [String]) throws -> DecoderModel {
        let m = try ModelBuilder.build(Recipe.load("\(recipesDir)/\(recipe).yaml", overrides: overrides))
        // Sinks start at zero: give them values, so that a wrong sink term shows.
        for (name, p) in m.namedParameters() where name.hasSuffix(".sinks") {
            try p.assign(Tensor(shape: p.shape, values: (0..<p.count).map { Float($0) * 0.7 - 0.5 }))
        }
        return m
    }

    /// Every supported architecture variant, with random weights: f32 equals the tensor path to rounding.
    @Test(arguments: variants)
    func f32MatchesTheTensorPath(recipe: String, overrides: [String]) throws {
        let m = try Self.build(recipe, overrides)
        let r = try Self.compare(m, format: .f32, prompt: Self.randomIDs(7, vocab: m.dims.vocabSize, seed: 1),
                                 tokens: Self.randomIDs(12, vocab: m.dims.vocabSize, seed: 2))
        #expect(r.maxDiff < Tolerance.Model.decodeLogitsRelative * max(1, r.scale), "\(recipe) \(overrides): \(r.maxDiff)")
        #expect(r.argmaxAgree == 12)
    }

    /// Continuous batching: sequences of different lengths (one joining late, one leaving early)
    /// decoded in shared steps give each sequence the logits of its own single-sequence steps, bit
    /// for bit, in every weight format and architecture variant.
    @Test(arguments: variants.map { ($0.0, $0.1, DecodeWeightFormat.f32) } + [("nano-qwen3", [], .bf16), ("nano", [], .int8)])
    func batchedStepsEqualSingleSteps(recipe: String, overrides: [String], format: DecodeWeightFormat) throws {
        let m = try Self.build(recipe, overrides)
        let v = m.dims.vocabSize
        let prompts = [5, 9, 2].enumerated().map { Self.randomIDs($1, vocab: v, seed: UInt64(10 + $0)) }
        let tokens = prompts.indices.map { Self.randomIDs(8, vocab: v, seed: UInt64(20 + $0)) }
        func prefilled(_ p: [Int32]) throws -> KVCache {
            let c = m.makeCache(batch: 1, capacity: 20)
            try GradMode.withoutGrad { _ = try m.hiddenStates(p, batch: 1, cache: c) }
            c.advance(by: p.count)
            return c
        }
        // Alone: each sequence's logits per token.
        let single = try DecodeEngine(model: m, format: format)
        let alone = try prompts.indices.map { s in
            let c = try prefilled(prompts[s])
            return try tokens[s].map { Array(try single.step(token: $0, cache: c)) }
        }
        // Together: sequence 2 joins at step 3, sequence 0 leaves after 6 tokens.
        let batched = try DecodeEngine(model: m, format: format)
        let caches = try prompts.map(prefilled)
        var next = [0, 0, 0]
        for step in 0..<11 {
            let active = prompts.indices.filter { s in next[s] < (s == 0 ? 6 : 8) && (s != 2 || step >= 3) }
            if active.isEmpty { break }
            let logits = Array(try batched.step(tokens: active.map { tokens[$0][next[$0]] }, caches: active.map { caches[$0] }))
            for (r, s) in active.enumerated() {
                #expect(Array(logits[(r * v)..<((r + 1) * v)]) == alone[s][next[s]], "\(recipe) \(overrides) \(format): seq \(s) token \(next[s])")
                next[s] += 1
            }
        }
        #expect(next == [6, 8, 8])
        #expect(throws: (any Error).self) { try batched.step(tokens: [1, 2], caches: [caches[1], caches[1]]) }
    }

    /// The HF fixtures' greedy continuations, through the engine.
    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "llama3-tiny", "olmo2-tiny", "smollm3-tiny", "gemma3-tiny"])
    func greedyGenerationMatchesTheFixtures(name: String) throws {
        let f = try FidelityTests.load(name)
        let (prompts, expected) = try FidelityTests.generation(name)
        let stepLogits = f.outputs["generation.step_logits"]!.floats
        let v = f.model.dims.vocabSize
        let engine = try DecodeEngine(model: f.model)
        for (row, prompt) in prompts.enumerated() {
            let r = try Generator(model: f.model).generate(
                prompts: [prompt], maxNewTokens: expected[row].count, keepStepLogits: true, engine: engine)
            #expect(r.newTokens[0] == expected[row], "\(name) row \(row)")
            // Fixture step logits are [steps, B, V].
            for (s, logits) in r.stepLogits.enumerated() {
                let start = (s * prompts.count + row) * v
                let d = Fixtures.maxAbsDiff(logits, Array(stepLogits[start..<(start + v)]))
                #expect(d < Tolerance.Model.logits, "\(name) row \(row) step \(s): \(d)")
            }
        }
    }

    /// bf16 and int8 weights stay close to f32: logit error small against the logit scale and the
    /// same argmax on (nearly) every step.
    @Test(arguments: [("nano", DecodeWeightFormat.bf16), ("nano", .int8), ("nano-qwen3", .bf16), ("nano-qwen3", .int8)])
    func reducedPrecisionStaysClose(recipe: String, format: DecodeWeightFormat) throws {
        let m = try ModelBuilder.build(Recipe.load("\(recipesDir)/\(recipe).yaml"))
        let r = try Self.compare(m, format: format, prompt: Self.randomIDs(9, vocab: m.dims.vocabSize, seed: 3),
                                 tokens: Self.randomIDs(16, vocab: m.dims.vocabSize, seed: 4))
        let bound = format == .bf16 ? Tolerance.Quantized.bf16LogitsRelative : Tolerance.Quantized.int8LogitsRelative
        #expect(r.maxDiff < bound * r.scale, "\(recipe) \(format): \(r.maxDiff) vs scale \(r.scale)")
        #expect(r.maxDiff > 0, "\(format) weights must differ from f32")
        #expect(r.argmaxAgree >= 14, "\(recipe) \(format): argmax agreed on \(r.argmaxAgree) of 16")
        let engine = try DecodeEngine(model: m, format: format)
        let f32 = try DecodeEngine(model: m, format: .f32)
        #expect(Double(engine.matrixBytes) < Double(f32.matrixBytes) / (format == .bf16 ? 1.99 : 3.5))
    }

    @Test func quantisationKernelsRoundAsDocumented() {
        // bf16: round to nearest even on the dropped half; NaN stays NaN.
        let values: [Float] = [1, 1 + 1.0 / 256, 1 + 3.0 / 256, -2.5, Float.nan, 3.0e38]
        var out = [UInt16](repeating: 0, count: values.count)
        tk_to_bf16(values, values.count, &out)
        func back(_ h: UInt16) -> Float { Float(bitPattern: UInt32(h) << 16) }
        #expect(back(out[0]) == 1)
        #expect(back(out[1]) == 1)                 // tie -> even (1.0)
        #expect(back(out[2]) == 1 + 4.0 / 256)     // tie -> even (up)
        #expect(back(out[3]) == -2.5)
        #expect(back(out[4]).isNaN)
        #expect(back(out[5]).isFinite)
        // int8: per-row scale = max|w| / 127; every weight within half a step.
        let rows = 3, cols = 37
        var rng = SplitMix64(seed: 9)
        let w = (0..<(rows * cols)).map { i in i < cols ? 0 : Float(rng.nextUniform() * 2 - 1) * Float(i % 5 + 1) }
        var q = [Int8](repeating: 0, count: rows * cols), s = [Float](repeating: 0, count: rows)
        #expect(tk_quantize_q8(w, Int32(rows), Int32(cols), &q, &s) == 0)
        #expect(s[0] == 0)
        var bad = w
        bad[5] = .nan
        #expect(tk_quantize_q8(bad, Int32(rows), Int32(cols), &q, &s) == -1)
        bad[5] = .infinity
        #expect(tk_quantize_q8(bad, Int32(rows), Int32(cols), &q, &s) == -1)
        for r in 0..<rows {
            let row = w[(r * cols)..<((r + 1) * cols)]
            #expect(s[r] == (row.map(abs).max() ?? 0) / 127)
            for c in 0..<cols { #expect(abs(Float(q[r * cols + c]) * s[r] - w[r * cols + c]) <= s[r] / 2 + Tolerance.Quantized.int8HalfStepSlack) }
        }
    }

    /// Odd shapes (tails of the 16-wide vectors and 4-row blocks), bias, accumulate and every format.
    @Test func gemvMatchesADoubleReference() {
        for (rows, cols) in [(1, 1), (5, 17), (9, 33), (13, 100), (64, 384)] {
            var rng = SplitMix64(seed: UInt64(rows * 1000 + cols))
            let w = (0..<(rows * cols)).map { _ in Float(rng.nextUniform() * 2 - 1) }
            let x = (0..<cols).map { _ in Float(rng.nextUniform() * 2 - 1) }
            let bias = (0..<rows).map { _ in Float(rng.nextUniform()) }
            var bf = [UInt16](repeating: 0, count: w.count)
            tk_to_bf16(w, w.count, &bf)
            var q = [Int8](repeating: 0, count: w.count), s = [Float](repeating: 0, count: rows)
            #expect(tk_quantize_q8(w, Int32(rows), Int32(cols), &q, &s) == 0)
            let decoded: [(Int32, [Float])] = [
                (Int32(TK_W_F32), w), (Int32(TK_W_BF16), bf.map { Float(bitPattern: UInt32($0) << 16) }),
                (Int32(TK_W_Q8), (0..<w.count).map { Float(q[$0]) * s[$0 / cols] }),
            ]
            for (format, wd) in decoded {
                var y = [Float](repeating: 0.5, count: rows)
                w.withUnsafeBufferPointer { pw in bf.withUnsafeBufferPointer { pb in q.withUnsafeBufferPointer { pq in
                    s.withUnsafeBufferPointer { ps in bias.withUnsafeBufferPointer { pbias in
                        var m = tk_matrix()
                        m.rows = Int32(rows)
                        m.cols = Int32(cols)
                        m.format = format
                        m.data = format == Int32(TK_W_F32) ? UnsafeRawPointer(pw.baseAddress!)
                            : format == Int32(TK_W_BF16) ? UnsafeRawPointer(pb.baseAddress!) : UnsafeRawPointer(pq.baseAddress!)
                        m.scales = ps.baseAddress
                        m.bias = pbias.baseAddress
                        tk_gemv_rows(&m, x, &y, 0, Int32(rows), 1)
                    } }
                } } }
                for r in 0..<rows {
                    var ref = 0.5 + Double(bias[r])
                    for c in 0..<cols { ref += Double(wd[r * cols + c]) * Double(x[c]) }
                    #expect(abs(Double(y[r]) - ref) < Tolerance.GEMM.matrixVectorVsFloat64, "format \(format) \(rows)x\(cols) row \(r)")
                }
            }
        }
    }

    /// Perplexity through the engine: f32 equals the tensor path's; int8 costs little.
    @Test func evaluationThroughTheEngine() throws {
        let m = try ModelBuilder.build(Recipe.load("\(recipesDir)/nano-qwen3.yaml"))
        let seqs = [Self.randomIDs(30, vocab: m.dims.vocabSize, seed: 5), Self.randomIDs(100, vocab: m.dims.vocabSize, seed: 6)]
        let ref = try Evaluation.score(m, sequences: seqs)
        let f32 = try Evaluation.score(m, sequences: seqs, engine: DecodeEngine(model: m))
        #expect(f32.tokens == ref.tokens && ref.tokens == 29 + 99)
        #expect(abs(f32.loss - ref.loss) < Tolerance.Model.loss, "\(f32.loss) vs \(ref.loss)")
        let q = try Evaluation.score(m, sequences: seqs, engine: DecodeEngine(model: m, format: .int8))
        #expect(abs(q.loss - ref.loss) < Tolerance.Quantized.int8LossRelative * ref.loss && q.loss != ref.loss)
    }

    @Test func unsupportedModelsSayWhy() throws {
        let moe = try ModelBuilder.build(Recipe.load("\(recipesDir)/nano-moe.yaml"))
        #expect(DecodeEngine.unsupportedReason(moe)?.contains("mixture of experts") == true)
        #expect(throws: (any Error).self) { try DecodeEngine(model: moe) }
        let dense = try ModelBuilder.build(Recipe.load("\(recipesDir)/nano.yaml"))
        #expect(DecodeEngine.unsupportedReason(dense) == nil)
        let engine = try DecodeEngine(model: dense)
        let cache = dense.makeCache(batch: 1, capacity: 2)
        #expect(throws: (any Error).self) { try engine.step(token: Int32(dense.dims.vocabSize), cache: cache) }
        _ = try engine.step(token: 1, cache: cache)
        _ = try engine.step(token: 2, cache: cache)
        #expect(throws: (any Error).self) { try engine.step(token: 3, cache: cache) }  // cache full
        // Replacing a parameter's storage (loading, merging) makes the engine refuse to run.
        let fresh = dense.makeCache(batch: 1, capacity: 2)
        let w = dense.layers[0].attention.qProj.weight
        try w.assign(Tensor(shape: w.shape, values: w.value.scalars))
        #expect(throws: (any Error).self) { try engine.step(token: 1, cache: fresh) }
        _ = try DecodeEngine(model: dense).step(token: 1, cache: fresh)
    }
}
