import ArgumentParser
import Foundation
import Layers
import Models
import Tokenization
import ToolkitSupport
import Training

/// `--recipe NAME [--set key.path=value ...]`.
struct RecipeOptions: ParsableArguments {
    @Option(help: "Recipe name (Recipes/<name>.yaml) or path to a .yaml file.") var recipe: String
    @Option(name: .customLong("set"), help: "Override a recipe key, e.g. --set model.hidden_size=768 (repeatable).")
    var overrides: [String] = []
    @Option(help: "Most memory the model's weights may take (e.g. 12G); default: the memory available now (TOOLKIT_MAX_MEMORY also sets it).")
    var maxMemory: String?

    func load() throws -> Recipe {
        try applyMemoryLimit(maxMemory)
        return try Recipe.load(recipe, overrides: overrides)
    }
}

/// `--model DIR` (HF folder) or `--checkpoint DIR` (toolkit checkpoint).
struct ModelSourceOptions: ParsableArguments {
    @Option(help: "Hugging Face model folder (config.json + safetensors).") var model: String?
    @Option(help: "Toolkit checkpoint folder (recipe.yaml + model.safetensors).") var checkpoint: String?

    func validate() throws {
        guard (model == nil) != (checkpoint == nil) else {
            throw ValidationError("give exactly one of --model DIR or --checkpoint DIR")
        }
    }

    @Option(help: "Most memory the model's weights may take (e.g. 12G); default: the memory available now (TOOLKIT_MAX_MEMORY also sets it).")
    var maxMemory: String?

    var path: String { model ?? checkpoint ?? "" }

    func load() throws -> DecoderModel {
        try applyMemoryLimit(maxMemory)
        if let model { return try ModelIO.loadHF(model) }
        return try ModelIO.load(checkpoint!)
    }
}

/// `--max-memory SIZE`: the bound every model build checks its estimated weights against.
func applyMemoryLimit(_ text: String?) throws {
    guard let text else { return }
    do { ModelLimits.memoryOverride = try ModelLimits.parseBytes(text) } catch let e as ToolkitError {
        throw ValidationError("--max-memory: \(e.message)")
    }
}

/// Comma-separated integer list, e.g. `1,2,3`.
func parseIDs(_ text: String, flag: String) throws -> [Int32] {
    let parts = text.split(separator: ",", omittingEmptySubsequences: false).map { $0.trimmingCharacters(in: .whitespaces) }
    var out: [Int32] = []
    for p in parts {
        guard let v = Int32(p) else { throw ValidationError("\(flag): '\(p)' is not an integer token id") }
        out.append(v)
    }
    guard !out.isEmpty else { throw ValidationError("\(flag): no ids") }
    return out
}

/// Writes to standard error.
func printError(_ s: String) { FileHandle.standardError.write(Data((s + "\n").utf8)) }

/// How a data-parallel run (under `mpirun`) moves gradients and optimizer state; ignored in one process.
struct DataParallelFlags: ParsableArguments {
    @Flag(help: "Under mpirun: sum the gradients after the backward instead of in buckets during it (for comparison).")
    var noOverlap = false
    @Flag(help: "Under mpirun: ZeRO-1, each rank keeps the optimizer state of a share of the parameters (whole tensors).")
    var shardOptimizer = false
    @Option(help: "Under mpirun: gradient bucket size in MiB.") var bucketMb: Double = 8

    func validate() throws {
        guard bucketMb > 0, bucketMb <= 4096 else { throw ValidationError("--bucket-mb must be in (0, 4096], got \(bucketMb)") }
    }

    var options: DataParallelOptions {
        DataParallelOptions(overlap: !noOverlap, shardOptimizer: shardOptimizer, bucketBytes: Int(bucketMb * 1_048_576))
    }
}

/// The tokenizer a command uses with a model: `--tokenizer FILE`, or the one that travels with the
/// model: its folder's `tokenizer.json` (an HF folder, or a toolkit checkpoint saved by `train` or
/// `finetune`), else `vocab.json` + `merges.txt`, else a single `.tiktoken` file there
/// (`BPETokenizer.tokenizerFile(inFolder:)`). A file whose content hash differs from the
/// model's is refused, naming both, unless the mismatch is allowed.
func resolveTokenizer(explicit: String?, modelFolder: String?, allowMismatch: Bool) throws -> String? {
    let bundled = modelFolder.flatMap(BPETokenizer.tokenizerFile(inFolder:))
    guard let explicit else { return bundled }
    if let bundled, !allowMismatch {
        let (a, b) = (try BPETokenizer.load(path: explicit).contentHash, try BPETokenizer.load(path: bundled).contentHash)
        guard a == b else {
            throw ToolkitError("--tokenizer \(explicit) (hash \(a.prefix(12))…) is not the model's tokenizer \(bundled) "
                               + "(hash \(b.prefix(12))…); leave --tokenizer out, or pass --allow-tokenizer-mismatch")
        }
    }
    return explicit
}

/// Refuses a tokenizer that is not the one the shards were made with (bits-per-byte and text would
/// count the wrong strings), unless the mismatch is allowed. An empty shard hash is unknown: accepted.
func requireShardTokenizer(_ tokenizer: BPETokenizer, path: String, shardsHash: String, shards: String?, allowMismatch: Bool) throws {
    guard !allowMismatch, !shardsHash.isEmpty, tokenizer.contentHash != shardsHash else { return }
    throw ToolkitError("--tokenizer \(path) (hash \(tokenizer.contentHash.prefix(12))…) is not the tokenizer of the shards"
                       + (shards.map { " in \($0)" } ?? "")
                       + " (hash \(shardsHash.prefix(12))…); pass --allow-tokenizer-mismatch to use it anyway")
}
