import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let gpt2 = Self(rawValue: "gpt2")
}

/// HF GPT-2 (`GPT2LMHeadModel`, `model_type: gpt2`): learned absolute positions, LayerNorm with
/// biases, a GELU MLP, biases in every projection, Conv1D weights stored `[in, out]`.
struct GPT2Family: ModelFamily {
    let modelType = "gpt2"
    let architecture = "GPT2LMHeadModel"
    let traits = FamilyTraits(layerNorm: true, learnedPositions: true, residualDropout: true)
    let recipes = ["gpt2-124m"]

    /// GPT2Config (transformers `configuration_gpt2.py`), including its `attribute_map` aliases
    /// (`hidden_size` → `n_embd`, …).
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        let hidden = try c.requiredInt("n_embd", "hidden_size")
        let heads = try c.requiredInt("n_head", "num_attention_heads")
        var config = HFModelConfig(
            modelType: .gpt2,
            vocabSize: try c.int("vocab_size") ?? 50257,
            hiddenSize: hidden,
            numLayers: try c.requiredInt("n_layer", "num_hidden_layers"),
            numHeads: heads,
            numKVHeads: heads,
            headDim: heads > 0 ? hidden / heads : 0,
            intermediateSize: try c.int("n_inner") ?? (hidden.multipliedReportingOverflow(by: 4).overflow ? .max : 4 * hidden),
            maxPositionEmbeddings: try c.int("n_positions", "max_position_embeddings") ?? 1024,
            normEps: try c.double("layer_norm_epsilon") ?? 1e-5,
            attentionBias: true,
            mlpBias: true,
            tieWordEmbeddings: try c.bool("tie_word_embeddings", default: true),
            activation: try c.string("activation_function") ?? "gelu_new",
            bosTokenId: c.has("bos_token_id") ? try c.int("bos_token_id") : 50256,
            eosTokenIds: c.has("eos_token_id") ? try c.intList("eos_token_id") ?? [] : [50256])
        // GPT2Config's defaults are 0.1 each: HF trains GPT-2 with dropout unless the config says otherwise.
        config.dropout = DropoutRates(embedding: try c.double("embd_pdrop") ?? 0.1, attention: try c.double("attn_pdrop") ?? 0.1,
                                      residual: try c.double("resid_pdrop") ?? 0.1)
        return config
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o: [String: JSONValue] = [
            "n_embd": .int(Int64(config.hiddenSize)), "n_layer": .int(Int64(config.numLayers)),
            "n_head": .int(Int64(config.numHeads)), "n_positions": .int(Int64(config.maxPositionEmbeddings)),
            "n_inner": .int(Int64(config.intermediateSize)), "layer_norm_epsilon": .double(config.normEps),
            "activation_function": .string(config.activation),
        ]
        o["embd_pdrop"] = .double(config.dropout.embedding)
        o["attn_pdrop"] = .double(config.dropout.attention)
        o["resid_pdrop"] = .double(config.dropout.residual)
        return o
    }

    /// Keys with or without the `transformer.` prefix (exported with it, as `save_pretrained`
    /// does). The four Conv1D weights are stored `[in, out]` and transposed to `[out, in]`;
    /// `c_attn` (`[C, 3C]`, columns `[q | k | v]`) becomes q/k/v projections; the MLP becomes
    /// `mlp.fc_in` / `mlp.fc_out`; the causal-mask buffers `attn.bias` / `attn.masked_bias` are dropped.
    func weightMap(_ config: HFModelConfig) throws -> WeightMap { try Self.weightMap(tieWordEmbeddings: config.tieWordEmbeddings) }

    static func weightMap(tieWordEmbeddings: Bool) throws -> WeightMap {
        let l = "model.layers.{L}."
        var rules: [WeightMap.Rule] = [
            .init("wte.weight", "model.embed_tokens.weight"),
            .init("wpe.weight", "model.embed_positions.weight"),
            .init(source: ["h.{L}.attn.c_attn.weight"], target: ["q", "k", "v"].map { l + "self_attn.\($0)_proj.weight" },
                  transform: .splitRows(transposeFirst: true)),
            .init(source: ["h.{L}.attn.c_attn.bias"], target: ["q", "k", "v"].map { l + "self_attn.\($0)_proj.bias" },
                  transform: .splitRows(transposeFirst: false)),
            .init("h.{L}.attn.c_proj.weight", l + "self_attn.o_proj.weight", .transpose),
            .init("h.{L}.attn.c_proj.bias", l + "self_attn.o_proj.bias"),
            .init("h.{L}.mlp.c_fc.weight", l + "mlp.fc_in.weight", .transpose),
            .init("h.{L}.mlp.c_fc.bias", l + "mlp.fc_in.bias"),
            .init("h.{L}.mlp.c_proj.weight", l + "mlp.fc_out.weight", .transpose),
            .init("h.{L}.mlp.c_proj.bias", l + "mlp.fc_out.bias"),
        ]
        for p in ["weight", "bias"] {
            rules.append(.init("h.{L}.ln_1.\(p)", l + "input_layernorm.\(p)"))
            rules.append(.init("h.{L}.ln_2.\(p)", l + "post_attention_layernorm.\(p)"))
            rules.append(.init("ln_f.\(p)", "model.norm.\(p)"))
        }
        if !tieWordEmbeddings { rules.append(.init("lm_head.weight", "lm_head.weight")) }
        return try WeightMap(
            prefixAliases: ["transformer."], exportPrefix: "transformer.", rules: rules,
            ignored: ["h.{L}.attn.bias", "h.{L}.attn.masked_bias"],
            tiedDuplicates: tieWordEmbeddings ? ["lm_head.weight": "model.embed_tokens.weight"] : [:])
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        let (h, inner) = (config.hiddenSize, config.intermediateSize)
        var s = LlamaLayout.shapes(config, qkNorm: false, normBias: true) { _ in
            ["fc_in.weight": [inner, h], "fc_in.bias": [inner], "fc_out.weight": [h, inner], "fc_out.bias": [h]]
        }
        s["model.embed_positions.weight"] = [config.maxPositionEmbeddings, h]
        return s
    }

    func recipe(_ c: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        let approximation: String
        switch c.activation {
        case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": approximation = "tanh"
        case "gelu": approximation = "exact"
        default: throw ToolkitError("\(path): activation_function: '\(c.activation)' is not supported (gelu_new, gelu)")
        }
        var model = LlamaLayout.commonRecipe(c)
        model["attention"] = .map(["heads": .int(c.numHeads), "kv_heads": .int(c.numKVHeads), "head_dim": .int(c.headDim),
                                   "bias": .bool(true), "qk_norm": .bool(false)])
        model["norm"] = .map(["kind": .string("layernorm"), "eps": .double(c.normEps), "bias": .bool(true)])
        model["position"] = .map(["kind": .string("learned"), "max_positions": .int(c.maxPositionEmbeddings)])
        model["mlp"] = .map(["kind": .string("gelu"), "intermediate_size": .int(c.intermediateSize),
                             "approximation": .string(approximation), "bias": .bool(true)])
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        let d = model.dims
        let position = model.position.options
        guard model.layers.allSatisfy({ $0.attention.position.options == position }) else {
            throw FamilyMismatch("needs the same position encoding in every layer (layer_type_overrides change it)")
        }
        guard position.kind == "learned", let positions = position.int("max_positions") else {
            throw FamilyMismatch("needs learned positions, not \(model.position.label)")
        }
        guard model.layers.allSatisfy({ $0.placement == .pre }) else { throw FamilyMismatch("needs pre-norm blocks") }
        let norms = [model.norm] + model.layers.flatMap(\.norms)
        guard norms.allSatisfy({ $0.options.kind == "layernorm" && $0.options.bool("bias") == true }),
              let eps = model.norm.options.double("eps") else { throw FamilyMismatch("needs LayerNorm with biases") }
        let mlps = model.layers.map(\.mlp.options)
        guard mlps.allSatisfy({ $0 == mlps[0] }), mlps[0].kind == "gelu", mlps[0].bool("bias") == true,
              let inner = mlps[0].int("intermediate_size") else {
            throw FamilyMismatch("needs the same GELU MLP with biases in every layer")
        }
        let attention = model.layers.map(\.attention.options)
        guard attention.allSatisfy({ $0.bool("bias") == true && $0.bool("qk_norm") == false && $0["window"] == .null }),
              d.heads == d.kvHeads, d.headDim * d.heads == d.hiddenSize else {
            throw FamilyMismatch("needs multi-head attention with biases, head_dim = hidden/heads, no QK-norm and no window")
        }
        return HFModelConfig(
            modelType: .gpt2, vocabSize: d.vocabSize, hiddenSize: d.hiddenSize, numLayers: d.layers, numHeads: d.heads,
            numKVHeads: d.heads, headDim: d.headDim, intermediateSize: inner, maxPositionEmbeddings: positions, normEps: eps,
            attentionBias: true, mlpBias: true, tieWordEmbeddings: d.tieWordEmbeddings,
            activation: mlps[0].string("approximation") == "exact" ? "gelu" : "gelu_new", dtype: "float32")
    }
}
