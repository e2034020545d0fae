import Checkpointing
import Foundation
import ToolkitSupport

/// Whole Hugging Face model folders: `config.json` plus weights, in canonical names.
public enum HFCheckpoint {
    /// Reads `dir/config.json` and the weights (single file or sharded), maps them to canonical
    /// names with the family's `WeightMap`, and verifies names and shapes against the config.
    public static func load(_ dir: String, progress: CheckpointDirectory.Progress? = nil) throws
        -> (
            config: HFModelConfig, tensors: [String: HostTensor]
        )
    {
        let configPath = URL(fileURLWithPath: dir).appendingPathComponent("config.json").path
        let config = try HFModelConfig.load(configPath)
        let raw = try CheckpointDirectory.load(dir, progress: progress)
        do {
            let tensors = try WeightMap.forConfig(config).importTensors(
                raw, expected: config.canonicalShapes())
            return (config, tensors)
        } catch let e as ToolkitError {
            throw ToolkitError.file(dir, e.message)
        }
    }

    /// Writes `config.json` and the weights (HF names, F32 or BF16; sharded above
    /// `maxShardBytes`) into `dir`, after verifying the canonical tensors against the config.
    public static func save(
        config: HFModelConfig, tensors: [String: HostTensor], to dir: String,
        as dtype: SafetensorsDType = .f32, maxShardBytes: Int = 5 << 30
    ) throws {
        try WeightMap.verify(tensors, expected: config.canonicalShapes())
        let hf = try WeightMap.forConfig(config).exportTensors(tensors)
        try CheckpointDirectory.write(hf, to: dir, as: dtype, maxShardBytes: maxShardBytes)
        var exported = config
        let torchNames: [SafetensorsDType: String] = [
            .f32: "float32", .bf16: "bfloat16", .f16: "float16", .f64: "float64",
        ]
        exported.dtype = torchNames[dtype] ?? config.dtype
        try exported.writeHFConfig(
            to: URL(fileURLWithPath: dir).appendingPathComponent("config.json").path)
    }
}
