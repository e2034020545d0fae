import ArgumentParser
import Foundation
import Tokenization
import ToolkitSupport

extension Pretokenizer: ExpressibleByArgument {}

struct TrainTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Train a byte-level BPE tokenizer (HF BpeTrainer-exact) and write tokenizer.json."
    )

    @Option(
        name: .customLong("input"), parsing: .upToNextOption, help: "Training text files (UTF-8).")
    var inputs: [String] = []
    @Option(help: "Vocabulary size: special tokens + 256 bytes + merges.") var vocabSize: Int
    @Option(help: "Pre-tokenizer regex: gpt2, gpt4 or qwen.") var pretokenizer: Pretokenizer = .gpt2
    @Option(
        name: .customLong("special"), help: "A special token (repeatable; default <|endoftext|>).")
    var specials: [String] = []
    @Option(help: "Do not merge pairs seen fewer times than this.") var minFrequency = 0
    @Option(help: "Threads for counting pre-tokens (default: all cores).") var threads: Int?
    @Option(help: "Output tokenizer.json path, e.g. Tokenizers/NAME.json.") var out: String
    @Option(
        help:
            "Also write: tiktoken (NAME.tiktoken rank file) or gpt2 (NAME/vocab.json + merges.txt)."
    )
    var format: String = "hf"
    @Flag(help: "Print a JSON summary.") var json = false

    func validate() throws {
        guard !inputs.isEmpty else { throw ValidationError("give at least one --input file") }
        guard vocabSize >= 1 && vocabSize <= 1 << 24 else {
            throw ValidationError("--vocab-size must be in 1...16777216")
        }
        guard minFrequency >= 0 else {
            throw ValidationError("--min-frequency must be non-negative")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        guard ["hf", "tiktoken", "gpt2"].contains(format) else {
            throw ValidationError("--format must be hf, tiktoken or gpt2")
        }
        for f in inputs where !FileManager.default.isReadableFile(atPath: f) {
            throw ValidationError("\(f): cannot read input file")
        }
    }

    func run() throws {
        var options = BPETrainerOptions(vocabSize: vocabSize)
        options.pretokenizer = pretokenizer
        options.specialTokens = specials.isEmpty ? ["<|endoftext|>"] : specials
        options.minFrequency = minFrequency
        options.threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        guard vocabSize >= options.specialTokens.count + 256 else {
            throw ValidationError(
                "--vocab-size must be at least \(options.specialTokens.count + 256) (specials + 256 bytes)"
            )
        }
        let start = monotonicSeconds()
        let (tok, report) = try BPETrainer.train(files: inputs, options: options, progress: !json)
        var written = try tok.write(to: out, format: .huggingFace)
        let base = URL(fileURLWithPath: out).deletingPathExtension()
        if format == "tiktoken" {
            written += try tok.write(
                to: base.appendingPathExtension("tiktoken").path, format: .tiktoken)
        } else if format == "gpt2" {
            written += try tok.write(to: base.path, format: .vocabMerges)
        }
        let seconds = monotonicSeconds() - start
        if json {
            struct Out: Codable {
                var files: [String]
                var vocabSize: Int
                var merges: Int
                var uniqueWords: Int
                var bytes: Int
                var countSeconds: Double
                var mergeSeconds: Double
                var seconds: Double
                var contentHash: String
            }
            print(
                try jsonLine(
                    Out(
                        files: written, vocabSize: tok.vocabSize, merges: report.merges,
                        uniqueWords: report.uniqueWords,
                        bytes: report.bytes, countSeconds: report.countSeconds,
                        mergeSeconds: report.mergeSeconds,
                        seconds: seconds, contentHash: tok.contentHash)))
        } else {
            print(
                String(
                    format:
                        "trained %d merges (vocab %d) on %.1f MB, %d unique pre-tokens in %.2f s (count %.2f s, merge %.2f s)",
                    report.merges, tok.vocabSize, Double(report.bytes) / 1e6, report.uniqueWords,
                    seconds,
                    report.countSeconds, report.mergeSeconds))
            for f in written { print("wrote \(f)") }
        }
    }
}
