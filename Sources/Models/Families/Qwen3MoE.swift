import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let qwen3Moe = Self(rawValue: "qwen3_moe")
}

/// HF Qwen3-MoE (`Qwen3MoeForCausalLM`, `model_type: qwen3_moe`): Qwen3 with sparse SwiGLU experts
/// behind a softmax router on the layers `decoder_sparse_step` and `mlp_only_layers` pick, dense
/// SwiGLU (`intermediate_size`) on the others. Expert weights in the Hub layout `mlp.experts.{E}.*`.
struct Qwen3MoEFamily: ModelFamily {
    let modelType = "qwen3_moe"
    let architecture = "Qwen3MoeForCausalLM"
    let traits = FamilyTraits(qkNorm: true)
    let recipes = ["qwen3-moe-small"]

    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        var config = try Qwen3Family.parse(c, type: .qwen3Moe)
        config.moe = HFModelConfig.MoE(
            numExperts: try c.int("num_local_experts", "num_experts") ?? 128,
            numExpertsPerToken: try c.int("num_experts_per_tok") ?? 8,
            moeIntermediateSize: try c.int("moe_intermediate_size") ?? 768,
            normTopKProb: try c.bool("norm_topk_prob", default: false),
            routerAuxLossCoef: try c.double("router_aux_loss_coef") ?? 0.001,
            decoderSparseStep: try c.int("decoder_sparse_step") ?? 1,
            mlpOnlyLayers: try c.intList("mlp_only_layers") ?? [],
            outputRouterLogits: try c.bool("output_router_logits", default: false))
        return config
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = Qwen3Family.write(config)
        if let m = config.moe {
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
        return o
    }

    private func sparse(_ config: HFModelConfig) -> [Bool] {
        (0..<config.numLayers).map { config.moe?.isSparse(layer: $0) ?? false }
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        var names = LlamaLayout.attentionNames(config, qkNorm: true)
        let sparse = sparse(config)
        if sparse.contains(false) { names += LlamaLayout.swigluNames(bias: false) }
        if sparse.contains(true) {
            names.append("model.layers.{L}.mlp.gate.weight")
            names += LlamaLayout.swigluNames(prefix: "model.layers.{L}.mlp.experts.{E}.", bias: false)
        }
        return try LlamaLayout.identityMap(names, tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        let h = config.hiddenSize
        return LlamaLayout.shapes(config, qkNorm: true, normBias: false) { layer in
            guard let m = config.moe, m.isSparse(layer: layer) else {
                return LlamaLayout.swigluShapes(hidden: h, inner: config.intermediateSize, bias: false)
            }
            var s = ["gate.weight": [m.numExperts, h]]
            for e in 0..<m.numExperts {
                s.merge(LlamaLayout.swigluShapes(hidden: h, inner: m.moeIntermediateSize, bias: false, prefix: "experts.\(e).")) { a, _ in a }
            }
            return s
        }
    }

    func recipe(_ c: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = try Qwen3Family.recipe(c, path: path)
        guard let m = c.moe else { return model }
        var mlp: [String: ConfigValue] = [
            "kind": .string("moe"), "experts": .int(m.numExperts), "top_k": .int(m.numExpertsPerToken),
            "intermediate_size": .int(m.moeIntermediateSize), "norm_topk_prob": .bool(m.normTopKProb),
            "aux_loss_coef": .double(m.outputRouterLogits ? m.routerAuxLossCoef : 0), "sparse_step": .int(m.decoderSparseStep),
            "mlp_only_layers": .list(m.mlpOnlyLayers.map { .int($0) }),
        ]
        if sparse(c).contains(false) { mlp["dense_intermediate_size"] = .int(c.intermediateSize) }
        model["mlp"] = .map(mlp)
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try Qwen3Family.config(of: model, type: .qwen3Moe)
        let mlps = model.layers.map(\.mlp.options)
        let sparse = mlps.indices.filter { mlps[$0].kind == "moe" }
        guard let first = sparse.first else { throw FamilyMismatch("has no mixture-of-experts layer") }
        let m = mlps[first]
        guard sparse.allSatisfy({ mlps[$0] == m }), let experts = m.int("experts"), let k = m.int("top_k"),
              let inner = m.int("intermediate_size"), let aux = m.double("aux_loss_coef") else {
            throw FamilyMismatch("needs the same mixture of experts in every sparse layer")
        }
        for key in ["routing", "router_bias", "expert_bias", "expert_activation"] where m[key] != nil {
            throw FamilyMismatch("needs Qwen3-MoE's router and experts (softmax, then top-k; no biases; SwiGLU), not \(key): \(m[key]!)")
        }
        let dense = try LlamaLayout.denseSwiGLU(mlps.filter { $0.kind != "moe" })
        if dense?.bias == true { throw FamilyMismatch("needs dense SwiGLU MLPs without biases") }
        config.intermediateSize = dense?.inner ?? inner
        config.moe = HFModelConfig.MoE(
            numExperts: experts, numExpertsPerToken: k, moeIntermediateSize: inner, normTopKProb: m.bool("norm_topk_prob") == true,
            routerAuxLossCoef: aux > 0 ? aux : 0.001, mlpOnlyLayers: mlps.indices.filter { mlps[$0].kind != "moe" },
            outputRouterLogits: aux > 0)
        return config
    }
}
