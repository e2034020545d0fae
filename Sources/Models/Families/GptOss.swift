import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let gptOss = Self(rawValue: "gpt_oss")
}

/// HF gpt-oss (`GptOssForCausalLM`, `model_type: gpt_oss`). Over Qwen3:
/// - attention sinks: a learned logit per head in every softmax denominator (`attention.sinks`);
/// - biases on the attention projections; no QK-norm;
/// - alternating sliding-window (128) and full layers (`layer_types`);
/// - a mixture of experts in every layer: a biased router, top-k on its logits then a softmax over
///   those k (`routing: topk_softmax`), experts with biases and the clamped SwiGLU
///   (`expert_activation: clamped_swiglu`, α 1.702, limit 7);
/// - YaRN (×32 over 4096 positions, `truncate: false`) on θ 150000 by default; an untied head.
/// The checkpoints stack the experts: `mlp.experts.gate_up_proj [E, H, 2I]` (gate and up interleaved
/// along the last axis), `down_proj [E, I, H]` and their biases, mapped by `unstackExperts`; the
/// router is `mlp.router`.
struct GptOssFamily: ModelFamily {
    let modelType = "gpt_oss"
    let architecture = "GptOssForCausalLM"
    let traits = FamilyTraits()
    let recipes = ["gpt-oss-20b"]

    /// GptOssConfig: vocabulary 201088, head_dim 64, 131072 positions, rms_norm_eps 1e-5, attention
    /// biases, 128 experts top-4, sliding window 128 on every other layer.
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        var config = try LlamaLayout.parse(c, type: .gptOss, defaults: .init(
            headDim: 64, maxPositions: 131_072, normEps: 1e-5, vocabSize: 201_088, ropeTheta: 150_000))
        config.attentionBias = try c.bool("attention_bias", default: true)
        config.mlpBias = false
        if c.value("rope_parameters") == nil && c.value("rope_scaling") == nil {
            config.ropeScaling = HFModelConfig.RopeScaling(type: "yarn", factor: 32, originalMaxPositionEmbeddings: 4096,
                                                           betaFast: 32, betaSlow: 1, truncate: false)
        }
        let experts = try c.int("num_local_experts") ?? 128, k = try c.int("num_experts_per_tok") ?? 4
        guard experts >= 1, k >= 1, k <= experts else { throw c.fail("num_experts_per_tok", "must be in 1...num_local_experts (\(experts))") }
        config.moe = HFModelConfig.MoE(numExperts: experts, numExpertsPerToken: k, moeIntermediateSize: config.intermediateSize,
                                       normTopKProb: false, routerAuxLossCoef: try c.double("router_aux_loss_coef") ?? 0.001,
                                       outputRouterLogits: try c.bool("output_router_logits", default: false))
        config.familyKeys["swiglu_alpha"] = .double(try c.double("swiglu_alpha") ?? 1.702)
        config.familyKeys["swiglu_limit"] = .double(try c.double("swiglu_limit") ?? 7)
        config.slidingWindow = try c.int("sliding_window") ?? 128
        config.useSlidingWindow = config.slidingWindow != nil
        config.layerTypes = try c.stringList("layer_types")
            ?? (0..<config.numLayers).map { ($0 + 1) % 2 != 0 ? "sliding_attention" : "full_attention" }
        guard config.layerTypes!.count == config.numLayers else {
            throw c.fail("layer_types", "needs one entry for each of the \(config.numLayers) layers")
        }
        return config
    }

    /// The experts' clamped SwiGLU (`HFModelConfig.familyKeys`).
    static func swiglu(_ c: HFModelConfig) -> (alpha: Double, limit: Double) {
        (c.familyKeys["swiglu_alpha"]?.doubleValue ?? 1.702, c.familyKeys["swiglu_limit"]?.doubleValue ?? 7)
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = LlamaLayout.write(config)
        let moe = config.moe
        o["num_local_experts"] = .int(Int64(moe?.numExperts ?? 1))
        o["num_experts_per_tok"] = .int(Int64(moe?.numExpertsPerToken ?? 1))
        o["router_aux_loss_coef"] = .double(moe?.routerAuxLossCoef ?? 0.001)
        o["output_router_logits"] = .bool(moe?.outputRouterLogits ?? false)
        o["swiglu_alpha"] = .double(Self.swiglu(config).alpha)
        o["swiglu_limit"] = .double(Self.swiglu(config).limit)
        o["sliding_window"] = config.slidingWindow.map { .int(Int64($0)) } ?? .null
        o["layer_types"] = .array((config.layerTypes ?? []).map { .string($0) })
        return o
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        let l = "model.layers.{L}."
        let names = LlamaLayout.attentionNames(config, qkNorm: false) + [l + "self_attn.sinks"]
        var rules = names.map { WeightMap.Rule($0, $0) }
        rules += [WeightMap.Rule(l + "mlp.router.weight", l + "mlp.gate.weight"), WeightMap.Rule(l + "mlp.router.bias", l + "mlp.gate.bias")]
        let e = l + "mlp.experts."
        rules += [
            WeightMap.Rule(source: [e + "gate_up_proj"], target: [e + "{E}.gate_proj.weight", e + "{E}.up_proj.weight"],
                           transform: .unstackExperts(interleaved: true, transpose: true)),
            WeightMap.Rule(source: [e + "gate_up_proj_bias"], target: [e + "{E}.gate_proj.bias", e + "{E}.up_proj.bias"],
                           transform: .unstackExperts(interleaved: true, transpose: false)),
            WeightMap.Rule(source: [e + "down_proj"], target: [e + "{E}.down_proj.weight"],
                           transform: .unstackExperts(interleaved: false, transpose: true)),
            WeightMap.Rule(source: [e + "down_proj_bias"], target: [e + "{E}.down_proj.bias"],
                           transform: .unstackExperts(interleaved: false, transpose: false)),
        ]
        return try WeightMap(rules: rules, ignored: ["model.layers.{L}.self_attn.rotary_emb.inv_freq"],
                             tiedDuplicates: config.tieWordEmbeddings ? ["lm_head.weight": "model.embed_tokens.weight"] : [:])
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        let (h, experts, inner) = (config.hiddenSize, config.moe?.numExperts ?? 1, config.intermediateSize)
        var s = LlamaLayout.shapes(config, qkNorm: false, normBias: false) { _ in
            var m: [String: [Int]] = ["gate.weight": [experts, h], "gate.bias": [experts]]
            for x in 0..<experts { m.merge(LlamaLayout.swigluShapes(hidden: h, inner: inner, bias: true, prefix: "experts.\(x).")) { a, _ in a } }
            return m
        }
        for layer in 0..<config.numLayers { s["model.layers.\(layer).self_attn.sinks"] = [config.numHeads] }
        return s
    }

    func recipe(_ c: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = try LlamaLayout.recipe(c, qkNorm: false, path: path)
        if case .map(var a)? = model["attention"] {
            a["sinks"] = .bool(true)
            model["attention"] = .map(a)
        }
        let moe = c.moe ?? HFModelConfig.MoE(numExperts: 1, numExpertsPerToken: 1, moeIntermediateSize: c.intermediateSize)
        model["mlp"] = .map([
            "kind": .string("moe"), "experts": .int(moe.numExperts), "top_k": .int(moe.numExpertsPerToken),
            "intermediate_size": .int(c.intermediateSize), "routing": .string("topk_softmax"), "router_bias": .bool(true),
            "expert_bias": .bool(true), "expert_activation": .string("clamped_swiglu"),
            "swiglu_alpha": .double(Self.swiglu(c).alpha), "swiglu_limit": .double(Self.swiglu(c).limit),
            "norm_topk_prob": .bool(false), "aux_loss_coef": .double(moe.outputRouterLogits ? moe.routerAuxLossCoef : 0),
        ])
        let types = c.layerTypes ?? Array(repeating: "full_attention", count: c.numLayers)
        if let w = c.slidingWindow, types.contains("sliding_attention") {
            model["layer_types"] = .list(types.map { .string($0) })
            model["layer_type_overrides"] = .map(["sliding_attention": .map(["attention": .map(["window": .int(w)])]),
                                                  "full_attention": .map([:])])
        }
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try LlamaLayout.config(of: model, type: .gptOss, qkNorm: false)
        guard model.layers[0].attention.options.bool("sinks") == true else { throw FamilyMismatch("needs attention sinks") }
        let mlps = model.layers.map(\.mlp.options)
        let m = mlps[0]
        guard mlps.allSatisfy({ $0 == m }), m.kind == "moe", m.string("routing") == "topk_softmax", m.bool("router_bias") == true,
              m.bool("expert_bias") == true, m.string("expert_activation") == "clamped_swiglu",
              let experts = m.int("experts"), let k = m.int("top_k"), let inner = m.int("intermediate_size") else {
            throw FamilyMismatch("needs gpt-oss's mixture of experts in every layer (top-k then softmax, biased router and experts, clamped SwiGLU)")
        }
        let aux = m.double("aux_loss_coef") ?? 0
        config.intermediateSize = inner
        config.moe = HFModelConfig.MoE(numExperts: experts, numExpertsPerToken: k, moeIntermediateSize: inner, normTopKProb: false,
                                       routerAuxLossCoef: aux > 0 ? aux : 0.001, outputRouterLogits: aux > 0)
        config.familyKeys["swiglu_alpha"] = m.double("swiglu_alpha").map { .double($0) }
        config.familyKeys["swiglu_limit"] = m.double("swiglu_limit").map { .double($0) }
        let windows = model.layers.map(\.attention.window)
        if let w = windows.compactMap({ $0 }).first {
            guard windows.allSatisfy({ $0 == nil || $0 == w }) else { throw FamilyMismatch("needs one sliding-window size") }
            config.slidingWindow = w
            config.useSlidingWindow = true
        } else {
            config.slidingWindow = nil
        }
        config.layerTypes = windows.map { $0 == nil ? "full_attention" : "sliding_attention" }
        return config
    }
}
