import ArgumentParser
import Foundation
import Platform
import Serving
import ToolkitSupport

struct BenchServe: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Concurrent streaming clients against `serve` (in this process, on a free loopback port).",
        discussion: """
            For each client count, that many clients send streaming /v1/completions requests (greedy, prompt \
            of random ids) until --requests have been answered. Reported: time to the first streamed text (p50, p99), \
            tokens/s over all clients, the mean number of generations per decoding step, and errors.
            """)

    @OptionGroup var source: ModelSourceOptions
    @OptionGroup var options: ServeOptions
    @Option(help: "Client counts to run, comma-separated (the first is the baseline).") var clients = "1,8"
    @Option(help: "Requests per client count.") var requests = 16
    @Option(help: "Prompt length in tokens.") var promptLen = 32
    @Option(help: "Tokens per answer.") var newTokens = 64
    @Flag(help: "Print JSON.") var json = false

    func validate() throws {
        if let most = try clientCounts().max(), most > options.maxBatch + options.maxQueue {
            throw ValidationError("--clients \(most) is more than --max-batch + --max-queue (\(options.maxBatch + options.maxQueue)): the extra clients would get 429")
        }
        guard requests >= 1, promptLen >= 1, newTokens >= 1 else {
            throw ValidationError("--requests, --prompt-len and --new-tokens must be at least 1")
        }
    }

    func clientCounts() throws -> [Int] {
        let counts = clients.split(separator: ",").map { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !counts.isEmpty, counts.allSatisfy({ ($0 ?? 0) >= 1 && ($0 ?? 0) <= 256 }) else {
            throw ValidationError("--clients: comma-separated counts between 1 and 256, e.g. 1,8")
        }
        return counts.map { $0! }
    }

    struct Row: Codable {
        var clients: Int
        var requests: Int
        var errors: Int
        var ttft_p50_ms: Double
        var ttft_p99_ms: Double
        var tokens: Int
        var seconds: Double
        var tokens_per_s: Double
        var mean_batch: Double
        /// tokens/s over the first row's.
        var speedup: Double
    }

    struct Output: Codable {
        var model: String
        var prompt_len: Int
        var new_tokens: Int
        var max_batch: Int
        var cpu: String
        var rows: [Row]
    }

    /// One request's outcome.
    struct Sample {
        var ttft: Double?
        var tokens = 0
        var error: String?
    }

    func run() throws {
        let server = try options.server(source, name: nil, host: "127.0.0.1", port: 0, quiet: json)
        let (port, wait): (Int, @Sendable () throws -> Void)
        do { (port, wait) = try server.start(signals: false) } catch { throw ToolkitError("bench serve: the server did not start: \(error)") }
        let client = HTTPClient(port: port)
        let v = server.scheduler.model.dims.vocabSize
        var rows: [Row] = []
        for n in try clientCounts() {
            let (samples, seconds, meanBatch) = round(client: client, clients: n, vocab: v, scheduler: server.scheduler)
            let ttfts = samples.compactMap(\.ttft).sorted()
            let tokens = samples.reduce(0) { $0 + $1.tokens }
            func percentile(_ p: Double) -> Double {
                ttfts.isEmpty ? .nan : ttfts[min(ttfts.count - 1, Int((p * Double(ttfts.count - 1)).rounded()))] * 1000
            }
            let rate = Double(tokens) / seconds
            rows.append(Row(clients: n, requests: samples.count, errors: samples.filter { $0.error != nil }.count,
                            ttft_p50_ms: percentile(0.5), ttft_p99_ms: percentile(0.99), tokens: tokens, seconds: seconds,
                            tokens_per_s: rate, mean_batch: meanBatch, speedup: rows.first.map { rate / $0.tokens_per_s } ?? 1))
            for e in Set(samples.compactMap(\.error)).prefix(3) { printError("bench serve: error: \(e)") }
        }
        Task { await server.stop() }
        try wait()
        let out = Output(model: server.settings.modelID, prompt_len: promptLen, new_tokens: newTokens, max_batch: options.maxBatch,
                         cpu: "\(CPUFeatures.detect().model) (\(SIMDLevel.current.rawValue))", rows: rows)
        if json {
            print(try jsonLine(out))
            return
        }
        print("bench serve: \(out.model), prompt \(promptLen) tokens, \(newTokens) new tokens, greedy, --max-batch \(options.maxBatch); \(out.cpu)")
        print("clients  requests  errors  TTFT p50 ms  TTFT p99 ms  tokens/s  mean batch  vs first")
        for r in rows {
            print(String(format: "%7d  %8d  %6d  %11.1f  %11.1f  %8.1f  %10.2f  %7.2fx", r.clients, r.requests, r.errors, r.ttft_p50_ms,
                         r.ttft_p99_ms, r.tokens_per_s, r.mean_batch, r.speedup))
        }
        if rows.contains(where: { $0.errors > 0 }) { throw ExitCode(1) }
    }

    /// `clients` threads share `requests` streaming requests; returns each request's outcome, the
    /// wall time, and the scheduler's mean generations per step over the round.
    func round(client: HTTPClient, clients: Int, vocab: Int, scheduler: BatchScheduler) -> ([Sample], Double, Double) {
        let next = LockedBox(0), results = LockedBox([Sample]())
        let group = DispatchGroup()
        let (promptLen, newTokens, requests) = (self.promptLen, self.newTokens, self.requests)
        let steps0 = scheduler.stepCounts
        let t0 = monotonicSeconds()
        for _ in 0..<clients {
            group.enter()
            let thread = Thread {
                defer { group.leave() }
                while true {
                    let i: Int = next.lock { v in defer { v += 1 }; return v }
                    guard i < requests else { return }
                    var rng = SplitMix64(seed: UInt64(1000 + i))
                    let prompt = (0..<promptLen).map { _ in Int(rng.next() % UInt64(vocab)) }
                    var sample = Sample()
                    let start = monotonicSeconds()
                    do {
                        let reply = try client.post(
                            "/v1/completions",
                            json: ["prompt": prompt, "max_tokens": newTokens, "temperature": 0, "stream": true,
                                   "stream_options": ["include_usage": true]] as [String: Any]
                        ) { data in
                            if sample.ttft == nil { sample.ttft = monotonicSeconds() - start }
                            if let usage = Self.usage(data) { sample.tokens = usage }
                            if data.contains("\"error\"") && !data.contains("\"choices\"") { sample.error = data }
                            return true
                        }
                        if reply.status != 200 { sample.error = "HTTP \(reply.status): \(reply.text.prefix(200))" }
                        if sample.error == nil && sample.tokens == 0 { sample.error = "no usage in the stream" }
                    } catch {
                        sample.error = "\(error)"
                    }
                    results.lock { $0.append(sample) }
                }
            }
            thread.start()
        }
        group.wait()
        let seconds = monotonicSeconds() - t0
        let steps1 = scheduler.stepCounts
        let mean = steps1.steps > steps0.steps ? Double(steps1.rows - steps0.rows) / Double(steps1.steps - steps0.steps) : 0
        return (results.value, seconds, mean)
    }

    /// `usage.completion_tokens` of a streamed chunk, when it has one.
    static func usage(_ data: String) -> Int? {
        guard data.contains("\"usage\""), let d = data.data(using: .utf8),
              let o = try? JSONSerialization.jsonObject(with: d) as? [String: Any],
              let u = o["usage"] as? [String: Any], let c = u["completion_tokens"] as? Int else { return nil }
        return c
    }
}
