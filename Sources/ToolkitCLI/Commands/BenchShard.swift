import ArgumentParser
import Foundation
import TokenShards
import Tokenization
import ToolkitSupport

/// `toolkit bench shard`: sharding throughput against its baseline, the tokenizer's own cold
/// batched encode of the same text with the same threads, interleaved round by round in one
/// process (the shared machine's speed drifts by ±25 % within minutes; per-round ratios do not).
struct BenchShard: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shard",
        abstract: "Sharding throughput against cold batched encoding, interleaved in one process.",
        discussion: """
            Each round encodes the corpus with encodeBatch (fresh pre-token caches, documents of \
            --document-bytes, texts already in memory), then shards it into a temporary \
            directory exactly as `toolkit shard` does (reading, UTF-8 checks, encoding, zstd, \
            checksums, atomic writes with fsync, manifest). Reports each round and the medians.
            """)

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(
        name: .customLong("input"), parsing: .upToNextOption,
        help: "Input files or directories (repeatable).")
    var inputs: [String]
    @Option(help: "Rounds (encode, then shard).") var rounds = 5
    @Option(help: "Threads for both (default: all cores).") var threads: Int?
    @Option(help: "zstd level for the shards.") var level = ShardWriterOptions().level
    @Option(help: "Documents of about this many bytes for the batched encode (at line ends).")
    var documentBytes = 100_000
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard rounds >= 1 else { throw ValidationError("--rounds must be at least 1") }
        guard (1...22).contains(level) else { throw ValidationError("--level must be in 1...22") }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    struct Round: Codable {
        var encodeMBPerSecond: Double
        var shardMBPerSecond: Double
        var ratio: Double
    }

    struct Result: Codable {
        var bytes: Int
        var tokens: Int
        var threads: Int
        var level: Int
        var rounds: [Round]
        var medianEncodeMBPerSecond: Double
        var medianShardMBPerSecond: Double
        var medianRatio: Double
    }

    func run() throws {
        let tok = try tokenizerOptions.load()
        let encoder = try BPEShardEncoder(tok, path: tokenizerOptions.tokenizer)
        let files = try CorpusFile.expand(inputs)
        let docs = try files.flatMap { try BenchTokenizer.split(readText($0.path), every: documentBytes) }
        let bytes = files.reduce(0) { $0 + $1.size }
        guard bytes > 0 else { throw ToolkitError("empty input: \(inputs.joined(separator: ", "))") }
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        // Untimed: builds the tokenizer's lazily initialised tables, which each side would
        // otherwise pay in its first round.
        _ = tok.encode(String(docs[0].prefix(4096)))
        let scratch = FileManager.default.temporaryDirectory
            .appendingPathComponent("toolkit-bench-shard-\(getpid())").path
        defer { try? FileManager.default.removeItem(atPath: scratch) }
        var results: [Round] = []
        var tokens = 0
        for round in 0..<rounds {
            let t = monotonicSeconds()
            let out = tok.encodeBatch(docs, allowedSpecial: .all, threads: n)
            let encodeSeconds = monotonicSeconds() - t
            tokens = out.reduce(0) { $0 + $1.count }

            try? FileManager.default.removeItem(atPath: scratch)
            var options = ShardBuildOptions(inputs: inputs, outputDirectory: scratch)
            options.writer.level = level
            options.writer.threads = n
            options.threads = n
            let report = try ShardBuilder.build(options, encoder: encoder)
            let encodeMB = Double(bytes) / 1e6 / encodeSeconds
            let r = Round(
                encodeMBPerSecond: encodeMB, shardMBPerSecond: report.megabytesPerSecond,
                ratio: report.megabytesPerSecond / encodeMB)
            results.append(r)
            if !json {
                print(
                    String(
                        format: "round %d: encode %.1f MB/s, shard %.1f MB/s, ratio %.2f",
                        round + 1, r.encodeMBPerSecond, r.shardMBPerSecond, r.ratio))
            }
        }
        let result = Result(
            bytes: bytes, tokens: tokens, threads: n, level: level, rounds: results,
            medianEncodeMBPerSecond: Stats.median(results.map(\.encodeMBPerSecond)),
            medianShardMBPerSecond: Stats.median(results.map(\.shardMBPerSecond)),
            medianRatio: Stats.median(results.map(\.ratio)))
        if json {
            print(try jsonLine(result))
        } else {
            print(
                String(
                    format:
                        "%.1f MB, %d tokens, %d threads, level %d: median encode %.1f MB/s, "
                        + "shard %.1f MB/s, ratio %.2f (median of per-round ratios)",
                    Double(bytes) / 1e6, tokens, n, level, result.medianEncodeMBPerSecond,
                    result.medianShardMBPerSecond, result.medianRatio))
        }
    }
}
