import Checkpointing
import Foundation
import Models
import Optimizers
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
    public var format = "llmtoolkit-train-state"
    public var version = 1
}

/// A training checkpoint folder: `recipe.yaml` + `model.safetensors` (a loadable toolkit
/// checkpoint) + `optimizer.safetensors` + `trainer_state.json`. Written into `<dir>.tmp` and
/// renamed into place, so an interrupted save never leaves a partial checkpoint.
public enum TrainingCheckpoint {
    public static func save(model: DecoderModel, optimizer: any Optimizer, state: TrainerState, to dir: String) throws {
        let fm = FileManager.default
        let tmp = dir + ".tmp"
        try? fm.removeItem(atPath: tmp)
        try ModelIO.saveCheckpoint(model, to: tmp, metadata: ["step": String(state.step)])
        var w = SafetensorsWriter(metadata: ["format": "pt", "kind": "optimizer"])
        for (name, t) in optimizer.stateTensors() { try w.add(name, HostTensor(shape: t.shape, values: t.values)) }
        try w.write(to: tmp + "/optimizer.safetensors")
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys]
        try AtomicFile.write(encoder.encode(state), to: tmp + "/trainer_state.json")
        try? fm.removeItem(atPath: dir)
        guard rename(tmp, dir) == 0 else {
            throw ToolkitError("\(dir): cannot move the checkpoint into place: \(String(cString: strerror(errno)))")
        }
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

    /// The newest `step-*` checkpoint inside a run folder, or `dir` itself if it is a checkpoint.
    public static func latest(in dir: String) throws -> String {
        let fm = FileManager.default
        if fm.fileExists(atPath: dir + "/trainer_state.json") { return dir }
        let steps = ((try? fm.contentsOfDirectory(atPath: dir)) ?? [])
            .filter { $0.hasPrefix("step-") && !$0.hasSuffix(".tmp") }.sorted()
        guard let last = steps.last else { throw ToolkitError("\(dir): no training checkpoint (step-*) to resume from") }
        return dir + "/" + last
    }

    /// Keeps the newest `keep` `step-*` folders.
    static func prune(_ dir: String, keep: Int) {
        let fm = FileManager.default
        let steps = ((try? fm.contentsOfDirectory(atPath: dir)) ?? []).filter { $0.hasPrefix("step-") && !$0.hasSuffix(".tmp") }.sorted()
        for old in steps.dropLast(keep) { try? fm.removeItem(atPath: dir + "/" + old) }
    }
}
