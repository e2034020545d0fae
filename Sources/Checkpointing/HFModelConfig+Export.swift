import Foundation
import ToolkitSupport

extension HFModelConfig {
    /// The HF architecture class for `architectures`.
    public var architecture: String {
        switch modelType {
        case .gpt2: "GPT2LMHeadModel"
        case .qwen3: "Qwen3ForCausalLM"
        case .qwen3Moe: "Qwen3MoeForCausalLM"
        }
    }

    /// The `config.json` object for export: transformers-5 keys (`rope_parameters`,
    /// `num_local_experts`, `dtype`) plus the transformers-4 spellings of the same values
    /// (`rope_theta`, `rope_scaling`, `num_experts`, `torch_dtype`), which both versions accept,
    /// so either can load the result. `parse` of the output gives back `self`.
    package var hfJSON: JSONValue {
        var o: [String: JSONValue] = [
            "architectures": .array([.string(architecture)]),
            "model_type": .string(modelType.rawValue),
            "vocab_size": .int(Int64(vocabSize)),
            "tie_word_embeddings": .bool(tieWordEmbeddings),
            "bos_token_id": bosTokenId.map { .int(Int64($0)) } ?? .null,
            "eos_token_id": eosTokenIds.count == 1
                ? .int(Int64(eosTokenIds[0]))
                : eosTokenIds.isEmpty ? .null : .array(eosTokenIds.map { .int(Int64($0)) }),
            "use_cache": .bool(true),
        ]
        if let dtype {
            o["dtype"] = .string(dtype)
            o["torch_dtype"] = .string(dtype)
        }
        switch modelType {
        case .gpt2:
            o["n_embd"] = .int(Int64(hiddenSize))
            o["n_layer"] = .int(Int64(numLayers))
            o["n_head"] = .int(Int64(numHeads))
            o["n_positions"] = .int(Int64(maxPositionEmbeddings))
            o["n_inner"] = .int(Int64(intermediateSize))
            o["layer_norm_epsilon"] = .double(normEps)
            o["activation_function"] = .string(activation)
            // The toolkit's exported models are evaluated without dropout.
            for k in ["attn_pdrop", "embd_pdrop", "resid_pdrop"] { o[k] = .double(0) }
        case .qwen3, .qwen3Moe:
            o["hidden_size"] = .int(Int64(hiddenSize))
            o["num_hidden_layers"] = .int(Int64(numLayers))
            o["num_attention_heads"] = .int(Int64(numHeads))
            o["num_key_value_heads"] = .int(Int64(numKVHeads))
            o["head_dim"] = .int(Int64(headDim))
            o["intermediate_size"] = .int(Int64(intermediateSize))
            o["max_position_embeddings"] = .int(Int64(maxPositionEmbeddings))
            o["rms_norm_eps"] = .double(normEps)
            o["hidden_act"] = .string(activation)
            o["attention_bias"] = .bool(attentionBias)
            o["attention_dropout"] = .double(0)
            o["use_sliding_window"] = .bool(useSlidingWindow)
            o["sliding_window"] = slidingWindow.map { .int(Int64($0)) } ?? .null
            if let maxWindowLayers { o["max_window_layers"] = .int(Int64(maxWindowLayers)) }
            let theta = ropeTheta ?? 10000
            var params: [String: JSONValue] = ["rope_theta": .double(theta)]
            var scaling: [String: JSONValue] = [:]
            if let s = ropeScaling {
                scaling = s.hfJSON
                params.merge(scaling) { a, _ in a }
            } else {
                params["rope_type"] = .string("default")
            }
            if let p = partialRotaryFactor {
                params["partial_rotary_factor"] = .double(p)
                o["partial_rotary_factor"] = .double(p)
            }
            o["rope_parameters"] = .object(params)
            o["rope_theta"] = .double(theta)
            o["rope_scaling"] = scaling.isEmpty ? .null : .object(scaling)
            if let m = moe {
                o["num_experts"] = .int(Int64(m.numExperts))
                o["num_local_experts"] = .int(Int64(m.numExperts))
                o["num_experts_per_tok"] = .int(Int64(m.numExpertsPerToken))
                o["moe_intermediate_size"] = .int(Int64(m.moeIntermediateSize))
                o["norm_topk_prob"] = .bool(m.normTopKProb)
                o["router_aux_loss_coef"] = .double(m.routerAuxLossCoef)
                o["output_router_logits"] = .bool(m.outputRouterLogits)
                o["decoder_sparse_step"] = .int(Int64(m.decoderSparseStep))
                o["mlp_only_layers"] = .array(m.mlpOnlyLayers.map { .int(Int64($0)) })
            }
        }
        return .object(o)
    }

    /// `config.json` text (2-space indent, sorted keys, trailing newline).
    public func hfConfigJSON() -> String { hfJSON.rendered() + "\n" }

    /// Writes `config.json` atomically.
    public func writeHFConfig(to path: String) throws {
        try validate(path: path)
        try AtomicFile.write(hfConfigJSON(), to: path)
    }
}

extension HFModelConfig.RopeScaling {
    /// The scaling entries in HF spelling, including `rope_type`.
    var hfJSON: [String: JSONValue] {
        var o: [String: JSONValue] = ["rope_type": .string(type)]
        let doubles: [(String, Double?)] = [
            ("factor", factor), ("beta_fast", betaFast), ("beta_slow", betaSlow),
            ("attention_factor", attentionFactor), ("mscale", mscale),
            ("mscale_all_dim", mscaleAllDim), ("low_freq_factor", lowFreqFactor),
            ("high_freq_factor", highFreqFactor),
        ]
        for case (let k, let v?) in doubles { o[k] = .double(v) }
        if let originalMaxPositionEmbeddings {
            o["original_max_position_embeddings"] = .int(Int64(originalMaxPositionEmbeddings))
        }
        if let truncate { o["truncate"] = .bool(truncate) }
        return o
    }
}
