import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let olmo2 = Self(rawValue: "olmo2")
}

/// HF OLMo 2 (`Olmo2ForCausalLM`, `model_type: olmo2`). Over Qwen3:
/// - the norms sit on the branch outputs, inside the residual, with no pre-norm
///   (`norm_placement: post`: `post_attention_layernorm`, `post_feedforward_layernorm`);
/// - QK-norm over the whole q and k projections, not per head (`qk_norm_scope: projection`);
/// - no sliding windows; RMSNorm eps 1e-5, 2048 positions and an untied head by default.
struct OLMo2Family: ModelFamily {
    let modelType = "olmo2"
    let architecture = "Olmo2ForCausalLM"
    let traits = FamilyTraits(qkNorm: true)
    let recipes = ["olmo2-1b"]

    /// Olmo2Config: vocabulary 50304, 2048 positions, rms_norm_eps 1e-5, head_dim = hidden / heads.
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        var config = try LlamaLayout.parse(c, type: .olmo2, defaults: .init(headDim: nil, maxPositions: 2048, normEps: 1e-5, vocabSize: 50304))
        config.mlpBias = false
        return config
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] { LlamaLayout.write(config) }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        try LlamaLayout.identityMap(LlamaLayout.attentionNames(config, qkNorm: true, placement: .post) + LlamaLayout.swigluNames(bias: false),
                                    tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        LlamaLayout.shapes(config, qkNorm: true, normBias: false, placement: .post, qkNormScope: .projection) { _ in
            LlamaLayout.swigluShapes(hidden: config.hiddenSize, inner: config.intermediateSize, bias: false)
        }
    }

    func recipe(_ config: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = try LlamaLayout.recipe(config, qkNorm: true, path: path)
        model["norm_placement"] = .string("post")
        if case .map(var a)? = model["attention"] {
            a["qk_norm_scope"] = .string("projection")
            model["attention"] = .map(a)
        }
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try LlamaLayout.config(of: model, type: .olmo2, qkNorm: true, qkNormScope: .projection, placement: .post)
        guard model.layers.allSatisfy({ $0.attention.window == nil }) else { throw FamilyMismatch("has no sliding window") }
        guard let dense = try LlamaLayout.denseSwiGLU(model.layers.map(\.mlp.options)), !dense.bias else {
            throw FamilyMismatch("needs SwiGLU MLPs without biases")
        }
        config.intermediateSize = dense.inner
        return config
    }
}
