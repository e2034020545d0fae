import ToolkitSupport

/// Weight-map tables for the HF families the toolkit imports, as data.
///
/// Canonical names follow the HF Llama/Qwen layout (ARCHITECTURE.md §3.4): `model.embed_tokens`,
/// `model.layers.{L}.{input_layernorm,self_attn.*,post_attention_layernorm,mlp.*}`,
/// `model.norm`, `lm_head` (absent when tied).
extension WeightMap {
    /// The table for `config.modelType`.
    public static func forConfig(_ config: HFModelConfig) throws -> WeightMap {
        switch config.modelType {
        case .gpt2: try gpt2(tieWordEmbeddings: config.tieWordEmbeddings)
        case .qwen3, .qwen3Moe: try qwen3(config)
        }
    }

    /// HF GPT-2 (`GPT2LMHeadModel`): keys with or without the `transformer.` prefix (exported
    /// with it, as `save_pretrained` does). The four Conv1D weights are stored `[in, out]` and
    /// transposed to `[out, in]`; `c_attn` (`[C, 3C]`, columns `[q | k | v]`) becomes q/k/v
    /// projections; the MLP becomes `mlp.fc_in` / `mlp.fc_out`; the causal-mask buffers
    /// `attn.bias` / `attn.masked_bias` are dropped.
    public static func gpt2(tieWordEmbeddings: Bool = true) throws -> WeightMap {
        let l = "model.layers.{L}."
        var rules: [Rule] = [
            Rule("wte.weight", "model.embed_tokens.weight"),
            Rule("wpe.weight", "model.embed_positions.weight"),
            Rule(
                source: ["h.{L}.attn.c_attn.weight"],
                target: ["q", "k", "v"].map { l + "self_attn.\($0)_proj.weight" },
                transform: .splitRows(transposeFirst: true)),
            Rule(
                source: ["h.{L}.attn.c_attn.bias"],
                target: ["q", "k", "v"].map { l + "self_attn.\($0)_proj.bias" },
                transform: .splitRows(transposeFirst: false)),
            Rule("h.{L}.attn.c_proj.weight", l + "self_attn.o_proj.weight", .transpose),
            Rule("h.{L}.attn.c_proj.bias", l + "self_attn.o_proj.bias"),
            Rule("h.{L}.mlp.c_fc.weight", l + "mlp.fc_in.weight", .transpose),
            Rule("h.{L}.mlp.c_fc.bias", l + "mlp.fc_in.bias"),
            Rule("h.{L}.mlp.c_proj.weight", l + "mlp.fc_out.weight", .transpose),
            Rule("h.{L}.mlp.c_proj.bias", l + "mlp.fc_out.bias"),
        ]
        for p in ["weight", "bias"] {
            rules.append(Rule("h.{L}.ln_1.\(p)", l + "input_layernorm.\(p)"))
            rules.append(Rule("h.{L}.ln_2.\(p)", l + "post_attention_layernorm.\(p)"))
            rules.append(Rule("ln_f.\(p)", "model.norm.\(p)"))
        }
        if !tieWordEmbeddings { rules.append(Rule("lm_head.weight", "lm_head.weight")) }
        return try WeightMap(
            prefixAliases: ["transformer."], exportPrefix: "transformer.", rules: rules,
            ignored: ["h.{L}.attn.bias", "h.{L}.attn.masked_bias"],
            tiedDuplicates: tieWordEmbeddings
                ? ["lm_head.weight": "model.embed_tokens.weight"] : [:])
    }

    /// HF Qwen3 / Qwen3-MoE: the identity on every key (the canonical layout *is* Qwen's);
    /// attention biases only when `attention_bias`, dense MLP rules when some layer is dense,
    /// per-expert rules (HF Hub layout `mlp.experts.{E}.*`) for MoE, `lm_head` dropped when tied.
    /// Rotary `inv_freq` buffers found in older checkpoints are ignored.
    public static func qwen3(_ config: HFModelConfig) throws -> WeightMap {
        let l = "model.layers.{L}."
        var names = ["model.embed_tokens.weight", "model.norm.weight"]
        names += ["input_layernorm.weight", "post_attention_layernorm.weight"].map { l + $0 }
        names += ["q_proj", "k_proj", "v_proj", "o_proj"].map { l + "self_attn.\($0).weight" }
        if config.attentionBias {
            names += ["q_proj", "k_proj", "v_proj", "o_proj"].map { l + "self_attn.\($0).bias" }
        }
        names += ["q_norm", "k_norm"].map { l + "self_attn.\($0).weight" }
        let sparse = (0..<config.numLayers).map { config.moe?.isSparse(layer: $0) ?? false }
        if sparse.contains(false) {
            names += ["gate_proj", "up_proj", "down_proj"].map { l + "mlp.\($0).weight" }
        }
        if sparse.contains(true) {
            names.append(l + "mlp.gate.weight")
            names += ["gate_proj", "up_proj", "down_proj"].map {
                l + "mlp.experts.{E}.\($0).weight"
            }
        }
        if !config.tieWordEmbeddings { names.append("lm_head.weight") }
        return try WeightMap(
            rules: names.map { Rule($0, $0) },
            ignored: [l + "self_attn.rotary_emb.inv_freq"],
            tiedDuplicates: config.tieWordEmbeddings
                ? ["lm_head.weight": "model.embed_tokens.weight"] : [:])
    }
}

extension HFModelConfig {
    /// The canonical parameter names and shapes of a model with this configuration (for strict
    /// verification of an import, `WeightMap.importTensors(_:expected:)`).
    public func canonicalShapes() -> [String: [Int]] {
        let h = hiddenSize
        let vocab = vocabSize
        var s: [String: [Int]] = [
            "model.embed_tokens.weight": [vocab, h], "model.norm.weight": [h],
        ]
        if !tieWordEmbeddings { s["lm_head.weight"] = [vocab, h] }
        if modelType == .gpt2 {
            s["model.embed_positions.weight"] = [maxPositionEmbeddings, h]
            s["model.norm.bias"] = [h]
        }
        let q = numHeads * headDim
        let kv = numKVHeads * headDim
        for layer in 0..<numLayers {
            let p = "model.layers.\(layer)."
            let norms = ["input_layernorm", "post_attention_layernorm"]
            for n in norms { s[p + n + ".weight"] = [h] }
            if usesLayerNorm { for n in norms { s[p + n + ".bias"] = [h] } }
            let proj: [(String, [Int])] = [
                ("q", [q, h]), ("k", [kv, h]), ("v", [kv, h]), ("o", [h, q]),
            ]
            for (n, shape) in proj {
                s[p + "self_attn.\(n)_proj.weight"] = shape
                if attentionBias { s[p + "self_attn.\(n)_proj.bias"] = [shape[0]] }
            }
            if usesQKNorm {
                s[p + "self_attn.q_norm.weight"] = [headDim]
                s[p + "self_attn.k_norm.weight"] = [headDim]
            }
            let inner = intermediateSize
            if modelType == .gpt2 {
                s[p + "mlp.fc_in.weight"] = [inner, h]
                s[p + "mlp.fc_in.bias"] = [inner]
                s[p + "mlp.fc_out.weight"] = [h, inner]
                s[p + "mlp.fc_out.bias"] = [h]
            } else if let m = moe, m.isSparse(layer: layer) {
                let mi = m.moeIntermediateSize
                s[p + "mlp.gate.weight"] = [m.numExperts, h]
                for e in 0..<m.numExperts {
                    s[p + "mlp.experts.\(e).gate_proj.weight"] = [mi, h]
                    s[p + "mlp.experts.\(e).up_proj.weight"] = [mi, h]
                    s[p + "mlp.experts.\(e).down_proj.weight"] = [h, mi]
                }
            } else {
                s[p + "mlp.gate_proj.weight"] = [inner, h]
                s[p + "mlp.up_proj.weight"] = [inner, h]
                s[p + "mlp.down_proj.weight"] = [h, inner]
            }
        }
        return s
    }
}
