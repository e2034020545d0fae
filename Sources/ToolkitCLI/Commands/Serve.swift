import ArgumentParser
import Foundation
import Layers
import Models
import Serving
import ToolkitSupport

/// The scheduler and server options `serve` and `bench serve` share.
struct ServeOptions: ParsableArguments {
    @Option(help: "Tokenizer file (default: the model folder's tokenizer.json or .tiktoken).") var tokenizer: String?
    @Flag(help: "Use --tokenizer even when it differs from the model's own.") var allowTokenizerMismatch = false
    @Option(help: "Chat template for /v1/chat/completions: chatml, llama3, gemma or alpaca (default: the recorded one, else the family's).")
    var template: String?
    @Option(help: "Generations that share one decoding step (continuous batching).") var maxBatch = 8
    @Option(help: "Requests that may wait for a slot; past that, 429.") var maxQueue = 64
    @Option(help: "The most tokens one answer may ask for (default: the context length).") var maxTokens: Int?
    @Option(help: "Largest request body in bytes (413 past it).") var maxBodyBytes = 1 << 20
    @Option(help: "Weights of the fast decoder: f32, bf16 or int8.") var weights: DecodeWeightFormat = .f32

    func validate() throws {
        try ConversationSetup.validate(template: template)
        guard maxBatch >= 1, maxBatch <= 256 else { throw ValidationError("--max-batch must be between 1 and 256") }
        guard maxQueue >= 0 else { throw ValidationError("--max-queue must be >= 0") }
        if let maxTokens, maxTokens < 1 { throw ValidationError("--max-tokens must be at least 1") }
        guard maxBodyBytes >= 1024 else { throw ValidationError("--max-body-bytes must be at least 1024") }
    }

    /// Loads the model and builds the scheduler and the server (not yet listening).
    func server(_ source: ModelSourceOptions, name: String?, host: String, port: Int, shutdownGrace: Int = 30, quiet: Bool) throws
        -> OpenAIServer
    {
        let setup = try ConversationSetup.load(source, tokenizer: tokenizer, allowMismatch: allowTokenizerMismatch, template: template,
                                               command: "serve")
        let engine = try DecoderPath.fast.engine(for: setup.model, weights: weights, useCache: true, quiet: quiet)
        let scheduler = BatchScheduler(model: setup.model, codec: setup.text, engine: engine,
                                       limits: .init(maxBatch: maxBatch, maxQueue: maxQueue))
        let folder = URL(fileURLWithPath: source.path).standardizedFileURL.lastPathComponent
        var settings = ServeSettings(
            modelID: name ?? folder, maxTokens: min(maxTokens ?? setup.model.dims.contextLength, setup.model.dims.contextLength),
            chatTemplate: setup.template, stopIDs: setup.stopIDs, defaults: setup.defaults)
        settings.host = host
        settings.port = port
        settings.maxBodyBytes = maxBodyBytes
        settings.shutdownGraceSeconds = shutdownGrace
        return OpenAIServer(scheduler: scheduler, settings: settings)
    }
}

struct Serve: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Serve a model over an OpenAI-compatible HTTP API, with a chat page at /.",
        discussion: """
            Endpoints: GET /v1/models, POST /v1/completions, POST /v1/chat/completions (JSON, or server-sent \
            events with "stream": true), GET /health, GET / (a chat page). Concurrent requests share decoding \
            steps (continuous batching, --max-batch); --max-queue more wait, past that the answer is 429. \
            Ctrl-C or SIGTERM stops taking connections, lets running answers finish (up to --shutdown-grace \
            seconds), then exits.
            """)

    @OptionGroup var source: ModelSourceOptions
    @OptionGroup var options: ServeOptions
    @Option(help: "Address to listen on (loopback by default; 0.0.0.0 for every interface).") var host = "127.0.0.1"
    @Option(help: "Port (0: any free port; the one taken is printed).") var port = 8000
    @Option(help: "The model's name in the API (default: the folder's name).") var name: String?
    @Option(help: "Seconds SIGINT/SIGTERM waits for running answers before cancelling them.") var shutdownGrace = 30
    @Flag(help: "Log every request (method, path, status).") var logRequests = false

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be between 0 and 65535") }
        guard shutdownGrace >= 0 else { throw ValidationError("--shutdown-grace must be >= 0") }
    }

    func run() throws {
        let server = try options.server(source, name: name, host: host, port: port, shutdownGrace: shutdownGrace, quiet: false)
        let m = server.scheduler.model, id = server.settings.modelID
        let banner = "\(id) (\(m.recipe.name), context \(m.dims.contextLength), batch \(options.maxBatch))"
        do {
            let (port, wait) = try server.start(signals: true, logRequests: logRequests)
            printError("serve: \(banner) on http://\(host):\(port)  (Ctrl-C stops)")
            try wait()
        } catch {
            throw ToolkitError("serve: \(error)")
        }
        printError("serve: stopped")
    }
}

/// A value shared with a task (guarded by a lock).
final class LockedBox<T>: @unchecked Sendable {
    private let lock = NSLock()
    private var stored: T
    init(_ value: T) { stored = value }
    var value: T {
        get { lock.withLock { stored } }
        set { lock.withLock { stored = newValue } }
    }
    func lock<R>(_ body: (inout T) -> R) -> R { lock.withLock { body(&stored) } }
}
