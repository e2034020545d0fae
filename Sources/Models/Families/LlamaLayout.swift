import Checkpointing
import Layers
import ToolkitSupport

/// What the families with the HF Llama layout share (Llama, Qwen3, Qwen3-MoE, and the canonical
/// names of every model here): the config keys, identity weight names, shapes, the recipe blocks
/// for RMSNorm + RoPE + SwiGLU, and the export checks for them. A family file calls these and adds
/// its own differences.
enum LlamaLayout {
    // MARK: config.json

    /// The keys of `LlamaConfig`-like classes. `defaults` are the family class's defaults.
    struct Defaults {
        var headDim: Int?  // nil: hidden / heads
        var maxPositions: Int
        var normEps = 1e-6
        var vocabSize: Int?  // nil: required
        var ropeTheta = 10000.0
        var tieWordEmbeddings = false
    }

    static func parse(_ c: ConfigObject, type: HFModelConfig.ModelType, defaults: Defaults) throws -> HFModelConfig {
        let hidden = try c.requiredInt("hidden_size")
        let heads = try c.requiredInt("num_attention_heads")
        let rope = try HFModelConfig.parseRope(c, defaultTheta: defaults.ropeTheta)
        return HFModelConfig(
            modelType: type,
            vocabSize: try defaults.vocabSize.map { try c.int("vocab_size") ?? $0 } ?? c.requiredInt("vocab_size"),
            hiddenSize: hidden,
            numLayers: try c.requiredInt("num_hidden_layers"),
            numHeads: heads,
            numKVHeads: try c.int("num_key_value_heads") ?? heads,
            headDim: try c.int("head_dim") ?? defaults.headDim ?? (heads > 0 ? hidden / heads : 0),
            intermediateSize: try c.requiredInt("intermediate_size"),
            maxPositionEmbeddings: try c.int("max_position_embeddings") ?? defaults.maxPositions,
            normEps: try c.double("rms_norm_eps") ?? defaults.normEps,
            ropeTheta: rope.theta,
            ropeScaling: rope.scaling,
            partialRotaryFactor: rope.partialRotaryFactor,
            attentionBias: try c.bool("attention_bias", default: false),
            mlpBias: try c.bool("mlp_bias", default: false),
            tieWordEmbeddings: try c.bool("tie_word_embeddings", default: defaults.tieWordEmbeddings),
            activation: try c.string("hidden_act") ?? "silu",
            bosTokenId: try c.int("bos_token_id"),
            eosTokenIds: try c.intList("eos_token_id") ?? [])
    }

    static func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o: [String: JSONValue] = [
            "hidden_size": .int(Int64(config.hiddenSize)), "num_hidden_layers": .int(Int64(config.numLayers)),
            "num_attention_heads": .int(Int64(config.numHeads)), "num_key_value_heads": .int(Int64(config.numKVHeads)),
            "head_dim": .int(Int64(config.headDim)), "intermediate_size": .int(Int64(config.intermediateSize)),
            "max_position_embeddings": .int(Int64(config.maxPositionEmbeddings)), "rms_norm_eps": .double(config.normEps),
            "hidden_act": .string(config.activation), "attention_bias": .bool(config.attentionBias),
            "attention_dropout": .double(config.dropout.attention),
        ]
        let theta = config.ropeTheta ?? 10000
        var params: [String: JSONValue] = ["rope_theta": .double(theta)]
        var scaling: [String: JSONValue] = [:]
        if let s = config.ropeScaling {
            scaling = s.hfJSON
            params.merge(scaling) { a, _ in a }
        } else {
            params["rope_type"] = .string("default")
        }
        if let p = config.partialRotaryFactor {
            params["partial_rotary_factor"] = .double(p)
            o["partial_rotary_factor"] = .double(p)
        }
        o["rope_parameters"] = .object(params)
        o["rope_theta"] = .double(theta)
        o["rope_scaling"] = scaling.isEmpty ? .null : .object(scaling)
        return o
    }

    // MARK: weights

    /// The identity map on the canonical names `names` (templates with `{L}`, `{E}`); `lm_head`
    /// dropped when tied; rotary `inv_freq` buffers of older checkpoints ignored.
    static func identityMap(_ names: [String], tied: Bool) throws -> WeightMap {
        try WeightMap(
            rules: names.map { WeightMap.Rule($0, $0) },
            ignored: ["model.layers.{L}.self_attn.rotary_emb.inv_freq"],
            tiedDuplicates: tied ? ["lm_head.weight": "model.embed_tokens.weight"] : [:])
    }

    /// The block's norm names (see `TransformerBlock`).
    static func blockNorms(_ placement: NormPlacement) -> [String] {
        switch placement {
        case .pre: return ["input_layernorm", "post_attention_layernorm"]
        case .post: return ["post_attention_layernorm", "post_feedforward_layernorm"]
        case .sandwich: return ["input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"]
        }
    }

    /// Canonical names (templates) of the embeddings, norms and attention of `config`.
    static func attentionNames(_ config: HFModelConfig, qkNorm: Bool, placement: NormPlacement = .pre) -> [String] {
        let l = "model.layers.{L}."
        var names = ["model.embed_tokens.weight", "model.norm.weight"]
        names += blockNorms(placement).map { l + $0 + ".weight" }
        names += ["q_proj", "k_proj", "v_proj", "o_proj"].map { l + "self_attn.\($0).weight" }
        if config.attentionBias { names += ["q_proj", "k_proj", "v_proj", "o_proj"].map { l + "self_attn.\($0).bias" } }
        if qkNorm { names += ["q_norm", "k_norm"].map { l + "self_attn.\($0).weight" } }
        if !config.tieWordEmbeddings { names.append("lm_head.weight") }
        return names
    }

    /// Dense SwiGLU names under `model.layers.{L}.mlp.` (with biases when `bias`).
    static func swigluNames(prefix: String = "model.layers.{L}.mlp.", bias: Bool) -> [String] {
        let suffixes = bias ? [".weight", ".bias"] : [".weight"]
        return ["gate_proj", "up_proj", "down_proj"].flatMap { p -> [String] in suffixes.map { prefix + p + $0 } }
    }

    /// Canonical shapes: embeddings, norms (with biases when `normBias`), attention, and each
    /// layer's MLP entries from `mlp(layer)` (names relative to `model.layers.{i}.mlp.`).
    /// `qkNormScope` gives q_norm/k_norm their width (head_dim, or the whole projection).
    static func shapes(_ c: HFModelConfig, qkNorm: Bool, normBias: Bool, placement: NormPlacement = .pre,
                       qkNormScope: QKNormScope = .head, mlp: (Int) -> [String: [Int]]) -> [String: [Int]] {
        let h = c.hiddenSize
        var s: [String: [Int]] = ["model.embed_tokens.weight": [c.vocabSize, h], "model.norm.weight": [h]]
        if normBias { s["model.norm.bias"] = [h] }
        if !c.tieWordEmbeddings { s["lm_head.weight"] = [c.vocabSize, h] }
        let (q, kv) = (c.numHeads * c.headDim, c.numKVHeads * c.headDim)
        for layer in 0..<c.numLayers {
            let p = "model.layers.\(layer)."
            for n in blockNorms(placement) {
                s[p + n + ".weight"] = [h]
                if normBias { s[p + n + ".bias"] = [h] }
            }
            for (n, shape) in [("q", [q, h]), ("k", [kv, h]), ("v", [kv, h]), ("o", [h, q])] {
                s[p + "self_attn.\(n)_proj.weight"] = shape
                if c.attentionBias { s[p + "self_attn.\(n)_proj.bias"] = [shape[0]] }
            }
            if qkNorm {
                let whole = qkNormScope == .projection
                s[p + "self_attn.q_norm.weight"] = [whole ? q : c.headDim]
                s[p + "self_attn.k_norm.weight"] = [whole ? kv : c.headDim]
            }
            for (k, v) in mlp(layer) { s[p + "mlp." + k] = v }
        }
        return s
    }

    /// SwiGLU shapes relative to `mlp.` (`prefix` e.g. `experts.3.`).
    static func swigluShapes(hidden h: Int, inner: Int, bias: Bool, prefix: String = "") -> [String: [Int]] {
        var s = [prefix + "gate_proj.weight": [inner, h], prefix + "up_proj.weight": [inner, h], prefix + "down_proj.weight": [h, inner]]
        if bias { for (p, n) in [("gate_proj", inner), ("up_proj", inner), ("down_proj", h)] { s[prefix + p + ".bias"] = [n] } }
        return s
    }

    // MARK: recipes

    /// The dimensions every recipe from a config has.
    static func commonRecipe(_ c: HFModelConfig) -> [String: ConfigValue] {
        ["vocab_size": .int(c.vocabSize), "hidden_size": .int(c.hiddenSize), "layers": .int(c.numLayers),
         "context_length": .int(c.maxPositionEmbeddings), "tie_word_embeddings": .bool(c.tieWordEmbeddings)]
    }

    /// RMSNorm, RoPE (with the config's scaling, under the same kind name as HF's `rope_type`),
    /// attention (with QK-norm when `qkNorm`) and a SwiGLU MLP.
    static func recipe(_ c: HFModelConfig, qkNorm: Bool, path: String) throws -> [String: ConfigValue] {
        guard c.activation == "silu" else { throw ToolkitError("\(path): hidden_act: '\(c.activation)' is not supported (silu)") }
        var model = commonRecipe(c)
        var attention: [String: ConfigValue] = ["heads": .int(c.numHeads), "kv_heads": .int(c.numKVHeads), "head_dim": .int(c.headDim),
                                                "bias": .bool(c.attentionBias), "qk_norm": .bool(qkNorm)]
        if qkNorm { attention["qk_norm_eps"] = .double(c.normEps) }
        model["attention"] = .map(attention)
        model["norm"] = .map(["kind": .string("rmsnorm"), "eps": .double(c.normEps)])
        var rope: [String: ConfigValue] = ["kind": .string("rope"), "theta": .double(c.ropeTheta ?? 10_000)]
        if let p = c.partialRotaryFactor { rope["partial_rotary_factor"] = .double(p) }
        if let s = c.ropeScaling {
            guard Components.ropeScalings.factories[s.type] != nil else {
                throw ToolkitError("\(path): rope_parameters.rope_type: '\(s.type)' is not supported (default, \(Components.ropeScalings.kinds.joined(separator: ", ")))")
            }
            rope["scaling"] = .map(s.recipeOptions)
        }
        model["position"] = .map(rope)
        var mlp: [String: ConfigValue] = ["kind": .string("swiglu"), "intermediate_size": .int(c.intermediateSize)]
        if c.mlpBias { mlp["bias"] = .bool(true) }
        model["mlp"] = .map(mlp)
        return model
    }

    // MARK: export

    /// The checks every Llama-layout family makes, and the config fields they fix: RMSNorm
    /// everywhere, in `placement`; half-layout RoPE whose scaling has an HF `rope_type` in every
    /// layer (or a layer position block that `layerPosition` accepts, described by
    /// `layerPositionRule`: SmolLM3's NoPE, Gemma's local base); the same attention settings in
    /// every layer.
    static func config(of model: DecoderModel, type: HFModelConfig.ModelType, qkNorm: Bool,
                       qkNormScope: QKNormScope = .head, placement: NormPlacement = .pre,
                       layerPosition: (([String: ConfigValue]) -> Bool)? = nil, layerPositionRule: String = "") throws -> HFModelConfig {
        let d = model.dims
        guard model.layers.allSatisfy({ $0.placement == placement }) else { throw FamilyMismatch("needs \(placement.rawValue)-norm blocks") }
        let norms = [model.norm] + model.layers.flatMap(\.norms)
        guard norms.allSatisfy({ $0.options.kind == "rmsnorm" }), let eps = model.norm.options.double("eps") else {
            throw FamilyMismatch("needs RMSNorm")
        }
        let rope = model.position.options
        guard model.layers.allSatisfy({ $0.attention.position.options == rope || layerPosition?($0.attention.position.options) == true })
        else {
            throw FamilyMismatch("needs the same position encoding in every layer\(layerPosition == nil ? "" : " (or \(layerPositionRule))") (layer_type_overrides change it)")
        }
        guard rope.kind == "rope", rope.string("layout") == "half", let theta = rope.double("theta") else {
            throw FamilyMismatch("needs rotary positions in the half layout, not \(model.position.label)")
        }
        var scaling: HFModelConfig.RopeScaling? = nil
        if case .map(let s)? = rope["scaling"] {
            guard let r = HFModelConfig.RopeScaling(recipeOptions: s) else {
                throw FamilyMismatch("RoPE scaling '\(s.kind ?? "?")' has no HF rope_type")
            }
            scaling = r
        }
        let attention = model.layers.map(\.attention.options)
        let withoutWindow = attention.map { a in a.filter { $0.key != "window" } }
        guard withoutWindow.allSatisfy({ $0 == withoutWindow[0] }), attention[0].bool("qk_norm") == qkNorm,
              !qkNorm || attention[0].string("qk_norm_scope") == qkNormScope.rawValue else {
            throw FamilyMismatch("needs the same attention in every layer\(qkNorm ? ", with QK-norm per \(qkNormScope.rawValue)" : ", without QK-norm")")
        }
        let partial = rope.double("partial_rotary_factor") ?? 1
        return HFModelConfig(
            modelType: type, vocabSize: d.vocabSize, hiddenSize: d.hiddenSize, numLayers: d.layers, numHeads: d.heads,
            numKVHeads: d.kvHeads, headDim: d.headDim, intermediateSize: 0, maxPositionEmbeddings: d.contextLength,
            normEps: eps, ropeTheta: theta, ropeScaling: scaling, partialRotaryFactor: partial == 1 ? nil : partial,
            attentionBias: attention[0].bool("bias") == true, tieWordEmbeddings: d.tieWordEmbeddings, activation: "silu",
            dtype: "float32")
    }

    /// The one dense SwiGLU shape of `mlps` (the options of the dense layers), or why not.
    static func denseSwiGLU(_ mlps: [[String: ConfigValue]]) throws -> (inner: Int, bias: Bool)? {
        guard let first = mlps.first else { return nil }
        guard mlps.allSatisfy({ $0 == first }), first.kind == "swiglu", let inner = first.int("intermediate_size") else {
            throw FamilyMismatch("needs the same SwiGLU MLP in every dense layer")
        }
        return (inner, first.bool("bias") == true)
    }
}

extension HFModelConfig.RopeScaling {
    /// HF `rope_parameters` ↔ recipe `scaling` blocks: the recipe kind is the HF `rope_type` and
    /// the keys are HF's.
    nonisolated(unsafe) static let keys: [(String, WritableKeyPath<Self, Double?>)] = [
        ("factor", \.factor), ("beta_fast", \.betaFast), ("beta_slow", \.betaSlow), ("attention_factor", \.attentionFactor),
        ("mscale", \.mscale), ("mscale_all_dim", \.mscaleAllDim), ("low_freq_factor", \.lowFreqFactor),
        ("high_freq_factor", \.highFreqFactor),
    ]

    /// The recipe `scaling` block.
    var recipeOptions: [String: ConfigValue] {
        var o: [String: ConfigValue] = ["kind": .string(type)]
        for (k, path) in Self.keys { if let v = self[keyPath: path] { o[k] = .double(v) } }
        if let originalMaxPositionEmbeddings { o["original_max_position_embeddings"] = .int(originalMaxPositionEmbeddings) }
        if let truncate { o["truncate"] = .bool(truncate) }
        return o
    }

    /// From a component's `scaling` options; nil when the kind is no HF `rope_type`.
    init?(recipeOptions o: [String: ConfigValue]) {
        guard let kind = o.kind, HFModelConfig.supportedRopeTypes.contains(kind), kind != "default" else { return nil }
        self.init(type: kind)
        for (k, path) in Self.keys { self[keyPath: path] = o.double(k) }
        originalMaxPositionEmbeddings = o.int("original_max_position_embeddings")
        truncate = o.bool("truncate")
    }
}
