import Foundation
import Layers
import ToolkitSupport

extension Recipe {
    /// The recipe equivalent of an HF `config.json`, made by the config's family file.
    public static func fromHF(_ c: HFModelConfig, path: String) throws -> Recipe {
        var model = try c.family.recipe(c, path: path)
        if let dropout = c.dropout.recipeValue { model["dropout"] = dropout }
        let name = URL(fileURLWithPath: path).deletingLastPathComponent().lastPathComponent
        return Recipe(name: name, path: path, description: "imported from \(path)", model: model)
    }

    /// The HF config of `model`, for export: the first registered family that can express it
    /// (the error gives every family's reason, e.g. ALiBi, or RoPE with LayerNorm).
    public func hfConfig(_ model: DecoderModel) throws -> HFModelConfig {
        try ModelFamilies.config(of: model)
    }
}
