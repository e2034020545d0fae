import CKernels
import Checkpointing
import Foundation
import Layers
import TensorCore
import ToolkitSupport

/// Loading and saving models: HF folders (`config.json` + safetensors) and the toolkit's own
/// checkpoints (`recipe.yaml` + `model.safetensors` with canonical names).
public enum ModelIO {
    /// Loads an HF folder or a toolkit checkpoint, whichever `path` holds.
    public static func load(_ path: String) throws -> DecoderModel {
        let fm = FileManager.default
        var isDir: ObjCBool = false
        guard fm.fileExists(atPath: path, isDirectory: &isDir), isDir.boolValue else {
            throw ToolkitError("\(path): not a directory (expected an HF model folder or a toolkit checkpoint)")
        }
        if fm.fileExists(atPath: path + "/recipe.yaml") { return try loadCheckpoint(path) }
        if fm.fileExists(atPath: path + "/config.json") { return try loadHF(path) }
        throw ToolkitError("\(path): neither recipe.yaml (toolkit checkpoint) nor config.json (HF model) found")
    }

    /// An HF model folder: gpt2, qwen3 or qwen3_moe; F32/BF16/F16; single or sharded safetensors.
    public static func loadHF(_ dir: String) throws -> DecoderModel {
        let (config, tensors) = try HFCheckpoint.load(dir)
        let recipe = try Recipe.fromHF(config, path: dir + "/config.json")
        let model = try ModelBuilder.build(recipe)
        try assign(tensors, to: model, source: dir)
        return model
    }

    /// A toolkit checkpoint folder (`recipe.yaml` + `model.safetensors`).
    public static func loadCheckpoint(_ dir: String) throws -> DecoderModel {
        let recipe = try Recipe.load(dir + "/recipe.yaml")
        let model = try ModelBuilder.build(recipe)
        let file = try SafetensorsFile(path: dir + "/model.safetensors")
        try assign(file.loadAll(), to: model, source: dir + "/model.safetensors")
        return model
    }

    /// Writes `recipe.yaml` and `model.safetensors` (canonical names, F32) into `dir`, atomically.
    public static func saveCheckpoint(_ model: DecoderModel, to dir: String, metadata: [String: String] = [:]) throws {
        var w = SafetensorsWriter(metadata: ["format": "pt", "recipe": model.recipe.name].merging(metadata) { $1 })
        for (name, p) in model.namedParameters() { try w.add(name, shape: p.shape, view: view(p.value.storage)) }
        try w.write(to: dir + "/model.safetensors")
        var recipe = model.recipe
        recipe.model["dropout"] = model.dropout.recipeValue  // the rates in force (a fine-tune may change them)
        try AtomicFile.write(recipe.resolvedYAML(), to: dir + "/recipe.yaml")
    }

    /// Writes an HF folder (`config.json` + `model.safetensors`) that transformers can load.
    public static func exportHF(_ model: DecoderModel, to dir: String) throws {
        let config = try model.recipe.hfConfig(model)
        try HFCheckpoint.save(config: config, tensors: hostTensors(model), to: dir)
    }

    /// A tensor's values for a safetensors file, read in place when it is written.
    public static func view(_ storage: TensorStorage) -> SafetensorsWriter.FloatView {
        SafetensorsWriter.FloatView(base: UnsafePointer(storage.pointer), count: storage.count, owner: storage)
    }

    /// Every parameter by canonical name.
    public static func hostTensors(_ model: DecoderModel) -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        for (name, p) in model.namedParameters() { out[name] = HostTensor(shape: p.shape, values: p.value.scalars) }
        return out
    }

    /// Strict assignment: every model parameter must be present with its shape, and nothing extra.
    public static func assign(_ tensors: [String: HostTensor], to model: DecoderModel, source: String) throws {
        let params = model.namedParameters()
        let names = Set(params.map(\.name))
        let missing = params.map(\.name).filter { tensors[$0] == nil }
        if !missing.isEmpty {
            throw ToolkitError("\(source): missing tensor\(missing.count > 1 ? "s" : "") \(missing.prefix(5).joined(separator: ", "))\(missing.count > 5 ? ", …" : "")")
        }
        let unexpected = tensors.keys.filter { !names.contains($0) }.sorted()
        if !unexpected.isEmpty {
            throw ToolkitError("\(source): unexpected tensor\(unexpected.count > 1 ? "s" : "") \(unexpected.prefix(5).joined(separator: ", "))")
        }
        for (name, p) in params {
            let t = tensors[name]!
            guard t.shape == p.shape else {
                throw ToolkitError("\(source): tensor \(name) has shape \(t.shape), the model expects \(p.shape)")
            }
            // A NaN or infinite weight would give NaN, or worse a plausible number, far from here.
            let bad = t.values.withUnsafeBufferPointer { tk_first_nonfinite($0.baseAddress, $0.count) }
            if bad >= 0 {
                throw ToolkitError("\(source): tensor \(name) has a non-finite value (\(t.values[bad])) at index \(bad)")
            }
            try p.assign(Tensor(shape: t.shape, values: t.values))
        }
    }
}
