import ArgumentParser
import Foundation
import Layers
import FineTuning
import Models
import Tokenization
import ToolkitSupport

struct Eval: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Mean next-token cross-entropy, perplexity and bits-per-byte of a model, or multiple-choice accuracy (--task).",
        discussion: """
            --task FILE.jsonl scores multiple-choice items (HellaSwag's JSONL: ctx, endings, label; or \
            llm-foundry's query, choices, gold): each choice (" " + its text) by the summed negative \
            log-likelihood of its tokens after the context. acc: the lowest sum is the gold choice; \
            acc_norm: the same per character of the choice (lm-evaluation-harness).
            """)

    @OptionGroup var source: ModelSourceOptions
    @Option(help: "JSON array of token-id arrays; each is scored on predicting ids[t+1] from ids[...t].") var tokens: String?
    @Option(help: "Shard directory (scores its validation split).") var data: String?
    @Option(help: "UTF-8 text file (needs --tokenizer).") var text: String?
    @Option(help: "Multiple-choice task file (JSON Lines; needs a tokenizer): reports acc and acc_norm.") var task: String?
    @Option(help: "Tokenizer file for --text and bits-per-byte (default: the model folder's tokenizer.json).") var tokenizer: String?
    @Flag(help: "Use --tokenizer even when it differs from the model's or the shards' tokenizer.") var allowTokenizerMismatch = false
    @Option(help: "With --data: at most this many validation tokens (0 = all).") var maxTokens = 0
    @Option(help: "Score through the fast decoder with these weights (f32, bf16, int8), token by token; default: the tensor path.")
    var weights: DecodeWeightFormat?
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        let n = [tokens, data, text, task].compactMap { $0 }.count
        guard n == 1 else { throw ValidationError("give exactly one of --tokens, --data, --text or --task") }
        if task != nil && weights != nil { throw ValidationError("--task scores on the tensor path; --weights is for --tokens, --data and --text") }
        guard maxTokens >= 0 else { throw ValidationError("--max-tokens must not be negative") }
    }

    struct Output: Codable {
        var loss: Double
        var perplexity: Double
        var tokens: Int
        var bits_per_byte: Double?
        var weights: String?
    }

    func run() throws {
        let model = try source.load()
        let tokenizer = try resolveTokenizer(explicit: self.tokenizer, modelFolder: source.path, allowMismatch: allowTokenizerMismatch)
        if (text != nil || task != nil) && tokenizer == nil {
            throw ValidationError("\(text != nil ? "--text" : "--task") needs a tokenizer: --tokenizer FILE, or a tokenizer.json in the model folder")
        }
        if let task, let tokenizer, let codec = try TextCodec.load(tokenizer) {
            let items = try MultipleChoiceTask.load(task, codec: codec)
            let bar = ProgressBar(total: Double(items.count), label: "task", unit: "items", enabled: !json)
            let r = try MultipleChoice.evaluate(model, items) { bar.update(Double($0)) }
            bar.finish()
            if json {
                print(try jsonLine(r))
            } else {
                print(String(format: "acc %.4f  acc_norm %.4f  items %d  (%@)", r.accuracy, r.normalizedAccuracy, r.items, task))
            }
            return
        }
        let input = try EvalInput.load(tokens: tokens, data: data, text: text, tokenizer: tokenizer, maxTokens: maxTokens,
                                       model: model, allowMismatch: allowTokenizerMismatch)
        let bar = ProgressBar(total: Double(input.sequences.reduce(0) { $0 + max($1.count - 1, 0) }), label: "eval",
                              unit: "tok", enabled: !json)
        let engine = try weights.map { try DecodeEngine(model: model, format: $0) }
        let r = try Evaluation.score(model, sequences: input.sequences, tokenBytes: input.tokenBytes, engine: engine,
                                     source: tokens ?? data ?? text ?? "the input") {
            bar.update(Double($0))
        }
        bar.finish()
        if json {
            print(try jsonLine(Output(loss: r.loss, perplexity: r.perplexity, tokens: r.tokens, bits_per_byte: r.bitsPerByte,
                                      weights: weights?.rawValue)))
        } else {
            var line = String(format: "loss %.6f  perplexity %.4f  tokens %d", r.loss, r.perplexity, r.tokens)
            if let b = r.bitsPerByte { line += String(format: "  bits/byte %.4f", b) }
            print(line)
        }
    }
}
