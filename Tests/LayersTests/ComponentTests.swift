import Foundation
import Testing
import _TestSupport
@testable import Layers
@testable import TensorCore

private func context(hidden: Int = 16, heads: Int = 4, kvHeads: Int = 2, headDim: Int = 4, seed: UInt64 = 1) -> ComponentContext {
    ComponentContext(hiddenSize: hidden, heads: heads, kvHeads: kvHeads, headDim: headDim, layers: 2,
                     contextLength: 32, initStd: 0.3, seed: seed)
}

private func options(_ path: String, _ values: [String: ConfigValue]) -> ComponentOptions {
    ComponentOptions(path: path, values: values)
}

private func leaves(_ m: any Module) -> [Tensor] { m.namedParameters().map(\.parameter.value) }

/// Float32 finite-difference checks of every component (built from ops with float64 checks).
@Suite struct ComponentGradientTests {
    static let positionKinds: [[String: ConfigValue]] = [
        ["kind": .string("learned")], ["kind": .string("rope"), "theta": .double(10000)],
        ["kind": .string("rope"), "layout": .string("interleaved"), "partial_rotary_factor": .double(0.5)],
        ["kind": .string("rope"), "scaling": .map(["kind": .string("yarn"), "factor": .double(4), "original_max_position_embeddings": .int(8)])],
        ["kind": .string("alibi")], ["kind": .string("none")],
    ]

    @Test(arguments: positionKinds)
    func attentionWithEachPositionEncoding(position: [String: ConfigValue]) throws {
        let c = context()
        let pos = try Components.positions.make(options("model.position", position), c)
        for kernel in [AttentionKernel.naive, .tiled(queryTile: 2, keyTile: 3)] {
            let attn = Attention(hiddenSize: 16, heads: 4, kvHeads: 2, headDim: 4, bias: true, qkNorm: true, qkNormEps: 1e-6,
                                 window: 3, kernel: kernel, position: pos, context: c)
            let x = GradCheck.random([2, 5, 16], seed: 2).requiringGrad()
            let r = try GradCheck.checkFloat32([x] + leaves(attn)) { try attn(pos.embed(x, offset: 1), offset: 1) }
            #expect(r.passed, "\(position) \(kernel): \(r)")
        }
    }

    static let ffnKinds: [[String: ConfigValue]] = [
        ["kind": .string("gelu"), "intermediate_size": .int(24)],
        ["kind": .string("gelu"), "approximation": .string("exact"), "bias": .bool(false)],
        ["kind": .string("swiglu"), "intermediate_size": .int(20)],
        ["kind": .string("geglu"), "intermediate_size": .int(20), "bias": .bool(true)],
        // gpt-oss's experts: top-k on the biased router's logits, softmax over the k; biased experts with
        // the clamped SwiGLU (a limit the activations reach, so the clamps are exercised)
        ["kind": .string("moe"), "experts": .int(4), "top_k": .int(2), "intermediate_size": .int(8), "routing": .string("topk_softmax"),
         "router_bias": .bool(true), "expert_bias": .bool(true), "expert_activation": .string("clamped_swiglu"),
         "swiglu_alpha": .double(1.702), "swiglu_limit": .double(0.05)],
        ["kind": .string("moe"), "experts": .int(4), "top_k": .int(2), "intermediate_size": .int(8)],
        ["kind": .string("moe"), "experts": .int(3), "top_k": .int(1), "intermediate_size": .int(8), "norm_topk_prob": .bool(false)],
    ]

    @Test(arguments: ffnKinds)
    func feedForwards(ffn: [String: ConfigValue]) throws {
        let c = context()
        let mlp = try Components.feedForwards.make(options("model.mlp", ffn), c)
        let x = GradCheck.random([3, 16], seed: 4).requiringGrad()
        let r = try GradCheck.checkFloat32([x] + leaves(mlp)) { try mlp(x) }
        #expect(r.passed, "\(ffn): \(r)")
    }

    @Test func moeAuxAndZLossGradients() throws {
        let c = context()
        let moe = MoE(hiddenSize: 16, experts: 4, topK: 2, intermediateSize: 8, normalizeTopK: true,
                      auxLossCoefficient: 0.01, zLossCoefficient: 0.001, context: c)
        let x = GradCheck.random([6, 16], seed: 5).requiringGrad()
        let r = try GradCheck.checkFloat32([x, moe.gate.weight.value]) {
            _ = try moe(x)
            let aux = try loadBalancingLoss([moe.lastRouting!], experts: 4, topK: 2)!
            return try aux + moe.zLoss()!
        }
        #expect(r.passed, "\(r)")
        let counts = moe.lastRouting!.expertCounts
        #expect(counts.reduce(0, +) == 6 * 2)
    }

    @Test(arguments: ["layernorm", "rmsnorm"])
    func norms(kind: String) throws {
        let n = try Components.norms.make(options("model.norm", ["kind": .string(kind)]), context())
        let x = GradCheck.random([3, 16], seed: 6).requiringGrad()
        let r = try GradCheck.checkFloat32([x] + leaves(n)) { try n(x) }
        #expect(r.passed, "\(kind): \(r)")
    }

    /// The attention options the newer families brought, together: QK-norm over the whole
    /// projections with Gemma's (1 + w) form, a custom scale, soft-capping and sinks (both kernels).
    @Test func attentionVariants() throws {
        let c = context()
        let rope = try Components.positions.make(options("p", ["kind": .string("rope")]), c)
        for kernel in [AttentionKernel.naive, .tiled(queryTile: 2, keyTile: 3)] {
            let attn = Attention(hiddenSize: 16, heads: 4, kvHeads: 2, headDim: 4, bias: true, qkNorm: true, qkNormEps: 1e-6,
                                 qkNormScope: .projection, qkNormUnitOffset: true, scale: 0.7, softcap: 1.5, sinks: true,
                                 window: 3, kernel: kernel, position: rope, context: c)
            try attn.sinks!.assign(Tensor(shape: [4], values: [0.2, -0.4, 0.9, 0]))
            let x = GradCheck.random([2, 5, 16], seed: 12).requiringGrad()
            let r = try GradCheck.checkFloat32([x] + leaves(attn)) { try attn(x) }
            #expect(r.passed, "\(kernel): \(r)")
            #expect(attn.namedParameters().map(\.name).contains("sinks"))
        }
    }

    @Test(arguments: [NormPlacement.post, .sandwich])
    func blockPlacements(placement: NormPlacement) throws {
        let c = context()
        let rope = try Components.positions.make(options("p", ["kind": .string("rope")]), c)
        let block = TransformerBlock(
            placement: placement, makeNorm: { RMSNorm(dimension: 16, eps: 1e-6, unitOffset: placement == .sandwich) },
            attention: Attention(hiddenSize: 16, heads: 4, kvHeads: 1, headDim: 6, bias: false, qkNorm: false, qkNormEps: 1e-6,
                                 window: nil, kernel: .defaultTiled, position: rope, context: c),
            mlp: SwiGLUMLP(hiddenSize: 16, intermediateSize: 12, bias: false, context: c))
        let x = GradCheck.random([1, 4, 16], seed: 13).requiringGrad()
        let r = try GradCheck.checkFloat32([x] + leaves(block)) { try block(x) }
        #expect(r.passed, "\(placement): \(r)")
        let names = Set(block.namedParameters().map(\.name).filter { $0.hasSuffix("layernorm.weight") })
        #expect(names == (placement == .post ? ["post_attention_layernorm.weight", "post_feedforward_layernorm.weight"]
                          : ["input_layernorm.weight", "post_attention_layernorm.weight", "pre_feedforward_layernorm.weight",
                             "post_feedforward_layernorm.weight"]))
    }

    @Test func transformerBlock() throws {
        let c = context()
        let rope = try Components.positions.make(options("p", ["kind": .string("rope")]), c)
        let block = TransformerBlock(
            inputNorm: RMSNorm(dimension: 16, eps: 1e-6),
            attention: Attention(hiddenSize: 16, heads: 4, kvHeads: 1, headDim: 6, bias: false, qkNorm: false, qkNormEps: 1e-6,
                                 window: nil, kernel: .defaultTiled, position: rope, context: c),
            postAttentionNorm: RMSNorm(dimension: 16, eps: 1e-6),
            mlp: SwiGLUMLP(hiddenSize: 16, intermediateSize: 12, bias: false, context: c))
        let x = GradCheck.random([1, 4, 16], seed: 7).requiringGrad()
        let r = try GradCheck.checkFloat32([x] + leaves(block)) { try block(x) }
        #expect(r.passed, "\(r)")
        let names = block.namedParameters().map(\.name)
        #expect(names.contains("self_attn.q_proj.weight") && names.contains("mlp.down_proj.weight")
                && names.contains("input_layernorm.weight") && !names.contains { $0.contains("bias") })
    }
}

@Suite struct ComponentBehaviourTests {
    @Test func kvCacheDecodingEqualsFullForward() throws {
        let c = context()
        for (posKind, window) in [("rope", nil), ("alibi", 3), ("learned", nil)] as [(String, Int?)] {
            let pos = try Components.positions.make(options("p", ["kind": .string(posKind)]), c)
            let attn = Attention(hiddenSize: 16, heads: 4, kvHeads: 2, headDim: 4, bias: false, qkNorm: true, qkNormEps: 1e-6,
                                 window: window, kernel: .defaultTiled, position: pos, context: c)
            let x = GradCheck.random([2, 7, 16], seed: 8)
            let full = try GradMode.withoutGrad { try attn(x) }
            let cache = KVCache(layers: 1, batch: 2, capacity: 10, kvHeads: 2, headDim: 4)
            #expect(cache.bytes == 2 * 2 * 10 * 2 * 4 * 4)  // sized by KV heads
            var parts: [Tensor] = []
            try GradMode.withoutGrad {
                let prefix = try attn(x.slice(axis: 1, 0..<4), offset: 0, cache: cache)
                cache.advance(by: 4)
                parts.append(prefix)
                for t in 4..<7 {
                    parts.append(try attn(x.slice(axis: 1, t..<(t + 1)), offset: t, cache: cache))
                    cache.advance(by: 1)
                }
            }
            let inc = try Tensor.concat(parts, axis: 1)
            #expect(Fixtures.maxAbsDiff(inc.scalars, full.scalars) < Tolerance.Attention.incrementalVsFull, "\(posKind)")
        }
    }

    @Test func unknownKeysAndBadValuesNameTheKeyPath() throws {
        let c = context()
        do {
            _ = try Components.positions.make(options("model.position", ["kind": .string("rope"), "thetta": .int(5)]), c)
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("model.position.thetta")) }
        do {
            _ = try Components.feedForwards.make(options("model.mlp", ["kind": .string("moe"), "experts": .int(2), "top_k": .int(3), "intermediate_size": .int(4)]), c)
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("model.mlp.top_k")) }
        do {
            _ = try Components.norms.make(options("model.norm", ["kind": .string("batchnorm")]), c)
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("model.norm.kind") && "\(error)".contains("rmsnorm")) }
        do {
            _ = try Components.positions.make(options("model.position", ["kind": .string("rope"), "theta": .string("big")]), c)
            Issue.record("expected an error")
        } catch { #expect("\(error)".contains("model.position.theta")) }
        let odd = ComponentContext(hiddenSize: 15, heads: 3, kvHeads: 3, headDim: 5, layers: 1, contextLength: 8)
        #expect(throws: (any Error).self) { try Components.positions.make(options("p", ["kind": .string("rope")]), odd) }
    }

    @Test func ropeAndYarnTablesMatchHF() throws {
        let cases: [(String, (any RoPEScaling)?)] = [("qwen3-tiny", nil),
                                                     ("qwen3-yarn-tiny", YaRNScaling(factor: 4, originalMaxPositions: 32))]
        for (folder, scaling) in cases {
            let f = try Fixtures.load("\(folder)/outputs.safetensors")
            let want = f["rope.cos"]!
            let t = want.shape[0]
            let rope = try RotaryEmbedding(headDim: 16, theta: 1e6, scaling: scaling, maxPositions: 128)
            #expect(Fixtures.maxAbsDiff(rope.inverseFrequencies, f["rope.inv_freq"]!.floats) < Tolerance.RoPE.inverseFrequencies, "\(folder) inv_freq")
            let tables = rope.hfTables(positions: t)
            #expect(Fixtures.maxAbsDiff(tables.cos, want.floats) < Tolerance.RoPE.tables, "\(folder) cos")
            #expect(Fixtures.maxAbsDiff(tables.sin, f["rope.sin"]!.floats) < Tolerance.RoPE.tables, "\(folder) sin")
        }
    }

    /// Llama 3.1's scaling keeps, smooths and divides frequencies by wavelength; the fixture's
    /// head_dim 16 at θ 5e5 has indices in all three regions (kept 0–3, smoothed 4, divided 5–7).
    @Test func llama3RoPETablesMatchHF() throws {
        let f = try Fixtures.load("llama3-tiny/outputs.safetensors")
        let scaling = try Components.ropeScalings.make(
            ComponentOptions(path: "scaling", values: ["kind": .string("llama3"), "factor": .double(32)]),
            ComponentContext(hiddenSize: 64, heads: 4, kvHeads: 2, headDim: 16, layers: 1, contextLength: 64))
        let rope = try RotaryEmbedding(headDim: 16, theta: 500_000, scaling: scaling, maxPositions: 64)
        let plain = try RotaryEmbedding(headDim: 16, theta: 500_000, maxPositions: 64)
        let want = f["rope.inv_freq"]!.floats
        // Both sides compute in fp32: θ^(2i/d) rounded once, then at most four fp32 operations of the
        // blend (the bound's derivation is beside it).
        let relative = zip(rope.inverseFrequencies, want).map { abs($0 - $1) / $1 }.max()!
        #expect(relative < Tolerance.RoPE.inverseFrequencyRelative, "inv_freq relative difference \(relative)")
        #expect(plain.inverseFrequencies[0..<4] == rope.inverseFrequencies[0..<4])
        #expect((4..<8).allSatisfy { plain.inverseFrequencies[$0] > rope.inverseFrequencies[$0] })
        let tables = rope.hfTables(positions: f["rope.cos"]!.shape[0])
        #expect(Fixtures.maxAbsDiff(tables.cos, f["rope.cos"]!.floats) < Tolerance.RoPE.tables)
        #expect(Fixtures.maxAbsDiff(tables.sin, f["rope.sin"]!.floats) < Tolerance.RoPE.tables)
        #expect(scaling.options["original_max_position_embeddings"] == .int(8192))
    }

    @Test func tiedParametersAreVisitedOnce() {
        final class Tied: Module {
            let a = Parameter(Tensor.ones([2])), inner = Linear(weight: Tensor.ones([2, 2]))
            func visit(_ v: inout ModuleVisitor) {
                v.parameter("a", a)
                v.child("inner", inner)
                v.parameter("again", a)
            }
        }
        let names = Tied().namedParameters().map(\.name)
        #expect(names == ["a", "inner.weight"])
    }

    /// Every stored Parameter or Module property must be reported by `visit` (catches a forgotten line).
    @Test func visitReportsEveryStoredParameter() throws {
        let c = context()
        let rope = try Components.positions.make(options("p", ["kind": .string("rope")]), c)
        let modules: [any Module] = [
            Attention(hiddenSize: 16, heads: 4, kvHeads: 2, headDim: 4, bias: true, qkNorm: true, qkNormEps: 1e-6, window: nil,
                      kernel: .naive, position: rope, context: c),
            try Components.feedForwards.make(options("m", ["kind": .string("moe"), "experts": .int(2), "top_k": .int(1), "intermediate_size": .int(4)]), c),
            try Components.feedForwards.make(options("m", ["kind": .string("gelu")]), c),
            LayerNorm(dimension: 4, eps: 1e-5, bias: true),
            try Components.positions.make(options("p", ["kind": .string("learned")]), c),
        ]
        for m in modules {
            let reported = Set(m.namedParameters().map { ObjectIdentifier($0.parameter) })
            var found = Set<ObjectIdentifier>()
            func walk(_ value: Any) {
                if let p = value as? Parameter { found.insert(ObjectIdentifier(p)); return }
                if value is any PositionalEncoding { return }  // shared, owned by the model
                for child in Mirror(reflecting: value).children { walk(child.value) }
            }
            for child in Mirror(reflecting: m).children where !(child.value is any PositionalEncoding) { walk(child.value) }
            #expect(found.isSubset(of: reported) && !found.isEmpty, "\(type(of: m))")
        }
    }
}
