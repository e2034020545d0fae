import ArgumentParser
import Foundation
import TokenShards
import Tokenization
import ToolkitSupport

/// `toolkit shard`: write (default), inspect and verify zstd token shards.
struct Shard: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Tokenize a corpus into zstd-compressed token shards, inspect or verify them.",
        subcommands: [ShardWrite.self, ShardInspect.self, ShardVerify.self],
        defaultSubcommand: ShardWrite.self)
}

struct ShardWrite: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "write",
        abstract: "Encode text files into fixed-size token shards plus manifest.json.",
        discussion: """
            Documents are whole files, or the text between --doc-separator occurrences, or the lines \
            of JSON Lines files (*.jsonl, *.ndjson; --input-format jsonl for any name), each an object \
            whose --jsonl-field string is the text; the tokenizer's end-of-text id goes between documents. Invalid UTF-8 bytes are skipped \
            and counted. Re-running into the same --out continues an interrupted run when the \
            inputs and settings are unchanged, and starts over cleanly otherwise.
            """)

    @Option(help: "tokenizer.json, .tiktoken, vocab.json, a directory, or builtin:bytes.")
    var tokenizer: String
    @Option(help: "Regex for .tiktoken / vocab.json tokenizers: gpt2, gpt4 or qwen.")
    var pretokenizer: Pretokenizer?
    @Option(
        name: .customLong("input"), parsing: .upToNextOption,
        help: "Input files or directories (repeatable).")
    var inputs: [String]
    @Option(help: "Output directory.") var out: String
    @Option(help: "Tokens per shard.") var shardTokens = 1 << 20
    @Option(help: "Fraction of the tokens (the last ones) held out for validation (default 0.1).")
    var valFraction: Double?
    @Option(help: "Hold out whole documents for validation instead: N documents, or a fraction below 1 of them, chosen over the whole corpus by --val-seed.")
    var valDocuments: Double?
    @Option(help: "Seed of the --val-documents choice.") var valSeed: UInt64 = 0
    @Option(help: "Document separator inside files (\\n, \\t and \\\\ are unescaped).")
    var docSeparator: String?
    @Option(help: "auto (*.jsonl and *.ndjson files are JSON Lines, others text), jsonl (every file) or text.")
    var inputFormat = "auto"
    @Option(help: "The field of each JSON Lines record that holds its text.") var jsonlField = "text"
    @Option(help: "zstd compression level (1-22); 2 is ~9 % faster than 3 for 3 % larger shards.")
    var level = 2
    @Option(help: "Token byte layout in each frame: plain or shuffled.") var layout = "plain"
    @Option(help: "Tokens per zstd frame.") var frameTokens = 1 << 20
    @Option(help: "Threads for encoding and compression (default: all cores).") var threads: Int?
    @Option(help: .hidden) var chunkBytes = 1 << 17
    @Flag(help: "Print one JSON object.") var json = false

    func validate() throws {
        guard chunkBytes >= 1024 else { throw ValidationError("--chunk-bytes must be ≥ 1024") }
        guard shardTokens >= 1 else { throw ValidationError("--shard-tokens must be positive") }
        guard frameTokens >= 1 else { throw ValidationError("--frame-tokens must be positive") }
        if let valFraction, !(0..<1).contains(valFraction) { throw ValidationError("--val-fraction must be in [0, 1)") }
        if valDocuments != nil && valFraction != nil {
            throw ValidationError("--val-fraction and --val-documents both choose the validation split: give one of them")
        }
        guard (1...22).contains(level) else { throw ValidationError("--level must be in 1...22") }
        guard TokenLayout(rawValue: layout) != nil else {
            throw ValidationError("--layout must be plain or shuffled")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
        if docSeparator?.isEmpty == true { throw ValidationError("--doc-separator is empty") }
        guard ["auto", "jsonl", "text"].contains(inputFormat) else { throw ValidationError("--input-format must be auto, jsonl or text") }
        guard !jsonlField.isEmpty else { throw ValidationError("--jsonl-field is empty") }
    }

    func run() throws {
        let encoder = try ShardTokenizer.load(tokenizer, pretokenizer: pretokenizer)
        var options = ShardBuildOptions(inputs: inputs, outputDirectory: out)
        options.writer.shardTokens = shardTokens
        options.writer.frameTokens = frameTokens
        options.writer.level = level
        options.writer.layout = TokenLayout(rawValue: layout) ?? .plain
        let threads = threads ?? ProcessInfo.processInfo.activeProcessorCount
        options.writer.threads = threads
        options.threads = threads
        options.valFraction = valDocuments == nil ? valFraction ?? 0.1 : 0
        options.valDocuments = valDocuments
        options.valSeed = valSeed
        options.chunkBytes = chunkBytes
        options.separator = docSeparator.map(Self.unescape)
        options.jsonl = inputFormat == "text" ? nil : JSONLInput(files: inputFormat == "jsonl" ? .all : .byExtension, field: jsonlField)
        options.progress = !json
        let report = try ShardBuilder.build(options, encoder: encoder)
        if json {
            print(try jsonLine(report))
            return
        }
        let m = report.manifest
        let raw = m.totalTokens * m.dtype.width
        print("wrote \(m.shards.count) shards to \(out)")
        if report.resumedShards > 0 {
            print("resumed          \(report.resumedShards) shards from an interrupted run")
        }
        print(
            "tokens           \(m.totalTokens) (train \(m.split.trainTokens), val \(m.split.valTokens)"
                + (m.split.valDocuments.map { " in \($0) whole documents" } ?? "") + ")"
        )
        print(
            "documents        \(m.documents) from \(report.inputFiles) files, \(report.inputBytes) bytes"
        )
        print(
            "compressed       \(m.compressedBytes) bytes = "
                + String(format: "%.3f", Double(m.compressedBytes) / Double(raw))
                + "× raw \(m.dtype.rawValue) (\(raw) bytes)")
        print(
            String(
                format: "throughput       %.2f MB/s, %.0f tokens/s (%.2f s)",
                report.megabytesPerSecond, report.tokensPerSecond, report.seconds))
        if m.invalidUTF8BytesSkipped > 0 {
            print(
                "invalid UTF-8    \(m.invalidUTF8BytesSkipped) bytes skipped (first: "
                    + "\(report.firstInvalidUTF8 ?? "?"))")
        }
    }

    /// Unescapes `\n`, `\t`, `\r` and `\\`.
    static func unescape(_ s: String) -> String {
        var out = ""
        var escaped = false
        for c in s {
            if escaped {
                switch c {
                case "n": out.append("\n")
                case "t": out.append("\t")
                case "r": out.append("\r")
                default: out.append(c)
                }
                escaped = false
            } else if c == "\\" {
                escaped = true
            } else {
                out.append(c)
            }
        }
        return escaped ? out + "\\" : out
    }
}

struct ShardInspect: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect",
        abstract: "Print manifest statistics and decode a sample window.")

    @Argument(help: "Shard directory.") var directory: String
    @Option(help: "Tokenizer to decode the sample with (otherwise ids are printed).")
    var tokenizer: String?
    @Option(help: "Regex for .tiktoken / vocab.json tokenizers: gpt2, gpt4 or qwen.")
    var pretokenizer: Pretokenizer?
    @Flag(help: "Accept shards made with a tokenizer other than --tokenizer (override).")
    var allowTokenizerMismatch = false
    @Option(help: "Shard to sample from.") var shard = 0
    @Option(help: "First token of the sample inside that shard.") var offset = 0
    @Option(help: "Tokens in the sample.") var count = 64
    @Flag(help: "Print one JSON object.") var json = false

    struct Report: Codable {
        var directory: String
        var formatVersion: Int
        var tokenizerHash: String
        var vocabSize: Int
        var eotID: Int
        var dtype: String
        var layout: String
        var zstdLevel: Int
        var shards: Int
        var totalTokens: Int
        var trainTokens: Int
        var valTokens: Int
        var documents: Int
        var compressedBytes: Int
        var rawBytes: Int
        var compressionRatio: Double
        var invalidUTF8BytesSkipped: Int
        var sampleShard: Int
        var sampleOffset: Int
        var sampleIDs: [Int]
        var sampleText: String?
    }

    func validate() throws {
        guard shard >= 0, offset >= 0, count >= 0 else {
            throw ValidationError("--shard, --offset and --count must not be negative")
        }
    }

    func run() throws {
        let decoder = try tokenizer.map { try ShardTokenizer.load($0, pretokenizer: pretokenizer) }
        let dataset = try ShardDataset(
            directory: directory, expectedTokenizerHash: decoder?.info.hash,
            allowMismatch: allowTokenizerMismatch, prefetch: false)
        let m = dataset.manifest
        guard shard < m.shards.count else {
            throw ValidationError("--shard \(shard): the manifest lists \(m.shards.count) shards")
        }
        let tokens = try dataset.shardTokens(shard)
        let lo = min(offset, tokens.count)
        let ids = tokens[lo..<min(lo + count, tokens.count)].map { Int($0) }
        let raw = m.totalTokens * m.dtype.width
        let report = Report(
            directory: directory, formatVersion: m.formatVersion, tokenizerHash: m.tokenizer.hash,
            vocabSize: m.tokenizer.vocabSize, eotID: m.tokenizer.eotID, dtype: m.dtype.rawValue,
            layout: m.layout.rawValue, zstdLevel: m.zstdLevel, shards: m.shards.count,
            totalTokens: m.totalTokens, trainTokens: m.split.trainTokens,
            valTokens: m.split.valTokens, documents: m.documents,
            compressedBytes: m.compressedBytes, rawBytes: raw,
            compressionRatio: Double(m.compressedBytes) / Double(max(raw, 1)),
            invalidUTF8BytesSkipped: m.invalidUTF8BytesSkipped, sampleShard: shard,
            sampleOffset: lo, sampleIDs: ids, sampleText: decoder?.decode(ids))
        if json {
            print(try jsonLine(report))
            return
        }
        print("directory        \(directory) (format version \(m.formatVersion))")
        print(
            "tokenizer        \(m.tokenizer.hash), vocab \(m.tokenizer.vocabSize), eot \(m.tokenizer.eotID)"
        )
        print(
            "dtype/layout     \(m.dtype.rawValue), \(m.layout.rawValue), zstd level \(m.zstdLevel)")
        print("shards           \(m.shards.count) × up to \(m.shardTokens) tokens")
        print(
            "total tokens     \(m.totalTokens) (train \(m.split.trainTokens), val \(m.split.valTokens))"
        )
        print("documents        \(m.documents)")
        print(
            "compressed       \(m.compressedBytes) bytes ("
                + String(format: "%.3f", report.compressionRatio) + "× raw \(raw) bytes)")
        if m.invalidUTF8BytesSkipped > 0 {
            print("invalid UTF-8    \(m.invalidUTF8BytesSkipped) bytes skipped")
        }
        print("sample           shard \(shard), tokens \(lo)..<\(lo + ids.count):")
        print("ids              \(ids.map(String.init).joined(separator: " "))")
        if let text = report.sampleText { print("text             \(text.debugDescription)") }
    }
}

struct ShardVerify: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check every shard's header and checksum against the manifest.")

    @Argument(help: "Shard directory.") var directory: String
    @Option(help: "Threads (default: all cores).") var threads: Int?
    @Flag(help: "Print one JSON object.") var json = false

    func run() throws {
        let report = try ShardVerifier.verify(
            directory: directory,
            threads: threads ?? ProcessInfo.processInfo.activeProcessorCount)
        if json {
            print(try jsonLine(report))
        } else {
            for s in report.shards {
                print("\(s.problem == nil ? "ok  " : "FAIL") \(s.file) \(s.tokens) tokens")
            }
            let bad = report.problems
            if bad.isEmpty {
                print("all \(report.shards.count) shards verified")
            } else {
                for p in bad { FileHandle.standardError.write(Data("error: \(p)\n".utf8)) }
            }
        }
        if !report.ok { throw ExitCode(1) }
    }
}
