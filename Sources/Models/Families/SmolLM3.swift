import Checkpointing
import Layers
import ToolkitSupport

extension HFModelConfig.ModelType {
    public static let smollm3 = Self(rawValue: "smollm3")
}

/// HF SmolLM3 (`SmolLM3ForCausalLM`, `model_type: smollm3`). Over Qwen3:
/// - no QK-norm (the Llama layout);
/// - NoPE layers: `no_rope_layers[i] == 0` (by default every `no_rope_layer_interval`-th layer, 4)
///   rotates nothing, as the recipe's `layer_types` [rope, rope, rope, nope] with `nope: {position: {kind: none}}`;
/// - sliding windows only where `layer_types` (by default: the NoPE layers, when `use_sliding_window`) say;
/// - rope_theta 2,000,000, 32768 positions and a tied head by default.
struct SmolLM3Family: ModelFamily {
    let modelType = "smollm3"
    let architecture = "SmolLM3ForCausalLM"
    let traits = FamilyTraits()
    let recipes = ["smollm3-3b"]

    /// SmolLM3Config: vocabulary 128256, 32768 positions, theta 2e6, tied, NoPE every 4th layer.
    func parse(_ c: ConfigObject) throws -> HFModelConfig {
        var config = try LlamaLayout.parse(c, type: .smollm3, defaults: .init(
            headDim: nil, maxPositions: 32768, vocabSize: 128_256, ropeTheta: 2_000_000, tieWordEmbeddings: true))
        let interval = try c.int("no_rope_layer_interval") ?? 4
        guard interval >= 1 else { throw c.fail("no_rope_layer_interval", "must be at least 1") }
        let noRope = try c.intList("no_rope_layers") ?? (0..<config.numLayers).map { ($0 + 1) % interval != 0 ? 1 : 0 }
        guard noRope.count >= config.numLayers, noRope.allSatisfy({ $0 == 0 || $0 == 1 }) else {
            throw c.fail("no_rope_layers", "needs a 0 or 1 for each of the \(config.numLayers) layers")
        }
        let rotates = Array(noRope.prefix(config.numLayers))
        config.familyKeys["no_rope_layers"] = .array(rotates.map { .int(Int64($0)) })
        config.slidingWindow = try c.int("sliding_window")
        config.useSlidingWindow = try c.bool("use_sliding_window", default: false)
        config.layerTypes = try c.stringList("layer_types")
            ?? rotates.map { config.useSlidingWindow && config.slidingWindow != nil && $0 == 0 ? "sliding_attention" : "full_attention" }
        return config
    }

    /// `no_rope_layers` (`HFModelConfig.familyKeys`): 1 where a layer rotates, 0 for NoPE.
    static func rotates(_ c: HFModelConfig) -> [Int] {
        c.familyKeys["no_rope_layers"]?.arrayValue?.compactMap(\.intValue) ?? Array(repeating: 1, count: c.numLayers)
    }

    func write(_ config: HFModelConfig) -> [String: JSONValue] {
        var o = LlamaLayout.write(config)
        o["mlp_bias"] = .bool(config.mlpBias)
        o["pad_token_id"] = .null  // SmolLM3Config's default (128004) may lie outside a smaller vocabulary
        o["no_rope_layers"] = .array(Self.rotates(config).map { .int(Int64($0)) })
        o["no_rope_layer_interval"] = .int(4)
        o["use_sliding_window"] = .bool(config.useSlidingWindow)
        o["sliding_window"] = config.slidingWindow.map { .int(Int64($0)) } ?? .null
        if let t = config.layerTypes { o["layer_types"] = .array(t.map { .string($0) }) }
        return o
    }

    func weightMap(_ config: HFModelConfig) throws -> WeightMap {
        try LlamaLayout.identityMap(LlamaLayout.attentionNames(config, qkNorm: false) + LlamaLayout.swigluNames(bias: config.mlpBias),
                                    tied: config.tieWordEmbeddings)
    }

    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]] {
        LlamaLayout.shapes(config, qkNorm: false, normBias: false) { _ in
            LlamaLayout.swigluShapes(hidden: config.hiddenSize, inner: config.intermediateSize, bias: config.mlpBias)
        }
    }

    /// Each layer's type in the recipe: `rope` or `nope`, with `_sliding` where HF slides the window.
    func recipe(_ config: HFModelConfig, path: String) throws -> [String: ConfigValue] {
        var model = try LlamaLayout.recipe(config, qkNorm: false, path: path)
        let rotates = Self.rotates(config)
        let sliding = (0..<config.numLayers).map { config.useSlidingWindow && config.layerTypes?[$0] == "sliding_attention" }
        let names = (0..<config.numLayers).map { (rotates[$0] == 1 ? "rope" : "nope") + (sliding[$0] && config.slidingWindow != nil ? "_sliding" : "") }
        guard Set(names) != ["rope"] else { return model }
        model["layer_types"] = .list(names.map { .string($0) })
        var overrides: [String: ConfigValue] = [:]
        for name in Set(names) {
            var o: [String: ConfigValue] = [:]
            if name.hasPrefix("nope") { o["position"] = .map(["kind": .string("none")]) }
            if name.hasSuffix("_sliding"), let w = config.slidingWindow { o["attention"] = .map(["window": .int(w)]) }
            overrides[name] = .map(o)
        }
        model["layer_type_overrides"] = .map(overrides)
        return model
    }

    func config(of model: DecoderModel) throws -> HFModelConfig {
        var config = try LlamaLayout.config(of: model, type: .smollm3, qkNorm: false,
                                                layerPosition: { $0.kind == "none" }, layerPositionRule: "none")
        guard let dense = try LlamaLayout.denseSwiGLU(model.layers.map(\.mlp.options)) else { throw FamilyMismatch("needs SwiGLU MLPs") }
        config.intermediateSize = dense.inner
        config.mlpBias = dense.bias
        config.familyKeys["no_rope_layers"] = .array(model.layers.map { .int($0.attention.position.options.kind == "none" ? 0 : 1) })
        let windows = model.layers.map(\.attention.window)
        if let w = windows.compactMap({ $0 }).first {
            guard windows.allSatisfy({ $0 == nil || $0 == w }) else { throw FamilyMismatch("needs one sliding-window size") }
            config.slidingWindow = w
            config.useSlidingWindow = true
        }
        config.layerTypes = windows.map { $0 == nil ? "full_attention" : "sliding_attention" }
        return config
    }
}
