import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let qwen3 = Self(rawValue: "qwen3")
}

/// HF Qwen3 (`Qwen3ForCausalLM`, `model_type: qwen3`): the Llama layout with QK-norm (RMSNorm per
/// head on q and k before RoPE), optional attention biases and sliding windows from
/// `max_window_layers` on.
struct Qwen3Family: ModelFamily {
    let modelType = "qwen3"
    let architecture = "Qwen3ForCausalLM"
    let traits = FamilyTraits(qkNorm: true)
    let recipes = ["qwen3-0.6b"]

    /// Qwen3Config (transformers 4.5x and 5.x).
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        try Self.parse(c, type: .qwen3)
    }

    /// The Qwen3 keys (also Qwen3-MoE's): the Llama layout, head_dim 128 and 32768 positions by
    /// default, sliding-window keys; no MLP biases.
    static func parse(_ c: ConfigObject, type: HFModelConfig.ModelType) throws -> HFModelConfig {
        var config = try LlamaLayout.parse(c, type: type, defaults: .init(headDim: 128, maxPositions: 32768))
        config.mlpBias = false
        config.slidingWindow = try c.int("sliding_window")
        config.useSlidingWindow = try c.bool("use_sliding_window", default: false)
        config.maxWindowLayers = try c.int("max_window_layers")
        config.layerTypes = try c.stringList("layer_types")
        return config
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] { Self.write(config) }

    static func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = LlamaLayout.write(config)
        o["use_sliding_window"] = .bool(config.useSlidingWindow)
        o["sliding_window"] = config.slidingWindow.map { .int(Int64($0)) } ?? .null
        if let m = config.maxWindowLayers { o["max_window_layers"] = .int(Int64(m)) }
        if let t = config.layerTypes { o["layer_types"] = .array(t.map { .string($0) }) }
        return o
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        try LlamaLayout.identityMap(LlamaLayout.attentionNames(config, qkNorm: true) + LlamaLayout.swigluNames(bias: false),
                                    tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        LlamaLayout.shapes(config, qkNorm: true, normBias: false) { _ in
            LlamaLayout.swigluShapes(hidden: config.hiddenSize, inner: config.intermediateSize, bias: false)
        }
    }

    func recipe(_ config: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        try Self.recipe(config, path: path)
    }

    /// Which layers have the sliding window, as HF Qwen3 decides: `layer_types` when given, else
    /// the layers from `max_window_layers` (28 by default) on; none unless `use_sliding_window`.
    static func slidingLayers(_ c: HFModelConfig) -> [Bool] {
        guard c.useSlidingWindow, c.slidingWindow != nil else { return Array(repeating: false, count: c.numLayers) }
        if let types = c.layerTypes { return types.map { $0 == "sliding_attention" } }
        return (0..<c.numLayers).map { $0 >= (c.maxWindowLayers ?? 28) }
    }

    /// The Qwen3 recipe: the Llama layout with QK-norm; sliding-window layers as `layer_types` named
    /// as HF names them, with the window in `layer_type_overrides.sliding_attention`.
    static func recipe(_ c: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = try LlamaLayout.recipe(c, qkNorm: true, path: path)
        let sliding = slidingLayers(c)
        if let w = c.slidingWindow, sliding.contains(true) {
            model["layer_types"] = .list(sliding.map { .string($0 ? "sliding_attention" : "full_attention") })
            model["layer_type_overrides"] = .map(["sliding_attention": .map(["attention": .map(["window": .int(w)])])])
        }
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try Self.config(of: model, type: .qwen3)
        guard let dense = try LlamaLayout.denseSwiGLU(model.layers.map(\.mlp.options)), !dense.bias else {
            throw FamilyMismatch("needs SwiGLU MLPs without biases")
        }
        config.intermediateSize = dense.inner
        return config
    }

    /// The Qwen3 export checks (also Qwen3-MoE's): QK-norm, and windows (if any) on every layer
    /// from one index on.
    static func config(of model: DecoderModel, type: HFModelConfig.ModelType) throws -> HFModelConfig {
        var config = try LlamaLayout.config(of: model, type: type, qkNorm: true)
        let windows = model.layers.map(\.attention.window)
        if let first = windows.firstIndex(where: { $0 != nil }) {
            guard windows.allSatisfy({ $0 == nil || $0 == windows[first] }) else {
                throw FamilyMismatch("needs one sliding-window size (layer_types say which layers have it)")
            }
            config.slidingWindow = windows[first]
            config.useSlidingWindow = true
            config.maxWindowLayers = first
            config.layerTypes = windows.map { $0 == nil ? "full_attention" : "sliding_attention" }
        }
        return config
    }
}
