import Checkpointing
import Foundation
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let gemma3Text = Self(rawValue: "gemma3_text")
}

/// HF Gemma 3 text (`Gemma3ForCausalLM`, `model_type: gemma3_text`). Over Qwen3:
/// - token embeddings × √hidden (`embedding_scale`);
/// - RMSNorm as `x̂ · (1 + w)` in fp32, weights from zero (`norm.unit_offset`), the QK-norm too;
/// - four norms per block: before and after attention, before and after the MLP (`norm_placement: sandwich`);
/// - scores scaled by `query_pre_attn_scalar^-½` (`attention.scale`);
/// - sliding-window and full layers from `layer_types` (5 local : 1 global by default), the local
///   ones with their own RoPE base (`rope_local_base_freq`, 10000) and no scaling, the global ones
///   with `rope_theta` (1e6) and the optional scaling;
/// - GeGLU with tanh GELU (`mlp.kind: geglu`);
/// - optional final logit soft-capping (`final_logit_softcap`); a tied head.
/// Attention logit soft-capping (`attn_logit_softcapping`, Gemma 2; null in Gemma 3) is refused.
struct Gemma3Family: ModelFamily {
    let modelType = "gemma3_text"
    let architecture = "Gemma3ForCausalLM"
    let traits = FamilyTraits(qkNorm: true)
    let recipes = ["gemma3-1b"]

    /// Gemma3TextConfig: vocabulary 262208, head_dim 256, 131072 positions, query_pre_attn_scalar
    /// 256, sliding_window 4096, every 6th layer global; rope_parameters per layer type (v5) or
    /// rope_theta 1e6 + rope_local_base_freq 1e4 + rope_scaling for the global layers (v4).
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        let hidden = try c.requiredInt("hidden_size"), layers = try c.requiredInt("num_hidden_layers")
        let heads = try c.int("num_attention_heads") ?? 8
        var global = (theta: try c.double("rope_theta") ?? 1_000_000, scaling: nil as HFModelConfig.RopeScaling?)
        var local = try c.double("rope_local_base_freq") ?? 10_000
        if let scaling = c.value("rope_scaling") {
            global.scaling = try HFModelConfig.parseRope(ConfigObject(object: ["rope_scaling": scaling], path: c.path, prefix: "")).scaling
        }
        if let params = c.value("rope_parameters")?.objectValue {
            for (key, isGlobal) in [("full_attention", true), ("sliding_attention", false)] {
                guard let o = params[key] else { continue }
                let r = try HFModelConfig.parseRope(ConfigObject(object: ["rope_parameters": o], path: c.path, prefix: "rope_parameters.\(key)."),
                                                    defaultTheta: isGlobal ? global.theta : local)
                if isGlobal { global = (r.theta, r.scaling) } else {
                    guard r.scaling == nil else { throw c.fail("rope_parameters.sliding_attention", "has a scaling; only the full-attention layers are scaled") }
                    local = r.theta
                }
            }
        }
        if let cap = try c.double("attn_logit_softcapping") {
            throw c.fail("attn_logit_softcapping", "= \(cap): attention logit soft-capping is not supported yet")
        }
        let activation = try c.string("hidden_activation", "hidden_act") ?? "gelu_pytorch_tanh"
        guard ["gelu_pytorch_tanh", "gelu_new"].contains(activation) else {
            throw c.fail("hidden_activation", "'\(activation)' is not supported (gelu_pytorch_tanh)")
        }
        var config = HFModelConfig(
            modelType: .gemma3Text, vocabSize: try c.int("vocab_size") ?? 262_208, hiddenSize: hidden, numLayers: layers,
            numHeads: heads, numKVHeads: try c.int("num_key_value_heads") ?? 4, headDim: try c.int("head_dim") ?? 256,
            intermediateSize: try c.requiredInt("intermediate_size"),
            maxPositionEmbeddings: try c.int("max_position_embeddings") ?? 131_072, normEps: try c.double("rms_norm_eps") ?? 1e-6,
            ropeTheta: global.theta, ropeScaling: global.scaling, attentionBias: try c.bool("attention_bias", default: false),
            tieWordEmbeddings: try c.bool("tie_word_embeddings", default: true), activation: "gelu_pytorch_tanh",
            slidingWindow: try c.int("sliding_window") ?? 4096, useSlidingWindow: true,
            bosTokenId: try c.int("bos_token_id"), eosTokenIds: try c.intList("eos_token_id") ?? [])
        let pattern = try c.int("sliding_window_pattern") ?? 6
        guard pattern >= 1 else { throw c.fail("sliding_window_pattern", "must be at least 1") }
        config.layerTypes = try c.stringList("layer_types")
            ?? (0..<layers).map { ($0 + 1) % pattern != 0 ? "sliding_attention" : "full_attention" }
        guard config.layerTypes!.count == layers, config.layerTypes!.allSatisfy({ ["sliding_attention", "full_attention"].contains($0) }) else {
            throw c.fail("layer_types", "needs sliding_attention or full_attention for each of the \(layers) layers")
        }
        config.familyKeys["rope_local_base_freq"] = .double(local)
        config.familyKeys["query_pre_attn_scalar"] = .double(try c.double("query_pre_attn_scalar") ?? 256)
        if let cap = try c.double("final_logit_softcapping") { config.familyKeys["final_logit_softcapping"] = .double(cap) }
        return config
    }

    /// This family's own settings (`HFModelConfig.familyKeys`).
    static func localTheta(_ c: HFModelConfig) -> Double { c.familyKeys["rope_local_base_freq"]?.doubleValue ?? 10_000 }
    static func queryPreAttnScalar(_ c: HFModelConfig) -> Double {
        c.familyKeys["query_pre_attn_scalar"]?.doubleValue ?? Double(c.headDim)
    }
    static func finalLogitSoftcapping(_ c: HFModelConfig) -> Double? { c.familyKeys["final_logit_softcapping"]?.doubleValue }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = LlamaLayout.write(config)
        for k in ["rope_theta", "rope_scaling", "hidden_act"] { o.removeValue(forKey: k) }
        var full: [String: JSONValue] = ["rope_theta": .double(config.ropeTheta ?? 1_000_000), "rope_type": .string("default")]
        if let s = config.ropeScaling { full.merge(s.hfJSON) { _, b in b } }
        o["rope_parameters"] = .object([
            "full_attention": .object(full),
            "sliding_attention": .object(["rope_theta": .double(Self.localTheta(config)), "rope_type": .string("default")]),
        ])
        o["hidden_activation"] = .string("gelu_pytorch_tanh")
        let scalar = Self.queryPreAttnScalar(config)  // an int in Gemma3TextConfig when whole
        o["query_pre_attn_scalar"] = scalar == scalar.rounded() && scalar.magnitude < 1e15 ? .int(Int64(scalar)) : .double(scalar)
        o["sliding_window"] = config.slidingWindow.map { .int(Int64($0)) } ?? .null
        o["layer_types"] = .array((config.layerTypes ?? []).map { .string($0) })
        o["final_logit_softcapping"] = Self.finalLogitSoftcapping(config).map { .double($0) } ?? .null
        o["attn_logit_softcapping"] = .null
        return o
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        try LlamaLayout.identityMap(LlamaLayout.attentionNames(config, qkNorm: true, placement: .sandwich) + LlamaLayout.swigluNames(bias: false),
                                    tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        LlamaLayout.shapes(config, qkNorm: true, normBias: false, placement: .sandwich) { _ in
            LlamaLayout.swigluShapes(hidden: config.hiddenSize, inner: config.intermediateSize, bias: false)
        }
    }

    func recipe(_ c: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = LlamaLayout.commonRecipe(c)
        model["norm"] = .map(["kind": .string("rmsnorm"), "eps": .double(c.normEps), "unit_offset": .bool(true)])
        model["norm_placement"] = .string("sandwich")
        model["embedding_scale"] = .double(Double(c.hiddenSize).squareRoot())
        if let cap = Self.finalLogitSoftcapping(c) { model["final_logit_softcap"] = .double(cap) }
        model["attention"] = .map([
            "heads": .int(c.numHeads), "kv_heads": .int(c.numKVHeads), "head_dim": .int(c.headDim), "bias": .bool(c.attentionBias),
            "qk_norm": .bool(true), "qk_norm_eps": .double(c.normEps),
            "scale": .double(1 / Self.queryPreAttnScalar(c).squareRoot()),
        ])
        var rope: [String: ConfigValue] = ["kind": .string("rope"), "theta": .double(c.ropeTheta ?? 1_000_000)]
        if let s = c.ropeScaling {
            guard Components.ropeScalings.factories[s.type] != nil else {
                throw ToolkitError("\(path): rope_parameters.full_attention.rope_type: '\(s.type)' is not supported")
            }
            rope["scaling"] = .map(s.recipeOptions)
        }
        model["position"] = .map(rope)
        model["mlp"] = .map(["kind": .string("geglu"), "intermediate_size": .int(c.intermediateSize)])
        let types = c.layerTypes ?? Array(repeating: "full_attention", count: c.numLayers)
        model["layer_types"] = .list(types.map { .string($0) })
        var sliding: [String: ConfigValue] = ["position": .map(["theta": .double(Self.localTheta(c)), "scaling": .null])]
        if let w = c.slidingWindow { sliding["attention"] = .map(["window": .int(w)]) }
        model["layer_type_overrides"] = .map(["sliding_attention": .map(sliding), "full_attention": .map([:])])
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try LlamaLayout.config(
            of: model, type: .gemma3Text, qkNorm: true, placement: .sandwich,
            layerPosition: { $0.kind == "rope" && $0["scaling"] == nil }, layerPositionRule: "rope without scaling on sliding-window layers")
        let norms = [model.norm] + model.layers.flatMap(\.norms)
        guard norms.allSatisfy({ $0.options.bool("unit_offset") == true }) else { throw FamilyMismatch("needs RMSNorm with unit_offset (1 + w)") }
        let mlps = model.layers.map(\.mlp.options)
        guard mlps.allSatisfy({ $0 == mlps[0] }), mlps[0].kind == "geglu", mlps[0].bool("bias") != true,
              let inner = mlps[0].int("intermediate_size") else { throw FamilyMismatch("needs GeGLU MLPs without biases") }
        config.intermediateSize = inner
        guard model.embeddingScale == Float(Double(model.dims.hiddenSize).squareRoot()) else {
            throw FamilyMismatch("needs embedding_scale √hidden (\(Double(model.dims.hiddenSize).squareRoot()))")
        }
        let scale = model.layers[0].attention.options.double("scale") ?? 1 / Double(model.dims.headDim).squareRoot()
        let scalar = 1 / (scale * scale)
        config.familyKeys["query_pre_attn_scalar"] = .double((scalar - scalar.rounded()).magnitude < 1e-6 * scalar ? scalar.rounded() : scalar)
        let windows = model.layers.map(\.attention.window)
        let local = model.layers.filter { $0.attention.window != nil }
        guard let w = windows.compactMap({ $0 }).first, windows.allSatisfy({ $0 == nil || $0 == w }),
              model.layers.allSatisfy({ $0.attention.window != nil || $0.attention.position.options == model.position.options }),
              local.allSatisfy({ $0.attention.position.options["scaling"] == nil })
        else { throw FamilyMismatch("needs one sliding window on the local layers (RoPE without scaling) and the model's RoPE on the full layers") }
        config.slidingWindow = w
        config.useSlidingWindow = true
        config.layerTypes = windows.map { $0 == nil ? "full_attention" : "sliding_attention" }
        guard let localTheta = local.first?.attention.position.options.double("theta"),
              local.allSatisfy({ $0.attention.position.options.double("theta") == localTheta }) else {
            throw FamilyMismatch("needs one RoPE base on the sliding-window layers")
        }
        config.familyKeys["rope_local_base_freq"] = .double(localTheta)
        if let cap = model.finalLogitSoftcap { config.familyKeys["final_logit_softcapping"] = .double(Double(cap)) }
        config.activation = "gelu_pytorch_tanh"
        return config
    }
}
