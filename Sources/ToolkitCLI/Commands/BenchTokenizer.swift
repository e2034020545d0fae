import ArgumentParser
import Foundation
import Tokenization
import ToolkitSupport

struct BenchTokenizer: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tokenizer",
        abstract: "Encode throughput (MB/s, tokens/s), single-threaded and batched.")

    @OptionGroup var tokenizerOptions: TokenizerOptions
    @Option(help: "Corpus file (UTF-8).") var file: String
    @Option(help: "Threads for batched encoding (default: all cores).") var threads: Int?
    @Option(help: "Timed repeats (the median is reported).") var repeats = 3
    @Option(
        help:
            "Batched encoding splits the corpus into documents of about this many bytes (at line ends)."
    )
    var documentBytes = 100_000
    @Flag(
        help: "Skip the single-threaded pass: the first batched repeat is then cold, as in shard.")
    var batchedOnly = false
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        guard repeats >= 1 else { throw ValidationError("--repeats must be at least 1") }
        guard documentBytes >= 1 else {
            throw ValidationError("--document-bytes must be at least 1")
        }
        if let threads, threads < 1 { throw ValidationError("--threads must be at least 1") }
    }

    struct Result: Codable {
        var bytes: Int
        var tokens: Int
        var threads: Int
        /// nil with --batched-only.
        var singleMBPerSecond: Double?
        var singleTokensPerSecond: Double?
        var batchMBPerSecond: Double
        var batchTokensPerSecond: Double
        var documents: Int
        var loadSeconds: Double
    }

    func run() throws {
        let t0 = monotonicSeconds()
        let tok = try tokenizerOptions.load()
        let loadSeconds = monotonicSeconds() - t0
        let text = try readText(file)
        let bytes = text.utf8.count
        let docs = Self.split(text, every: documentBytes)
        let n = threads ?? ProcessInfo.processInfo.activeProcessorCount
        var single: [Double] = []
        var batch: [Double] = []
        var tokens = 0
        for _ in 0..<repeats {
            if !batchedOnly {
                let s = monotonicSeconds()
                tokens = tok.encodeUInt32(text, allowedSpecial: .none).count
                single.append(monotonicSeconds() - s)
            }
            let b = monotonicSeconds()
            let out = tok.encodeBatch(docs, allowedSpecial: .none, threads: n)
            batch.append(monotonicSeconds() - b)
            let batchTokens = out.reduce(0) { $0 + $1.count }
            if batchedOnly { tokens = batchTokens }
            if abs(batchTokens - tokens) > 2 * docs.count {
                throw ToolkitError("batched encoding gave \(batchTokens) tokens, single \(tokens)")
            }
        }
        let st: Double? = single.isEmpty ? nil : Stats.median(single)
        let bt = Stats.median(batch)
        let r = Result(
            bytes: bytes, tokens: tokens, threads: n,
            singleMBPerSecond: st.map { Double(bytes) / $0 / 1e6 },
            singleTokensPerSecond: st.map { Double(tokens) / $0 },
            batchMBPerSecond: Double(bytes) / bt / 1e6,
            batchTokensPerSecond: Double(tokens) / bt, documents: docs.count,
            loadSeconds: loadSeconds)
        if json {
            print(try jsonLine(r))
        } else {
            print(String(format: "%.1f MB, %d tokens", Double(bytes) / 1e6, tokens))
            if let mb = r.singleMBPerSecond, let tps = r.singleTokensPerSecond {
                print(String(format: "single-threaded: %.1f MB/s, %.2fM tokens/s", mb, tps / 1e6))
            }
            print(
                String(
                    format: "batched (%d threads, %d documents): %.1f MB/s, %.2fM tokens/s", n,
                    docs.count, r.batchMBPerSecond, r.batchTokensPerSecond / 1e6))
            print(String(format: "(load %.2f s, median of %d)", loadSeconds, repeats))
        }
    }

    /// Splits text into documents of about `every` bytes, each ending after a newline.
    static func split(_ text: String, every: Int) -> [String] {
        var docs: [String] = []
        let u = Array(text.utf8)
        var start = 0
        while start < u.count {
            var end = min(start + every, u.count)
            while end < u.count && u[end - 1] != 0x0A { end += 1 }
            docs.append(String(decoding: u[start..<end], as: UTF8.self))
            start = end
        }
        return docs
    }
}
