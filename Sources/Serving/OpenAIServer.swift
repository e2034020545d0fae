import Foundation
import NIOConcurrencyHelpers
import Hummingbird
import Logging
import Models
import ServiceLifecycle
import Tokenization
import ToolkitSupport

/// What `toolkit serve` serves and its bounds.
public struct ServeSettings: Sendable {
    /// The name clients give as `model` (`GET /v1/models` lists it).
    public var modelID: String
    public var host = "127.0.0.1"
    /// 0: any free port (the one taken is printed by `onListening`).
    public var port = 8000
    /// Request bodies larger than this are refused (413).
    public var maxBodyBytes = 1 << 20
    /// The most tokens one answer may ask for (`max_tokens`), besides the context.
    public var maxTokens: Int
    /// `max_tokens` when a completion request gives none (OpenAI's 16); chat answers default to the rest of the context, up to `maxTokens`.
    public var defaultCompletionTokens = 16
    public var chatTemplate: ChatTemplate
    /// Ids that end every answer (the model's EOS ids, the tokenizer's end of text).
    public var stopIDs: Set<Int32>
    /// The generation_config.json defaults (temperature and the rest when a request gives none).
    public var defaults: GenerationDefaults
    /// How long SIGINT / SIGTERM waits for running answers before cancelling them.
    public var shutdownGraceSeconds = 30

    public init(modelID: String, maxTokens: Int, chatTemplate: ChatTemplate, stopIDs: Set<Int32>, defaults: GenerationDefaults) {
        self.modelID = modelID
        self.maxTokens = maxTokens
        self.chatTemplate = chatTemplate
        self.stopIDs = stopIDs
        self.defaults = defaults
    }
}

/// The OpenAI-compatible HTTP API over a `BatchScheduler`:
/// `GET /v1/models`, `POST /v1/completions`, `POST /v1/chat/completions` (JSON, or server-sent
/// events with `"stream": true`), `GET /health`, and `GET /` (a chat page).
///
/// Every failure is a JSON error body with a 4xx/5xx status; nothing a client sends stops the server.
public final class OpenAIServer: Sendable {
    public let scheduler: BatchScheduler
    public let settings: ServeSettings
    let started = Int(Date().timeIntervalSince1970)
    private let running = NIOLockedValueBox<ServiceGroup?>(nil)

    public init(scheduler: BatchScheduler, settings: ServeSettings) {
        self.scheduler = scheduler
        self.settings = settings
    }

    /// The Hummingbird application; `onListening` receives the bound port.
    public func application(logger: Logger, logRequests: Bool = false, onListening: @escaping @Sendable (Int) -> Void = { _ in })
        -> some ApplicationProtocol
    {
        let router = Router()
        if logRequests { router.add(middleware: LogRequestsMiddleware(.notice)) }
        router.add(middleware: JSONErrorMiddleware())
        router.get("/health") { _, _ in self.health() }
        router.get("/v1/models") { _, _ in self.json(ModelList(data: [self.modelCard])) }
        router.get("/v1/models/:id") { _, context in
            guard context.parameters.get("id") == self.settings.modelID else {
                return APIError(404, "the model '\(context.parameters.get("id") ?? "")' does not exist", param: "model", code: "model_not_found").response
            }
            return self.json(self.modelCard)
        }
        router.post("/v1/completions") { request, _ in await self.handle(request, Self.completions) }
        router.post("/v1/chat/completions") { request, _ in await self.handle(request, Self.chatCompletions) }
        router.get("/") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/html; charset=utf-8"],
                     body: .init(byteBuffer: ByteBuffer(string: ChatPage.html(model: self.settings.modelID))))
        }
        return Application(
            router: router,
            configuration: .init(address: .hostname(settings.host, port: settings.port), serverName: "toolkit"),
            onServerRunning: { channel in onListening(channel.localAddress?.port ?? 0) },
            logger: logger)
    }

    /// Serves until SIGINT or SIGTERM: new connections stop, running answers get
    /// `shutdownGraceSeconds` to finish (then they are cancelled), the scheduler drains, and it returns.
    public func run(logRequests: Bool = false, signals: Bool = true, onListening: @escaping @Sendable (Int) -> Void) async throws {
        var logger = Logger(label: "toolkit.serve")
        logger.logLevel = .notice
        var config = ServiceGroupConfiguration(
            services: [.init(service: application(logger: logger, logRequests: logRequests, onListening: onListening))],
            gracefulShutdownSignals: signals ? [.sigterm, .sigint] : [], logger: logger)
        config.maximumGracefulShutdownDuration = .seconds(settings.shutdownGraceSeconds)
        let group = ServiceGroup(configuration: config)
        running.withLockedValue { $0 = group }
        defer {
            running.withLockedValue { $0 = nil }
            scheduler.shutdown()
        }
        try await group.run()
    }

    /// `run` on a task of its own, for synchronous callers: returns once the server listens, with
    /// its port, and a function that waits until it has stopped (throwing what `run` threw).
    public func start(signals: Bool, logRequests: Bool = false) throws -> (port: Int, wait: @Sendable () throws -> Void) {
        let ready = DispatchSemaphore(value: 0), stopped = DispatchSemaphore(value: 0)
        let outcome = NIOLockedValueBox<(port: Int, error: (any Error)?)>((0, nil))
        Task {
            do {
                try await run(logRequests: logRequests, signals: signals) { port in
                    outcome.withLockedValue { $0.port = port }
                    ready.signal()
                }
            } catch {
                outcome.withLockedValue { $0.error = error }
                ready.signal()  // a server that did not start
            }
            stopped.signal()
        }
        ready.wait()
        let started = outcome.withLockedValue { $0 }
        if let error = started.error, started.port == 0 { throw error }
        return (started.port, {
            stopped.wait()
            if let error = outcome.withLockedValue({ $0.error }) { throw error }
        })
    }

    /// Shuts a running `run` down as SIGTERM would.
    public func stop() async {
        await running.withLockedValue { $0 }?.triggerGracefulShutdown()
    }

    var modelCard: ModelCard {
        ModelCard(id: settings.modelID, created: started, max_model_len: scheduler.model.dims.contextLength)
    }

    func health() -> Response {
        let s = scheduler.stats
        struct Health: Codable {
            var status = "ok"
            var model: String
            var running: Int
            var queued: Int
            var mean_batch: Double
            var cancelled: Int
        }
        return json(Health(model: settings.modelID, running: s.running, queued: s.queued, mean_batch: s.meanBatch, cancelled: s.cancelled))
    }

    func json(_ value: some Encodable, status: HTTPResponse.Status = .ok) -> Response {
        jsonResponse(value, status: status)
    }

    /// Reads the body (bounded), decodes it, and runs `body`; every error becomes a JSON error response.
    private func handle<R: Decodable>(_ request: Request, _ body: (OpenAIServer) -> (R) async throws -> Response) async -> Response {
        do {
            let buffer: ByteBuffer
            do { buffer = try await request.body.collect(upTo: settings.maxBodyBytes) } catch {
                throw APIError(413, "the request body is larger than \(settings.maxBodyBytes) bytes")
            }
            let decoded: R
            do { decoded = try JSONDecoder().decode(R.self, from: Data(buffer: buffer)) } catch { throw APIError.decoding(error) }
            return try await body(self)(decoded)
        } catch let e as APIError {
            return e.response
        } catch let e as SubmitError {
            switch e {
            case .invalid(let message, let field): return APIError(400, message, param: field).response
            case .busy:
                var r = APIError(429, e.description, code: "server_busy").response
                r.headers[.retryAfter] = "1"
                return r
            case .shuttingDown: return APIError(503, e.description).response
            }
        } catch {
            return APIError(400, "\(error)").response
        }
    }

    // MARK: - The two generation endpoints

    /// The sampling and stops a request asks for, checked against OpenAI's ranges.
    func sampling(_ r: CommonFields) throws -> (SamplingOptions, [String]) {
        func check(_ ok: Bool, _ field: String, _ rule: String) throws {
            guard ok else { throw APIError(400, "'\(field)' must be \(rule)", param: field) }
        }
        if let m = r.model, m != settings.modelID {
            throw APIError(404, "the model '\(m)' does not exist; this server serves '\(settings.modelID)'", param: "model", code: "model_not_found")
        }
        try check((r.n ?? 1) == 1, "n", "1 (one answer per request)")
        let d = settings.defaults
        let temperature = r.temperature.map { Float($0) } ?? (d.doSample == false ? 0 : d.temperature ?? 1)
        try check(temperature >= 0 && temperature <= 2, "temperature", "between 0 and 2")
        try check(r.top_p.map { $0 > 0 && $0 <= 1 } ?? true, "top_p", "in (0, 1]")
        try check(r.top_k.map { $0 >= -1 } ?? true, "top_k", "-1 (off), 0 (off) or a positive count")
        try check(r.min_p.map { $0 >= 0 && $0 <= 1 } ?? true, "min_p", "between 0 and 1")
        try check(r.repetition_penalty.map { $0 > 0 && $0 <= 10 } ?? true, "repetition_penalty", "in (0, 10]")
        try check(r.presence_penalty.map { abs($0) <= 2 } ?? true, "presence_penalty", "between -2 and 2")
        try check(r.frequency_penalty.map { abs($0) <= 2 } ?? true, "frequency_penalty", "between -2 and 2")
        let stops = r.stop?.strings ?? []
        try check(stops.count <= 4 && stops.allSatisfy { !$0.isEmpty && $0.utf8.count <= 256 }, "stop", "up to 4 non-empty strings")
        // An explicit top_k of -1 or 0 turns top-k off; only an absent one takes the model's default.
        let topK: Int? = r.top_k.map { $0 > 0 ? $0 : nil } ?? d.topK
        let o = SamplingOptions(
            greedy: temperature == 0, temperature: temperature, topK: topK, topP: r.top_p.map { Float($0) } ?? d.topP,
            minP: r.min_p.map { Float($0) } ?? d.minP, repetitionPenalty: r.repetition_penalty.map { Float($0) } ?? d.repetitionPenalty ?? 1,
            presencePenalty: Float(r.presence_penalty ?? 0), frequencyPenalty: Float(r.frequency_penalty ?? 0),
            seed: r.seed.map { UInt64(bitPattern: $0) } ?? UInt64.random(in: 0...UInt64.max))
        return (o, stops)
    }

    /// `max_tokens` checked against the server's bound and the context left after the prompt.
    func budget(_ asked: Int?, prompt: Int, default fallback: Int, field: String, promptField: String) throws -> Int {
        let context = scheduler.model.dims.contextLength
        guard prompt >= 1 else { throw APIError(400, "the prompt is empty", param: "prompt") }
        guard prompt < context else {
            throw APIError(400, "this model's context is \(context) tokens and the prompt has \(prompt)", param: promptField,
                           code: "context_length_exceeded")
        }
        guard let asked else { return min(fallback, context - prompt) }
        guard asked >= 1, asked <= settings.maxTokens else {
            throw APIError(400, "'\(field)' must be between 1 and \(settings.maxTokens)", param: field)
        }
        guard prompt + asked <= context else {
            throw APIError(400, "this model's context is \(context) tokens; the prompt has \(prompt) and '\(field)' asks for \(asked) more",
                           param: field, code: "context_length_exceeded")
        }
        return asked
    }

    func encode(_ text: String) throws -> [Int32] { try scheduler.codec.encode(text) }

    static func completions(_ server: OpenAIServer) -> (CompletionRequest) async throws -> Response {
        { r in
            guard r.logprobs == nil || r.logprobs == 0 else { throw APIError(400, "'logprobs' is not supported", param: "logprobs") }
            guard (r.best_of ?? 1) == 1 else { throw APIError(400, "'best_of' must be 1", param: "best_of") }
            guard (r.suffix ?? "").isEmpty else { throw APIError(400, "'suffix' is not supported", param: "suffix") }
            let most = min(64, server.scheduler.limits.maxBatch + server.scheduler.limits.maxQueue)
            guard (1...most).contains(r.prompt.count) else {
                throw APIError(400, "'prompt' must hold 1 to \(most) prompts (this server runs and queues \(most) at once)", param: "prompt")
            }
            let (sampling, stops) = try server.sampling(r.common)
            let prompts: [[Int32]]
            switch r.prompt {
            case .texts(let t): prompts = try t.map(server.encode)
            case .ids(let ids): prompts = ids
            }
            let requests = try prompts.map { p in
                GenerationRequest(
                    prompt: p, maxTokens: try server.budget(r.max_tokens, prompt: p.count, default: server.settings.defaultCompletionTokens, field: "max_tokens",
                                                                    promptField: "prompt"),
                    sampling: sampling, stopIDs: r.common.ignore_eos == true ? [] : server.settings.stopIDs, stopStrings: stops)
            }
            let echo = r.echo == true ? prompts.map { server.scheduler.codec.decode($0) } : prompts.map { _ in "" }
            let format = ResponseFormat.completion(id: "cmpl-\(Self.newID())", created: Int(Date().timeIntervalSince1970), model: server.settings.modelID)
            return try await server.respond(requests, r.common, format: format, prefixes: echo)
        }
    }

    static func chatCompletions(_ server: OpenAIServer) -> (ChatCompletionRequest) async throws -> Response {
        { r in
            guard r.logprobs != true else { throw APIError(400, "'logprobs' is not supported", param: "logprobs") }
            guard (r.tools ?? []).isEmpty else { throw APIError(400, "'tools' (function calling) is not supported", param: "tools") }
            guard !r.messages.isEmpty else { throw APIError(400, "'messages' must hold at least one message", param: "messages") }
            for (i, m) in r.messages.enumerated() where !["system", "developer", "user", "assistant"].contains(m.role) {
                throw APIError(400, "'messages[\(i)].role' must be system, developer, user or assistant (not '\(m.role)')", param: "messages[\(i)].role")
            }
            let (sampling, stops) = try server.sampling(r.common)
            let template = server.settings.chatTemplate
            let messages = r.messages.map { ChatMessage(role: $0.role == "developer" ? "system" : $0.role, content: $0.content?.text ?? "") }
            let prompt = try server.encode(template.render(messages))
            let stopIDs = (r.common.ignore_eos == true ? [] : server.settings.stopIDs)
                .union(server.scheduler.codec.specialIDs(template.endOfTurn))
            let asked = r.max_completion_tokens ?? r.max_tokens
            let field = r.max_completion_tokens != nil ? "max_completion_tokens" : "max_tokens"
            let request = GenerationRequest(
                prompt: prompt, maxTokens: try server.budget(asked, prompt: prompt.count, default: server.settings.maxTokens, field: field,
                                                     promptField: "messages"),
                sampling: sampling, stopIDs: stopIDs, stopStrings: stops + template.endOfTurn)
            let format = ResponseFormat.chat(id: "chatcmpl-\(Self.newID())", created: Int(Date().timeIntervalSince1970), model: server.settings.modelID)
            return try await server.respond([request], r.common, format: format, prefixes: [""])
        }
    }

    static func newID() -> String {
        let chars = Array("abcdefghijklmnopqrstuvwxyz0123456789")
        return String((0..<24).map { _ in chars.randomElement()! })
    }

    // MARK: - Answers

    /// How answers are written: text completions or chat completions.
    enum ResponseFormat {
        case completion(id: String, created: Int, model: String)
        case chat(id: String, created: Int, model: String)

        func whole(_ texts: [String], _ reasons: [String], _ usage: Usage, ids: [[Int32]]?) -> any Encodable {
            switch self {
            case .completion(let id, let created, let model):
                return CompletionResponse(
                    id: id, created: created, model: model,
                    choices: texts.indices.map { CompletionChoice(index: $0, text: texts[$0], finish_reason: reasons[$0], token_ids: ids?[$0]) },
                    usage: usage)
            case .chat(let id, let created, let model):
                return ChatCompletionResponse(
                    id: id, object: "chat.completion", created: created, model: model,
                    choices: texts.indices.map {
                        ChatChoice(index: $0, message: ChatMessageOut(role: "assistant", content: texts[$0]), finish_reason: reasons[$0],
                                   token_ids: ids?[$0])
                    },
                    usage: usage)
            }
        }

        /// One streamed chunk: a piece of text for choice `index`, or its finish reason, or (index nil) the usage.
        func chunk(index: Int?, text: String?, role: Bool = false, finish: String? = nil, usage: Usage? = nil, ids: [Int32]? = nil)
            -> any Encodable
        {
            switch self {
            case .completion(let id, let created, let model):
                return CompletionResponse(
                    id: id, created: created, model: model,
                    choices: index.map { [CompletionChoice(index: $0, text: text ?? "", finish_reason: finish, token_ids: ids)] } ?? [],
                    usage: usage)
            case .chat(let id, let created, let model):
                let delta = ChatMessageOut(role: role ? "assistant" : nil, content: text)
                return ChatCompletionResponse(
                    id: id, object: "chat.completion.chunk", created: created, model: model,
                    choices: index.map { [ChatChoice(index: $0, delta: delta, finish_reason: finish, token_ids: ids)] } ?? [],
                    usage: usage)
            }
        }
    }

    /// Waits for every generation and answers with one JSON body.
    private func whole(_ submitted: [Submission], format: ResponseFormat, prefixes: [String], returnIDs: Bool) async throws -> Response {
        var texts = prefixes, reasons = [String](repeating: "length", count: submitted.count)
        var ids = [[Int32]](repeating: [], count: submitted.count)
        var usage = Usage(prompt_tokens: 0, completion_tokens: 0, total_tokens: 0)
        for (i, s) in submitted.enumerated() {
            for await event in s.events {
                switch event {
                case .text(let t, let new):
                    texts[i] += t
                    ids[i] += new
                case .done(let reason, let p, let c):
                    reasons[i] = reason.rawValue
                    usage.prompt_tokens += p
                    usage.completion_tokens += c
                case .failed(let message):
                    for s in submitted { s.cancel() }
                    throw APIError(500, "generation failed: \(message)")
                }
            }
        }
        usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
        return json(format.whole(texts, reasons, usage, ids: returnIDs ? ids : nil))
    }

    /// Submits every request (all or none: a busy server refuses the whole call), then answers as
    /// one JSON body or as server-sent events.
    private func respond(_ requests: [GenerationRequest], _ common: CommonFields, format: ResponseFormat, prefixes: [String]) async throws
        -> Response
    {
        let stream = common.stream == true, includeUsage = common.stream_options?.include_usage == true
        let returnIDs = common.return_token_ids == true
        var submissions: [Submission] = []
        do {
            for r in requests { submissions.append(try scheduler.submit(r)) }
        } catch {
            for s in submissions { s.cancel() }
            throw error
        }
        let submitted = submissions
        if !stream {
            // Runs to the end even if the client leaves (bounded by max_tokens): Hummingbird tells a
            // handler about a closed connection only while it reads the request body.
            return try await whole(submitted, format: format, prefixes: prefixes, returnIDs: returnIDs)
        }
        @Sendable func event(_ value: any Encodable) -> ByteBuffer {
            ByteBuffer(string: "data: " + String(decoding: wireJSON(value), as: UTF8.self) + "\n\n")
        }
        let body = ResponseBody { writer in
            var usage = Usage(prompt_tokens: 0, completion_tokens: 0, total_tokens: 0)
            do {
                for (i, s) in submitted.enumerated() {
                    if case .chat = format { try await writer.write(event(format.chunk(index: i, text: "", role: true))) }
                    if !prefixes[i].isEmpty { try await writer.write(event(format.chunk(index: i, text: prefixes[i]))) }
                    for await e in s.events {
                        switch e {
                        case .text(let t, let new) where !t.isEmpty || returnIDs:
                            try await writer.write(event(format.chunk(index: i, text: t, ids: returnIDs ? new : nil)))
                        case .text: break
                        case .done(let reason, let p, let c):
                            usage.prompt_tokens += p
                            usage.completion_tokens += c
                            let finish: (any Encodable)
                            if case .chat = format { finish = format.chunk(index: i, text: nil, finish: reason.rawValue) } else {
                                finish = format.chunk(index: i, text: "", finish: reason.rawValue)
                            }
                            try await writer.write(event(finish))
                        case .failed(let message):
                            try await writer.write(event(APIError(500, "generation failed: \(message)")))
                        }
                    }
                    // A cancelled task leaves the loop early: the generation stops with it.
                    if Task.isCancelled { s.cancel() }
                }
                if includeUsage {
                    usage.total_tokens = usage.prompt_tokens + usage.completion_tokens
                    try await writer.write(event(format.chunk(index: nil, text: nil, usage: usage)))
                }
                try await writer.write(ByteBuffer(string: "data: [DONE]\n\n"))
                try await writer.finish(nil)
            } catch {
                for s in submitted { s.cancel() }  // the client went away: free the slots
                throw error
            }
        }
        return Response(status: .ok, headers: [.contentType: "text/event-stream", .cacheControl: "no-cache"], body: body)
    }
}


extension APIError {
    var response: Response { jsonResponse(self, status: .init(code: status)) }
}

/// One encoder for every body and event (slashes unescaped, as OpenAI writes them).
private let wireEncoder: JSONEncoder = {
    let e = JSONEncoder()
    e.outputFormatting = [.withoutEscapingSlashes]
    return e
}()

func wireJSON(_ value: any Encodable) -> Data { (try? wireEncoder.encode(value)) ?? Data("{}".utf8) }

func jsonResponse(_ value: any Encodable, status: HTTPResponse.Status) -> Response {
    Response(status: status, headers: [.contentType: "application/json"], body: .init(byteBuffer: ByteBuffer(bytes: wireJSON(value))))
}

/// Errors Hummingbird raises itself (no such route, wrong method) as OpenAI-style JSON bodies.
struct JSONErrorMiddleware<Context: RequestContext>: RouterMiddleware {
    func handle(_ request: Request, context: Context, next: (Request, Context) async throws -> Response) async throws -> Response {
        do {
            return try await next(request, context)
        } catch let e as any HTTPResponseError {
            let message = e.status == .notFound ? "no such endpoint: \(request.method) \(request.uri.path)" : "\(e.status.reasonPhrase)"
            return APIError(e.status.code, message).response
        }
    }
}
