import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let llama = Self(rawValue: "llama")
}

/// HF Llama (`LlamaForCausalLM`, `model_type: llama`; Llama 2, 3, 3.1, 3.2): the Llama layout
/// without QK-norm, optional attention and MLP biases (`attention_bias`, `mlp_bias`), tied or untied
/// head, any RoPE scaling with an HF `rope_type` (Llama 3.1+ uses `llama3`).
struct LlamaFamily: ModelFamily {
    let modelType = "llama"
    let architecture = "LlamaForCausalLM"
    let traits = FamilyTraits()
    let recipes = ["llama3.2-1b"]

    /// LlamaConfig: vocabulary 32000, 2048 positions and head_dim = hidden/heads by default.
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        try LlamaLayout.parse(c, type: .llama, defaults: .init(headDim: nil, maxPositions: 2048, vocabSize: 32000))
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = LlamaLayout.write(config)
        o["mlp_bias"] = .bool(config.mlpBias)
        o["pretraining_tp"] = .int(1)
        return o
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        try LlamaLayout.identityMap(
            LlamaLayout.attentionNames(config, qkNorm: false) + LlamaLayout.swigluNames(bias: config.mlpBias),
            tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        LlamaLayout.shapes(config, qkNorm: false, normBias: false) { _ in
            LlamaLayout.swigluShapes(hidden: config.hiddenSize, inner: config.intermediateSize, bias: config.mlpBias)
        }
    }

    func recipe(_ config: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        try LlamaLayout.recipe(config, qkNorm: false, path: path)
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try LlamaLayout.config(of: model, type: .llama, qkNorm: false)
        guard model.layers.allSatisfy({ $0.attention.window == nil }) else { throw FamilyMismatch("has no sliding window") }
        guard let dense = try LlamaLayout.denseSwiGLU(model.layers.map(\.mlp.options)) else {
            throw FamilyMismatch("needs SwiGLU MLPs")
        }
        config.intermediateSize = dense.inner
        config.mlpBias = dense.bias
        return config
    }
}
