import ArgumentParser
import FineTuning
import Foundation
import Models
import ToolkitSupport

struct MergeLoRA: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "merge-lora",
        abstract: "Fold a LoRA adapter (W += alpha/r · B·A) into its base model and write a full checkpoint.")

    @OptionGroup var source: ModelSourceOptions
    @Option(help: "Adapter folder (adapter_config.json + adapter_model.safetensors) from toolkit finetune --method lora.")
    var adapter: String
    @Option(help: "Output checkpoint folder.") var out: String
    @Flag(help: "Print JSON.") var json = false

    struct Output: Codable {
        var adapter: String
        var modules: Int
        var rank: Int
        var alpha: Double
        var targets: [String]
        var checkpoint: String
    }

    func run() throws {
        let model = try source.load()
        let lora = try LoRAModel.load(from: adapter, into: model)
        let modules = lora.adapters.count
        try lora.merge()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try ModelIO.saveCheckpoint(model, to: out, metadata: ["merged_adapter": adapter])
        let o = Output(adapter: adapter, modules: modules, rank: lora.config.rank, alpha: lora.config.alpha,
                       targets: lora.config.targets, checkpoint: out)
        if json {
            print(try jsonLine(o))
        } else {
            print("merged \(modules) adapters (r \(o.rank), alpha \(o.alpha), \(o.targets.joined(separator: ","))) into \(out)")
        }
    }
}
