import ArgumentParser
import Foundation
import Models
import Tokenization
import ToolkitSupport
import Training

struct Build: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compose a model from a recipe, print its components, write an initialised checkpoint.")

    @OptionGroup var recipeOptions: RecipeOptions
    @Option(help: "Checkpoint folder (default Checkpoints/<recipe>/).") var out: String?
    @Flag(help: "Only print the table; write nothing.") var noSave = false
    @Option(help: "Batch size for the activation-memory column (default: the recipe's train.batch_size or 8).")
    var batchSize: Int?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if let batchSize, batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    struct Output: Codable {
        var recipe: String
        var stats: ModelStats
        var checkpoint: String?
    }

    func run() throws {
        let recipe = try recipeOptions.load()
        let train = try TrainSettings(recipe: recipe)  // the train: block is checked here too
        let model = try ModelBuilder.build(recipe, initializeWeights: !noSave)
        let batch = batchSize ?? (recipe.train["batch_size"] == nil ? 8 : train.batchSize)
        let stats = ModelStats(model: model, batchSize: batch)
        var dir: String? = nil
        if !noSave {
            dir = out ?? "Checkpoints/\(recipe.name)"
            try ModelIO.saveCheckpoint(model, to: dir!)
        }
        if json {
            print(try jsonLine(Output(recipe: recipe.name, stats: stats, checkpoint: dir)))
        } else {
            print("recipe \(recipe.name) (\(recipe.path))\(recipe.description.map { ": " + $0 } ?? "")")
            print(stats.table())
            print("parameters: \(ModelStats.grouped(stats.totalParameters))")
            if model.dropout.isActive { print("dropout (training only): \(model.dropout)") }
            if let dir { print("wrote \(dir)/model.safetensors and \(dir)/recipe.yaml") }
        }
    }
}

struct Export: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Export a toolkit checkpoint as a Hugging Face folder (config.json + model.safetensors).",
        discussion: """
            When the checkpoint carries its tokenizer (train saves it), the folder also gets tokenizer.json, a \
            tokenizer_config.json for transformers' AutoTokenizer and a generation_config.json with the end-of-text id.
            """)

    @Option(help: "Toolkit checkpoint folder.") var checkpoint: String
    @Option(help: "Export format (hf).") var format = "hf"
    @Option(help: "Output folder.") var out: String

    func validate() throws {
        guard format == "hf" else { throw ValidationError("--format must be hf") }
    }

    func run() throws {
        let model = try ModelIO.load(checkpoint)
        try ModelIO.exportHF(model, to: out)
        var written = ["config.json", "model.safetensors"]
        if let bundled = BPETokenizer.tokenizerFile(inFolder: checkpoint) {
            let tok = try BPETokenizer.load(path: bundled)
            try AtomicFile.write(tok.huggingFaceJSON(), to: out + "/tokenizer.json")
            let eos = tok.endOfTextID.flatMap { id in tok.specialTokens.first { $0.id == id } }
            var config: [String: Any] = ["tokenizer_class": "PreTrainedTokenizerFast", "model_max_length": model.dims.contextLength,
                                         "clean_up_tokenization_spaces": false]
            if let eos { config["eos_token"] = eos.content }
            try AtomicFile.write(JSONSerialization.data(withJSONObject: config, options: [.prettyPrinted, .sortedKeys]),
                                 to: out + "/tokenizer_config.json")
            var generation: [String: Any] = ["_from_model_config": false]
            if let id = tok.endOfTextID { generation["eos_token_id"] = id }
            try AtomicFile.write(JSONSerialization.data(withJSONObject: generation, options: [.prettyPrinted, .sortedKeys]),
                                 to: out + "/generation_config.json")
            written += ["tokenizer.json", "tokenizer_config.json", "generation_config.json"]
        }
        print("wrote " + written.map { "\(out)/\($0)" }.joined(separator: ", "))
    }
}
