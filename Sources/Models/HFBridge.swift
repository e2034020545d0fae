import Checkpointing
import Foundation
import Layers
import ToolkitSupport

extension Recipe {
    /// The recipe equivalent of an HF `config.json` (gpt2, qwen3, qwen3_moe).
    public static func fromHF(_ c: HFModelConfig, path: String) throws -> Recipe {
        var model: [String: ConfigValue] = [
            "vocab_size": .int(c.vocabSize), "hidden_size": .int(c.hiddenSize), "layers": .int(c.numLayers),
            "context_length": .int(c.maxPositionEmbeddings), "tie_word_embeddings": .bool(c.tieWordEmbeddings),
        ]
        var attention: [String: ConfigValue] = [
            "heads": .int(c.numHeads), "kv_heads": .int(c.numKVHeads), "head_dim": .int(c.headDim),
            "bias": .bool(c.attentionBias), "qk_norm": .bool(c.usesQKNorm),
        ]
        let family: String
        switch c.modelType {
        case .gpt2:
            family = "gpt2"
            model["norm"] = .map(["kind": .string("layernorm"), "eps": .double(c.normEps), "bias": .bool(true)])
            model["position"] = .map(["kind": .string("learned"), "max_positions": .int(c.maxPositionEmbeddings)])
            let approx: String
            switch c.activation {
            case "gelu_new", "gelu_pytorch_tanh", "gelu_fast": approx = "tanh"
            case "gelu": approx = "exact"
            default: throw ToolkitError("\(path): activation_function: '\(c.activation)' is not supported (gelu_new, gelu)")
            }
            model["mlp"] = .map(["kind": .string("gelu"), "intermediate_size": .int(c.intermediateSize),
                                 "approximation": .string(approx), "bias": .bool(true)])
        case .qwen3, .qwen3Moe:
            family = c.modelType.rawValue
            guard c.activation == "silu" else { throw ToolkitError("\(path): hidden_act: '\(c.activation)' is not supported (silu)") }
            model["norm"] = .map(["kind": .string("rmsnorm"), "eps": .double(c.normEps)])
            attention["qk_norm_eps"] = .double(c.normEps)
            var rope: [String: ConfigValue] = ["kind": .string("rope"), "theta": .double(c.ropeTheta ?? 10_000)]
            if let p = c.partialRotaryFactor { rope["partial_rotary_factor"] = .double(p) }
            if let s = c.ropeScaling {
                var sc: [String: ConfigValue] = [:]
                switch s.type {
                case "default": break
                case "linear": sc = ["kind": .string("linear"), "factor": .double(s.factor ?? 1)]
                case "yarn":
                    sc = ["kind": .string("yarn")]
                    sc["factor"] = .double(s.factor ?? Double(c.maxPositionEmbeddings) / Double(s.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings))
                    let extras: [(String, Double?)] = [("beta_fast", s.betaFast), ("beta_slow", s.betaSlow),
                                                       ("attention_factor", s.attentionFactor), ("mscale", s.mscale),
                                                       ("mscale_all_dim", s.mscaleAllDim)]
                    for (k, v) in extras { if let v { sc[k] = .double(v) } }
                    sc["original_max_position_embeddings"] = .int(s.originalMaxPositionEmbeddings ?? c.maxPositionEmbeddings)
                    if let t = s.truncate { sc["truncate"] = .bool(t) }
                default:
                    throw ToolkitError("\(path): rope_parameters.rope_type: '\(s.type)' is not supported (default, linear, yarn)")
                }
                if !sc.isEmpty { rope["scaling"] = .map(sc) }
            }
            model["position"] = .map(rope)
            if c.useSlidingWindow, let w = c.slidingWindow {
                attention["window"] = .int(w)
                attention["window_from_layer"] = .int(c.maxWindowLayers ?? 0)
            }
            if let m = c.moe {
                var mlp: [String: ConfigValue] = [
                    "kind": .string("moe"), "experts": .int(m.numExperts), "top_k": .int(m.numExpertsPerToken),
                    "intermediate_size": .int(m.moeIntermediateSize), "norm_topk_prob": .bool(m.normTopKProb),
                    "aux_loss_coef": .double(m.outputRouterLogits ? m.routerAuxLossCoef : 0), "sparse_step": .int(m.decoderSparseStep),
                    "mlp_only_layers": .list(m.mlpOnlyLayers.map { .int($0) }),
                ]
                if (0..<c.numLayers).contains(where: { !m.isSparse(layer: $0) }) {
                    mlp["dense_intermediate_size"] = .int(c.intermediateSize)
                }
                model["mlp"] = .map(mlp)
            } else {
                model["mlp"] = .map(["kind": .string("swiglu"), "intermediate_size": .int(c.intermediateSize)])
            }
        }
        model["attention"] = .map(attention)
        let name = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        return Recipe(name: name, path: path, family: family, description: "imported from \(path)", model: model)
    }

    /// The HF config this recipe corresponds to, for export. Throws when the architecture has no
    /// HF `model_type` among gpt2, qwen3 and qwen3_moe (e.g. ALiBi, or RoPE with LayerNorm).
    public func hfConfig(_ model: DecoderModel) throws -> HFModelConfig {
        func kind(_ block: String) -> String? {
            if case .map(let m)? = self.model[block], case .string(let k)? = m["kind"] { return k }
            return nil
        }
        func value(_ block: String, _ key: String) -> ConfigValue? {
            if case .map(let m)? = self.model[block] { return m[key] }
            return nil
        }
        func double(_ v: ConfigValue?) -> Double? {
            switch v { case .int(let i)?: return Double(i); case .double(let d)?: return d; default: return nil }
        }
        let d = model.dims
        let attn = model.layers[0].attention
        let pos = kind("position"), norm = kind("norm"), mlp = kind("mlp")
        let eps = double(value("norm", "eps")) ?? (norm == "layernorm" ? 1e-5 : 1e-6)
        if pos == "learned" && norm == "layernorm" && mlp == "gelu" && d.heads == d.kvHeads && attn.qNorm == nil {
            let approx: String
            if case .string(let a)? = value("mlp", "approximation") { approx = a } else { approx = "tanh" }
            let biases = attn.qProj.bias != nil && (model.layers[0].mlp as? GELUMLP)?.fcIn.bias != nil
                && (model.layers[0].inputNorm as? LayerNorm)?.bias != nil
            guard biases else { throw ToolkitError("\(name): HF gpt2 needs biases in every linear and LayerNorm") }
            guard d.headDim * d.heads == d.hiddenSize else { throw ToolkitError("\(name): HF gpt2 needs head_dim = hidden/heads") }
            return HFModelConfig(
                modelType: .gpt2, vocabSize: d.vocabSize, hiddenSize: d.hiddenSize, numLayers: d.layers, numHeads: d.heads,
                numKVHeads: d.heads, headDim: d.headDim, intermediateSize: (model.layers[0].mlp as! GELUMLP).fcIn.outFeatures,
                maxPositionEmbeddings: (model.position as! LearnedPositions).weight.shape[0], normEps: eps, attentionBias: true,
                tieWordEmbeddings: d.tieWordEmbeddings, activation: approx == "tanh" ? "gelu_new" : "gelu", dtype: "float32")
        }
        if pos == "rope", norm == "rmsnorm", mlp == "swiglu" || mlp == "moe", let rope = model.position as? RotaryEmbedding,
           rope.layout == .half, attn.qNorm != nil {
            var scaling: HFModelConfig.RopeScaling? = nil
            if let y = rope.scaling as? YaRNScaling {
                scaling = .init(type: "yarn", factor: y.factor, originalMaxPositionEmbeddings: y.originalMaxPositions, betaFast: y.betaFast,
                                betaSlow: y.betaSlow, attentionFactor: y.attentionFactor, mscale: y.mscale, mscaleAllDim: y.mscaleAllDim,
                                truncate: y.truncate)
            } else if let l = rope.scaling as? LinearRoPEScaling {
                scaling = .init(type: "linear", factor: l.factor)
            } else if rope.scaling != nil { throw ToolkitError("\(name): NTK-aware RoPE scaling has no static HF rope_type") }
            var moe: HFModelConfig.MoE? = nil
            var inter = 0
            for block in model.layers {
                if let m = block.mlp as? MoE {
                    moe = moe ?? .init(numExperts: m.experts.count, numExpertsPerToken: m.topK,
                                       moeIntermediateSize: m.experts[0].gateProj.outFeatures, normTopKProb: m.normalizeTopK,
                                       routerAuxLossCoef: m.auxLossCoefficient > 0 ? Double(m.auxLossCoefficient) : 0.001,
                                       outputRouterLogits: m.auxLossCoefficient > 0)
                } else if let s = block.mlp as? SwiGLUMLP {
                    inter = s.gateProj.outFeatures
                }
            }
            if var m = moe {
                m.mlpOnlyLayers = model.layers.indices.filter { !(model.layers[$0].mlp is MoE) }
                moe = m
                if inter == 0 { inter = m.moeIntermediateSize }
            }
            let window = model.layers.compactMap(\.attention.window).first
            return HFModelConfig(
                modelType: moe == nil ? .qwen3 : .qwen3Moe, vocabSize: d.vocabSize, hiddenSize: d.hiddenSize, numLayers: d.layers,
                numHeads: d.heads, numKVHeads: d.kvHeads, headDim: d.headDim, intermediateSize: inter,
                maxPositionEmbeddings: d.contextLength, normEps: eps, ropeTheta: rope.theta, ropeScaling: scaling,
                partialRotaryFactor: rope.rotaryDim == d.headDim ? nil : Double(rope.rotaryDim) / Double(d.headDim),
                attentionBias: attn.qProj.bias != nil, tieWordEmbeddings: d.tieWordEmbeddings, activation: "silu", moe: moe,
                slidingWindow: window, useSlidingWindow: window != nil,
                maxWindowLayers: window == nil ? nil : model.layers.firstIndex { $0.attention.window != nil }, dtype: "float32")
        }
        throw ToolkitError(
            "\(name): this architecture (position \(pos ?? "?"), norm \(norm ?? "?"), mlp \(mlp ?? "?")) has no HF model_type among gpt2, qwen3, qwen3_moe")
    }
}
