import Checkpointing
import Layers
import ToolkitSupport

/// One Hugging Face model family (`model_type`), in one file: how its `config.json` reads and
/// writes (transformers 4.x and 5.x keys, the config class's defaults), its weight names, the
/// recipe a config becomes, and whether a built model can be exported as this family.
/// Registered with one line in `ModelFamilies.registry`.
package protocol ModelFamily: Sendable {
    /// The HF `model_type`.
    var modelType: String { get }
    /// The HF class written to `architectures` on export.
    var architecture: String { get }
    /// Facts about the layout that generic code asks about.
    var traits: FamilyTraits { get }
    /// The published-shape recipes of this family (names under `Recipes/`).
    var recipes: [String] { get }
    /// `config.json` → neutral config. `dtype` and validation are done by the caller.
    func parse(_ c: ConfigObject) throws -> HFModelConfig
    /// The family's own `config.json` keys (the shared ones are written by `HFModelConfig.hfJSON`).
    func write(_ config: HFModelConfig) -> [String: JSONValue]
    /// Checkpoint names ↔ canonical names.
    func weightMap(_ config: HFModelConfig) throws -> WeightMap
    /// Canonical parameter names and shapes of a model with this config.
    func canonicalShapes(_ config: HFModelConfig) -> [String: [Int]]
    /// The recipe `model:` block equivalent to `config`.
    func recipe(_ config: HFModelConfig, path: String) throws -> [String: ConfigValue]
    /// `model` as a config of this family, or an error saying why it is not one.
    func config(of model: DecoderModel) throws -> HFModelConfig
}

package struct FamilyTraits: Sendable {
    var layerNorm = false
    var learnedPositions = false
    var qkNorm = false
    /// The config has embedding and residual dropout rates (GPT-2's `embd_pdrop`, `resid_pdrop`,
    /// parsed by the family); the others have only `attention_dropout`.
    var residualDropout = false
}

/// The registered families, by `model_type`. Export tries them in `order`.
package enum ModelFamilies {
    package static let order: [any ModelFamily] = [
        GPT2Family(),
        Qwen3Family(),
        Qwen3MoEFamily(),
        LlamaFamily(),
        OLMo2Family(),
        SmolLM3Family(),
        Gemma3Family(),
        GptOssFamily(),
    ]

    package static let registry: [String: any ModelFamily] = Dictionary(uniqueKeysWithValues: order.map { ($0.modelType, $0) })

    /// "gpt2, qwen3, …" for error messages.
    package static var known: String { order.map(\.modelType).joined(separator: ", ") }

    /// The first family that can express `model`, with its config; the error lists every family's reason.
    package static func config(of model: DecoderModel) throws -> HFModelConfig {
        var reasons: [String] = []
        for family in order {
            do {
                var config = try family.config(of: model)
                config.dropout = family.traits.residualDropout ? model.dropout : DropoutRates(attention: model.dropout.attention)
                return config
            } catch { reasons.append("\(family.modelType): \(error)") }
        }
        throw ToolkitError("\(model.recipe.name): this architecture has no HF model_type here (\(reasons.joined(separator: "; ")))")
    }
}

extension WeightMap {
    /// The weight map of `config`'s family.
    public static func forConfig(_ config: HFModelConfig) throws -> WeightMap { try config.family.weightMap(config) }
}

extension HFModelConfig {
    /// The canonical parameter names and shapes of a model with this configuration (for strict
    /// verification of an import, `WeightMap.importTensors(_:expected:)`).
    public func canonicalShapes() -> [String: [Int]] { (try? family)?.canonicalShapes(self) ?? [:] }
}

/// A reason a model is not of some family (export).
struct FamilyMismatch: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Reading a component's `options` (export checks and values).
extension Dictionary where Key == String, Value == ConfigValue {
    var kind: String? { if case .string(let k)? = self["kind"] { return k }; return nil }
    func int(_ key: String) -> Int? { if case .int(let i)? = self[key] { return i }; return nil }
    func double(_ key: String) -> Double? {
        switch self[key] { case .int(let i)?: return Double(i); case .double(let d)?: return d; default: return nil }
    }
    func bool(_ key: String) -> Bool? { if case .bool(let b)? = self[key] { return b }; return nil }
    func string(_ key: String) -> String? { if case .string(let s)? = self[key] { return s }; return nil }
}
