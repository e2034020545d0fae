import Checkpointing
import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport

/// Everything besides the weights that a resumed run needs.
public struct TrainerState: Codable, Equatable, Sendable {
    /// Last completed optimizer step.
    public var step: Int
    public var tokensSeen: Int
    public var elapsedSeconds: Double
    public var settings: TrainSettings
    /// Tokenizer content hash of the training data (nil: unknown).
    public var tokenizerHash: String?
    /// The data position is the step: batches are a pure function of (seed, step).
    public var dataPosition: Int
    /// The metrics file the run writes (a resume without `--metrics` continues it).
    public var metricsPath: String? = nil
    /// The best evaluation so far (`Trainer.keepBest`), so a resumed run compares with it.
    public var best: Best? = nil
    public var format = "llmtoolkit-train-state"
    public var version = 1

    public struct Best: Codable, Equatable, Sendable {
        public var metric: String
        public var value: Double
        public var step: Int
    }
}

/// A training checkpoint folder: `recipe.yaml` + `model.safetensors` (a loadable toolkit
/// checkpoint; absent when the model is frozen under adapters) + `extra.safetensors` (trained
/// parameters outside the model: LoRA adapters, a classification head) + `optimizer.safetensors`
/// + `trainer_state.json`.
///
/// Guarantees on interruption (kill -9, power loss, a full disk) at any point:
/// - a save is written into `<dir>.tmp` and renamed into place, so `step-*` is always complete;
/// - re-saving an existing step renames the old folder aside (`.replaced`) and deletes it only
///   after the new one is in place; pruning renames (`.deleting`) before it deletes;
/// - `recover(_:)`, run before every training run, finishes or undoes whatever was cut short.
public enum TrainingCheckpoint {
    /// `tokenizerJSON` (HF `tokenizer.json` text), when the run knows its tokenizer, is saved
    /// beside the weights so that the checkpoint carries it.
    /// Weights and optimizer state are written from memory in place (`SafetensorsWriter.FloatView`):
    /// a save adds no copy of them to the run's memory.
    public static func save(model: DecoderModel?, extra: [NamedParameter] = [],
                            optimizerState: [String: (shape: [Int], storage: TensorStorage)], state: TrainerState,
                            to dir: String, tokenizerJSON: String? = nil, metadata: [String: String] = [:]) throws {
        let fm = FileManager.default
        let tmp = dir + ".tmp"
        try? fm.removeItem(atPath: tmp)
        do {
            try AtomicFile.ensureDirectory(tmp)
            if let model {
                try ModelIO.saveCheckpoint(model, to: tmp, metadata: metadata.merging(["step": String(state.step)]) { $1 })
            }
            if !extra.isEmpty {
                var w = SafetensorsWriter(metadata: ["format": "pt", "kind": "extra"])
                for (name, p) in extra { try w.add(name, shape: p.shape, view: ModelIO.view(p.value.storage)) }
                try w.write(to: tmp + "/extra.safetensors")
            }
            var w = SafetensorsWriter(metadata: ["format": "pt", "kind": "optimizer"])
            for (name, t) in optimizerState { try w.add(name, shape: t.shape, view: ModelIO.view(t.storage)) }
            try w.write(to: tmp + "/optimizer.safetensors")
            let encoder = JSONEncoder()
            encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
            try AtomicFile.write(encoder.encode(state), to: tmp + "/trainer_state.json")
            if let tokenizerJSON { try AtomicFile.write(tokenizerJSON, to: tmp + "/tokenizer.json") }
        } catch {
            try? fm.removeItem(atPath: tmp)
            throw AtomicFile.ioError(tmp, error, doing: "cannot write the checkpoint")
        }
        try AtomicFile.replaceDirectory(tmp, with: dir)
    }

    /// `step-0000042`: a complete checkpoint folder's name (no `.tmp`, `.replaced`, `.deleting`).
    static func isCheckpointName(_ name: String) -> Bool {
        name.hasPrefix("step-") && name.dropFirst(5).allSatisfy(\.isNumber) && name.count > 5
    }

    /// Cleans a run folder after an interruption: incomplete saves (`.tmp`) and half-pruned
    /// folders (`.deleting`) are removed; a checkpoint moved aside for a re-save (`.replaced`)
    /// comes back when the new one never arrived, and is removed when it did.
    public static func recover(_ dir: String) {
        let fm = FileManager.default
        let names = (try? fm.contentsOfDirectory(atPath: dir)) ?? []
        for name in names where name.hasPrefix("step-") {
            let path = dir + "/" + name
            if name.hasSuffix(".tmp") || name.hasSuffix(AtomicFile.deletingSuffix) {
                try? fm.removeItem(atPath: path)
            } else if name.hasSuffix(AtomicFile.asideSuffix) {
                let original = String(path.dropLast(AtomicFile.asideSuffix.count))
                if fm.fileExists(atPath: original) { try? fm.removeItem(atPath: path) } else { _ = rename(path, original) }
            }
        }
        AtomicFile.syncDirectory(dir)
    }

    /// Loads the state and optimizer tensors of a checkpoint folder (the model loads through ModelIO).
    public static func loadState(_ dir: String) throws -> (TrainerState, OptimizerState) {
        let statePath = dir + "/trainer_state.json"
        let data: Data
        do { data = try Data(contentsOf: URL(fileURLWithPath: statePath)) } catch {
            throw ToolkitError.file(statePath, "cannot read (is \(dir) a training checkpoint?)")
        }
        let state: TrainerState
        do { state = try JSONDecoder().decode(TrainerState.self, from: data) } catch {
            throw ToolkitError.file(statePath, "invalid trainer state: \(error)")
        }
        let file = try SafetensorsFile(path: dir + "/optimizer.safetensors")
        var opt: OptimizerState = [:]
        for (name, t) in try file.loadAll() { opt[name] = StateTensor(shape: t.shape, values: t.values) }
        return (state, opt)
    }

    /// Assigns a checkpoint's weights to `model` (when given) and its `extra.safetensors` to `extra`
    /// (by name, shapes checked; every one must be there).
    static func loadWeights(_ dir: String, model: DecoderModel?, extra parameters: [NamedParameter]) throws {
        if let model {
            let path = dir + "/model.safetensors"
            try ModelIO.assign(SafetensorsFile(path: path).loadAll(), to: model, source: path)
        }
        guard !parameters.isEmpty else { return }
        let path = dir + "/extra.safetensors"
        let tensors = try SafetensorsFile(path: path).loadAll()
        for (name, p) in parameters {
            guard let t = tensors[name] else { throw ToolkitError.file(path, "missing tensor \(name) (was the run started with other settings?)") }
            guard t.shape == p.shape else { throw ToolkitError.file(path, "tensor \(name) has shape \(t.shape), this run has \(p.shape)") }
            try p.assign(Tensor(shape: t.shape, values: t.values))
        }
    }

    /// The run folder of a `--resume` argument: the folder itself, or its parent when it is a
    /// checkpoint folder.
    public static func runFolder(for path: String) -> String {
        guard FileManager.default.fileExists(atPath: path + "/trainer_state.json") else { return path }
        let parent = (path as NSString).deletingLastPathComponent
        return parent.isEmpty ? "." : parent
    }

    /// The newest `step-*` checkpoint inside a run folder, or `dir` itself if it is a checkpoint.
    public static func latest(in dir: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/trainer_state.json") { return dir }
        let steps = ((try? fm.contentsOfDirectory(atPath: dir)) ?? [])
            .filter(isCheckpointName).sorted()
        guard let last = steps.last else { throw ToolkitError("\(dir): no training checkpoint (step-*) to resume from") }
        return dir + "/" + last
    }

    /// Keeps the newest `keep` `step-*` folders (each older one renamed away before it is deleted).
    static func prune(_ dir: String, keep: Int) throws {
        let steps = ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter(isCheckpointName).sorted()
        for old in steps.dropLast(keep) { try AtomicFile.removeDirectory(dir + "/" + old) }
    }

    /// The complete checkpoints in a run folder.
    public static func checkpoints(in dir: String) -> [String] {
        ((try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []).filter(isCheckpointName).sorted()
    }
}
