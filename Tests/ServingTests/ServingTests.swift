import Foundation
import Testing
import _TestSupport
@testable import Layers
@testable import Models
@testable import Serving
import TensorCore
import Tokenization

private let recipesDir = Fixtures.root.deletingLastPathComponent().deletingLastPathComponent().appendingPathComponent("Recipes").path

/// A small model with its own trained tokenizer (random weights): what the server tests talk to.
private func toyModel(recipe: String = "nano-qwen3") throws -> (DecoderModel, TextCodec) {
    var text = ""
    for i in 0..<200 { text += "the cat sat on the mat \(i % 7) and the dog ran to the park.\n" }
    var options = BPETrainerOptions(vocabSize: 300)
    options.specialTokens = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    let tokenizer = try BPETrainer.train(texts: [text], options: options)
    let model = try ModelBuilder.build(Recipe.load("\(recipesDir)/\(recipe).yaml", overrides: ["model.vocab_size=\(tokenizer.vocabSize)"]))
    return (model, TextCodec(tokenizer: tokenizer))
}

/// Greedy tokens of `Generator` (the engine path, as `toolkit generate --greedy`).
private func greedy(_ m: DecoderModel, _ prompt: [Int32], _ n: Int, eos: Set<Int32> = []) throws -> [Int32] {
    try Generator(model: m).generate(prompts: [prompt], maxNewTokens: n, eos: eos, engine: DecodeEngine.unsupportedReason(m) == nil ? DecodeEngine(model: m) : nil)
        .newTokens[0]
}

/// Collects a submission's events: its tokens, text, finish reason and usage.
private func collect(_ s: Submission) async -> (tokens: [Int32], text: String, reason: FinishReason?, usage: (Int, Int)?, error: String?) {
    var tokens: [Int32] = [], text = "", reason: FinishReason?, usage: (Int, Int)?, error: String?
    for await e in s.events {
        switch e {
        case .text(let t, let ids):
            text += t
            tokens += ids
        case .done(let r, let p, let c):
            reason = r
            usage = (p, c)
        case .failed(let m): error = m
        }
    }
    return (tokens, text, reason, usage, error)
}

@Suite(.serialized) struct BatchSchedulerTests {
    /// Generations of different lengths sharing steps give each its own greedy tokens, as alone.
    @Test func continuousBatchingGivesEachGenerationItsOwnTokens() async throws {
        let (m, codec) = try toyModel()
        let scheduler = BatchScheduler(model: m, codec: codec, engine: try DecodeEngine(model: m), limits: .init(maxBatch: 3, maxQueue: 8))
        defer { scheduler.shutdown() }
        let prompts: [[Int32]] = [[5, 6, 7], [9, 10, 11, 12, 13, 14, 15], [20], [30, 31, 32, 33], [40, 41]]
        let budgets = [12, 5, 20, 9, 15]
        scheduler.hold(true)  // all queued first, so that they share steps
        let subs = try prompts.indices.map { try scheduler.submit(GenerationRequest(prompt: prompts[$0], maxTokens: budgets[$0])) }
        scheduler.hold(false)
        for (i, s) in subs.enumerated() {
            let r = await collect(s)
            #expect(r.tokens == (try greedy(m, prompts[i], budgets[i])), "generation \(i)")
            #expect(r.reason == .length && r.usage! == (prompts[i].count, budgets[i]))
            #expect(r.text == codec.decode(r.tokens))
        }
        let counts = scheduler.stepCounts
        #expect(Double(counts.rows) / Double(counts.steps) > 2, "mean batch \(counts)")
    }

    /// The HF fixtures' greedy continuations through the scheduler, several at once; gpt-oss (MoE)
    /// decodes on the tensor path.
    @Test(arguments: ["gpt2-tiny", "qwen3-tiny", "llama3-tiny", "gemma3-tiny", "gptoss-tiny"])
    func fixturesGiveHFsGreedyTokens(name: String) async throws {
        let dir = Fixtures.root.appendingPathComponent(name)
        let m = try ModelIO.loadHF(dir.path)
        let gen = try JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("generation.json"))) as! [String: Any]
        let ids = { (key: String) in (gen[key] as! [[Int]]).map { $0.map { Int32($0) } } }
        let (prompts, expected) = (ids("prompt_ids"), ids("new_tokens"))
        let (_, codec) = try toyModel()
        let engine = DecodeEngine.unsupportedReason(m) == nil ? try DecodeEngine(model: m) : nil
        #expect((engine == nil) == (name == "gptoss-tiny"))
        let scheduler = BatchScheduler(model: m, codec: codec, engine: engine)
        defer { scheduler.shutdown() }
        scheduler.hold(true)
        let subs = try prompts.indices.map { try scheduler.submit(GenerationRequest(prompt: prompts[$0], maxTokens: expected[$0].count)) }
        scheduler.hold(false)
        for (i, s) in subs.enumerated() { #expect(await collect(s).tokens == expected[i], "\(name) row \(i)") }
    }

    /// Stop ids end the answer without their text; stop strings cut the text before them and are
    /// never sent, even in part.
    @Test func stopIDsAndStopStrings() async throws {
        let (m, codec) = try toyModel()
        let scheduler = BatchScheduler(model: m, codec: codec, engine: try DecodeEngine(model: m))
        defer { scheduler.shutdown() }
        let prompt: [Int32] = [5, 6, 7]
        let free = try greedy(m, prompt, 20)
        // A stop id: the fourth token.
        let r1 = await collect(try scheduler.submit(GenerationRequest(prompt: prompt, maxTokens: 20, stopIDs: [free[3]])))
        let cut = free.firstIndex(of: free[3])!
        #expect(r1.tokens == Array(free[...cut]) && r1.reason == .stop)
        #expect(r1.text == codec.decode(Array(free[..<cut])))
        // A stop string: two characters of the text after the first few tokens.
        let full = codec.decode(free)
        let start = full.index(full.startIndex, offsetBy: min(4, full.count - 2))
        let stop = String(full[start...].prefix(2))
        var pieces: [String] = []
        for await e in try scheduler.submit(GenerationRequest(prompt: prompt, maxTokens: 20, stopStrings: [stop])).events {
            if case .text(let t, _) = e, !t.isEmpty { pieces.append(t) }
            if case .done(let reason, _, _) = e { #expect(reason == .stop) }
        }
        #expect(pieces.joined() == full.truncated(atFirstOf: [stop]))
        #expect(!pieces.contains { $0.contains(stop) })
    }

    /// Past the batch and the queue, submit refuses; a cancelled generation frees its slot; at
    /// shutdown the waiting ones fail and the running ones finish.
    @Test func limitsCancellationAndShutdown() async throws {
        let (m, codec) = try toyModel()
        let scheduler = BatchScheduler(model: m, codec: codec, engine: try DecodeEngine(model: m), limits: .init(maxBatch: 1, maxQueue: 1))
        scheduler.hold(true)
        let a = try scheduler.submit(GenerationRequest(prompt: [1, 2], maxTokens: 30))
        let b = try scheduler.submit(GenerationRequest(prompt: [3, 4], maxTokens: 30))
        #expect(throws: SubmitError.busy(running: 0, queued: 2)) { try scheduler.submit(GenerationRequest(prompt: [5], maxTokens: 3)) }
        b.cancel()
        let c = try scheduler.submit(GenerationRequest(prompt: [5], maxTokens: 3))  // b's place
        #expect(await collect(b).tokens.isEmpty)
        scheduler.hold(false)
        #expect(await collect(a).tokens.count == 30)
        #expect(await collect(c).tokens.count == 3)
        // Bad requests are refused before they queue.
        #expect(throws: (any Error).self) { try scheduler.submit(GenerationRequest(prompt: [], maxTokens: 3)) }
        #expect(throws: (any Error).self) { try scheduler.submit(GenerationRequest(prompt: [1], maxTokens: m.dims.contextLength)) }
        #expect(throws: (any Error).self) { try scheduler.submit(GenerationRequest(prompt: [Int32(m.dims.vocabSize)], maxTokens: 2)) }
        scheduler.hold(true)
        let running = try scheduler.submit(GenerationRequest(prompt: [1, 2], maxTokens: 10))
        scheduler.hold(false)
        // Admitted (it may even have finished: the running count is refreshed at the end of a step,
        // so a generation that just finished can still be counted for a moment).
        try await waitUntil { scheduler.stats.queued == 0 }
        scheduler.hold(true)
        let queued = try scheduler.submit(GenerationRequest(prompt: [1, 2], maxTokens: 10))
        scheduler.shutdown()
        #expect(await collect(running).reason == .length)
        #expect(await collect(queued).error == SubmitError.shuttingDown.description)
        #expect(throws: SubmitError.shuttingDown) { try scheduler.submit(GenerationRequest(prompt: [1], maxTokens: 1)) }
    }
}

/// Runs `body` on its own thread (the HTTP client blocks; the server's handlers need the
/// concurrency pool's threads).
private func offPool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { c in Thread { c.resume(with: Result { try body() }) }.start() }
}

private func object(_ reply: HTTPClient.Reply) -> [String: Any] {
    (try? JSONSerialization.jsonObject(with: reply.body) as? [String: Any]) ?? [:]
}

/// A served toy model on a free loopback port.
private final class Served: @unchecked Sendable {
    let model: DecoderModel
    let codec: TextCodec
    let server: OpenAIServer
    let client: HTTPClient
    private let task: Task<Void, any Error>

    init(maxBatch: Int = 4, maxQueue: Int = 8, template: ChatTemplate = .chatml) async throws {
        (model, codec) = try toyModel()
        let scheduler = BatchScheduler(model: model, codec: codec, engine: try DecodeEngine(model: model),
                                       limits: .init(maxBatch: maxBatch, maxQueue: maxQueue))
        var settings = ServeSettings(modelID: "toy", maxTokens: model.dims.contextLength, chatTemplate: template,
                                     stopIDs: [codec.endOfText!], defaults: .init())
        settings.port = 0
        settings.maxBodyBytes = 4096
        let server = OpenAIServer(scheduler: scheduler, settings: settings)
        self.server = server
        let (ports, found) = AsyncStream.makeStream(of: Int.self)
        task = Task {
            defer { found.finish() }  // a server that fails to start ends the wait
            try await server.run(signals: false) { found.yield($0) }
        }
        var port = 0
        for await p in ports { port = p; break }
        guard port > 0 else { throw HTTPClient.Failure(description: "the server did not start") }
        client = HTTPClient(port: port, timeoutSeconds: 30)
    }

    func stop() async throws {
        await server.stop()
        try await task.value
    }

    func post(_ path: String, _ json: [String: Any], onEvent: (@Sendable (String) -> Bool)? = nil) async throws -> HTTPClient.Reply {
        let client = self.client, body = try JSONSerialization.data(withJSONObject: json)
        return try await offPool { try client.send("POST", path, body: body, onEvent: onEvent) }
    }

    func get(_ path: String) async throws -> HTTPClient.Reply {
        let client = self.client
        return try await offPool { try client.send("GET", path) }
    }
}

/// Polls `condition` every 2 ms; throws after `seconds`.
private func waitUntil(seconds: Double = 30, _ condition: () -> Bool) async throws {
    let deadline = Date().addingTimeInterval(seconds)
    while !condition() {
        guard Date() < deadline else { throw HTTPClient.Failure(description: "timed out after \(seconds) s") }
        try await Task.sleep(nanoseconds: 2_000_000)
    }
}

/// Collects the `data:` payloads of a stream.
private final class Events: @unchecked Sendable {
    private let lock = NSLock()
    private var items: [String] = []
    var all: [String] { lock.withLock { items } }
    func add(_ s: String) { lock.withLock { items.append(s) } }
    /// The JSON chunks (not `[DONE]`).
    var chunks: [[String: Any]] {
        all.filter { $0 != "[DONE]" }.compactMap { try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any] }
    }
}

@Suite(.serialized) struct OpenAIServerTests {
    /// Completions, whole and streamed, several at once: the text of `generate --greedy` (the same
    /// tokens through the same engine), the usage, and the stream's shape.
    @Test func completionsGiveTheGreedyText() async throws {
        let s = try await Served()
        let prompts = ["the cat sat", "the dog ran to the", "on the mat 3 and"]
        let expected = try prompts.map { p -> (String, Int) in
            let ids = try s.codec.encode(p)
            var new = try greedy(s.model, ids, 10, eos: [s.codec.endOfText!])
            if new.last == s.codec.endOfText { new.removeLast() }
            return (s.codec.decode(new), ids.count)
        }
        for (i, p) in prompts.enumerated() {
            let r = try await s.post("/v1/completions", ["model": "toy", "prompt": p, "max_tokens": 10, "temperature": 0])
            #expect(r.status == 200, "\(r.text)")
            let o = object(r)
            let choice = (o["choices"] as? [[String: Any]])?.first
            #expect(choice?["text"] as? String == expected[i].0)
            #expect(o["object"] as? String == "text_completion")
            #expect((o["usage"] as? [String: Int])?["prompt_tokens"] == expected[i].1)
        }
        // Streamed, all three at once.
        let streams = try await withThrowingTaskGroup(of: (Int, Events, Int).self) { group in
            for (i, p) in prompts.enumerated() {
                group.addTask {
                    let events = Events()
                    let r = try await s.post("/v1/completions", ["prompt": p, "max_tokens": 10, "temperature": 0, "stream": true,
                                                                 "stream_options": ["include_usage": true]]) { events.add($0); return true }
                    return (i, events, r.status)
                }
            }
            return try await group.reduce(into: [:]) { $0[$1.0] = ($1.1, $1.2) }
        }
        for i in prompts.indices {
            let (events, status) = streams[i]!
            #expect(status == 200)
            #expect(events.all.last == "[DONE]")
            let chunks = events.chunks
            let text = chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["text"] as? String }.joined()
            #expect(text == expected[i].0, "stream \(i)")
            #expect(chunks.dropLast().last.flatMap { ($0["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String } != nil)
            #expect((chunks.last?["usage"] as? [String: Int])?["prompt_tokens"] == expected[i].1)
        }
        try await s.stop()
    }

    /// Chat completions render the template, stop at the end of the turn, and stream deltas with
    /// the assistant role first.
    @Test func chatCompletionsUseTheTemplate() async throws {
        let s = try await Served()
        let messages = [ChatMessage(role: "system", content: "be brief"), ChatMessage(role: "user", content: "the cat")]
        let ids = try s.codec.encode(ChatTemplate.chatml.render(messages))
        let endOfTurn = s.codec.specialID("<|im_end|>")!
        var new = try greedy(s.model, ids, 12, eos: [s.codec.endOfText!, endOfTurn])
        if let last = new.last, last == endOfTurn || last == s.codec.endOfText { new.removeLast() }
        let expected = s.codec.decode(new).truncated(atFirstOf: ["<|im_end|>"])
        let body: [String: Any] = ["messages": messages.map { ["role": $0.role, "content": $0.content] }, "max_tokens": 12, "temperature": 0]
        let r = try await s.post("/v1/chat/completions", body)
        #expect(r.status == 200, "\(r.text)")
        let message = ((object(r)["choices"] as? [[String: Any]])?.first?["message"]) as? [String: Any]
        #expect(message?["content"] as? String == expected && message?["role"] as? String == "assistant")
        let events = Events()
        var streamed = body
        streamed["stream"] = true
        _ = try await s.post("/v1/chat/completions", streamed) { events.add($0); return true }
        let deltas = events.chunks.compactMap { ($0["choices"] as? [[String: Any]])?.first?["delta"] as? [String: Any] }
        #expect(deltas.first?["role"] as? String == "assistant")
        #expect(deltas.compactMap { $0["content"] as? String }.joined() == expected)
        #expect(events.chunks.allSatisfy { $0["object"] as? String == "chat.completion.chunk" })
        try await s.stop()
    }

    /// Every kind of bad request gets a 4xx with an OpenAI error body naming the problem, and the
    /// server keeps serving.
    @Test func badRequestsGet4xxAndTheServerStays() async throws {
        let s = try await Served()
        let context = s.model.dims.contextLength, vocab = s.model.dims.vocabSize
        let cases: [(String, String, Int, String?)] = [
            ("/v1/completions", "{bad", 400, nil),
            ("/v1/completions", "[]", 400, nil),
            ("/v1/completions", "{}", 400, "prompt"),
            ("/v1/completions", #"{"prompt": 5}"#, 400, "prompt"),
            ("/v1/completions", #"{"prompt": "x", "max_tokens": "a"}"#, 400, "max_tokens"),
            ("/v1/completions", #"{"prompt": "x", "max_tokens": 0}"#, 400, "max_tokens"),
            ("/v1/completions", #"{"prompt": "x", "max_tokens": \#(context)}"#, 400, "max_tokens"),
            ("/v1/completions", #"{"prompt": \#(Array(repeating: 1, count: context)), "max_tokens": 1}"#, 400, "prompt"),
            ("/v1/completions", #"{"prompt": \#(Array(repeating: "x", count: 13))}"#, 400, "prompt"),
            ("/v1/completions", #"{"prompt": [1, \#(vocab)]}"#, 400, "prompt"),
            ("/v1/completions", #"{"prompt": "x", "temperature": 5}"#, 400, "temperature"),
            ("/v1/completions", #"{"prompt": "x", "top_p": 0}"#, 400, "top_p"),
            ("/v1/completions", #"{"prompt": "x", "stop": 3}"#, 400, "stop"),
            ("/v1/completions", #"{"prompt": "x", "n": 2}"#, 400, "n"),
            ("/v1/completions", #"{"prompt": "x", "seed": "s"}"#, 400, "seed"),
            ("/v1/completions", #"{"prompt": "x", "model": "gpt-4"}"#, 404, "model"),
            ("/v1/completions", #"{"prompt": "\#(String(repeating: "a", count: 5000))"}"#, 413, nil),
            ("/v1/chat/completions", #"{"messages": []}"#, 400, "messages"),
            ("/v1/chat/completions", #"{"messages": "hi"}"#, 400, "messages"),
            ("/v1/chat/completions", #"{"messages": [{"role": "tool", "content": "x"}]}"#, 400, "messages[0].role"),
            ("/v1/chat/completions", #"{"messages": [{"content": "x"}]}"#, 400, "messages[0].role"),
            ("/v1/chat/completions", #"{"messages": [{"role": "user", "content": "x"}], "tools": [{}]}"#, 400, "tools"),
            ("/v1/nothing", "{}", 404, nil),
        ]
        for (path, body, status, param) in cases {
            let client = s.client
            let r = try await offPool { try client.send("POST", path, body: Data(body.utf8)) }
            #expect(r.status == status, "\(path) \(body.prefix(80)): \(r.status) \(r.text)")
            let error = object(r)["error"] as? [String: Any]
            #expect((error?["message"] as? String)?.isEmpty == false, "\(body.prefix(80)): \(r.text)")
            if let param { #expect(error?["param"] as? String == param, "\(body.prefix(80)): \(r.text)") }
        }
        // Unknown fields are ignored, as OpenAI does.
        let ok = try await s.post("/v1/completions", ["prompt": "the", "max_tokens": 2, "user": "u", "logit_bias": [:] as [String: Int]])
        #expect(ok.status == 200, "\(ok.text)")
        #expect(try await s.get("/health").status == 200)
        let models = object(try await s.get("/v1/models"))["data"] as? [[String: Any]]
        #expect(models?.first?["id"] as? String == "toy")
        let page = try await s.get("/")
        #expect(page.status == 200 && page.text.contains("/v1/chat/completions") && !page.text.contains("http://") && !page.text.contains("https://"))
        try await s.stop()
    }

    /// Past the batch and the queue, 429 with Retry-After; the queued requests are then answered.
    @Test func aBusyServerSays429() async throws {
        let s = try await Served(maxBatch: 1, maxQueue: 1)
        s.server.scheduler.hold(true)
        async let first = s.post("/v1/completions", ["prompt": "the cat", "max_tokens": 4])
        async let second = s.post("/v1/completions", ["prompt": "the dog", "max_tokens": 4])
        try await waitUntil { s.server.scheduler.stats.queued == 2 }
        let third = try await s.post("/v1/completions", ["prompt": "the mat", "max_tokens": 4])
        #expect(third.status == 429)
        #expect(third.headers["retry-after"] == "1")
        #expect((object(third)["error"] as? [String: Any])?["type"] as? String == "rate_limit_error")
        s.server.scheduler.hold(false)
        #expect(try await first.status == 200)
        #expect(try await second.status == 200)
        try await s.stop()
    }

    /// A client that closes its stream mid-way frees its slot at once; a graceful stop lets a
    /// running stream finish.
    @Test func aClientThatLeavesFreesItsSlotAndStopIsGraceful() async throws {
        let s = try await Served()
        s.server.scheduler.throttle = 0.05  // 50 ms a step: 50 tokens take 2.5 s
        let events = Events()
        let r = try await s.post("/v1/completions", ["prompt": "the cat", "max_tokens": 50, "stream": true, "temperature": 0, "ignore_eos": true]) {
            events.add($0)
            return events.all.count < 2
        }
        #expect(r.status == 200 && events.all.count == 2)
        // Counted as cancelled only when dropped while running, before its 50 tokens.
        try await waitUntil(seconds: 20) { s.server.scheduler.stats.running == 0 }
        #expect(s.server.scheduler.stats.cancelled == 1)
        s.server.scheduler.throttle = 0.01
        // A stream running when the server is told to stop still ends with [DONE].
        let done = Events()
        async let streaming = s.post("/v1/completions", ["prompt": "the dog", "max_tokens": 30, "stream": true, "temperature": 0]) { done.add($0); return true }
        try await waitUntil { !done.all.isEmpty }
        try await s.stop()
        #expect(try await streaming.status == 200)
        #expect(done.all.last == "[DONE]")
        #expect((done.chunks.last?["choices"] as? [[String: Any]])?.first?["finish_reason"] as? String != nil)
    }
}

@Suite struct AnswerTextTests {
    /// Pieces that extend the previous character (a combining vowel sign, a ZWJ emoji, CR then LF)
    /// all reach the client.
    @Test func piecesThatExtendACharacterAreSent() {
        var a = AnswerText(stops: [])
        let pieces = ["क", "ि", "स", "👩", "\u{200D}", "💻", "\r", "\n", "é"]
        var out = ""
        for p in pieces { out += a.add(p).text }
        out += a.rest()
        #expect(out == pieces.joined())
        #expect(out.unicodeScalars.count == pieces.map(\.unicodeScalars.count).reduce(0, +))
    }

    /// A stop string split over pieces is never sent, even in part; text that only looked like its
    /// start is sent once it cannot be; the answer is cut before the first stop.
    @Test func stopStringsAcrossPieces() {
        var a = AnswerText(stops: ["<|im_end|>", "ि\n"])
        var out = ""
        for p in ["hello <", "|im", "x", " and <|im_", "en"] {
            let r = a.add(p)
            #expect(!r.stopped)
            out += r.text
            #expect(!out.contains("<|im_"))
        }
        #expect(out == "hello <|imx and ")
        let r = a.add("d|> tail")
        #expect(r.stopped && out + r.text == "hello <|imx and ")
        #expect(a.add("more").text.isEmpty && a.rest().isEmpty)
        // The earliest stop wins; a multi-byte stop is matched by bytes.
        var b = AnswerText(stops: ["<|im_end|>", "ि\n"])
        #expect(b.add("कि").text == "क")  // "ि" could begin a stop
        let r2 = b.add("\nसब <|im_end|>")
        #expect(r2.stopped && r2.text.isEmpty)
        // Held-back text that no stop completes is sent at the end.
        var c = AnswerText(stops: ["<|im_end|>"])
        #expect(c.add("ok <|im").text == "ok ")
        #expect(c.rest() == "<|im")
    }
}

@Suite struct SamplingFieldTests {
    /// An explicit top_k of 0 or -1 turns top-k off even when generation_config sets one; an
    /// absent one takes the model's default; temperature 0 is greedy.
    @Test func topKOffAndDefaults() throws {
        let (m, codec) = try toyModel()
        var defaults = GenerationDefaults()
        defaults.topK = 50
        defaults.temperature = 0.6
        let server = OpenAIServer(scheduler: BatchScheduler(model: m, codec: codec, engine: nil),
                                  settings: ServeSettings(modelID: "toy", maxTokens: 8, chatTemplate: .chatml, stopIDs: [], defaults: defaults))
        defer { server.scheduler.shutdown() }
        func fields(_ json: String) throws -> CommonFields { try JSONDecoder().decode(CommonFields.self, from: Data(json.utf8)) }
        #expect(try server.sampling(fields(#"{"top_k": 0}"#)).0.topK == nil)
        #expect(try server.sampling(fields(#"{"top_k": -1}"#)).0.topK == nil)
        #expect(try server.sampling(fields(#"{"top_k": 7}"#)).0.topK == 7)
        let d = try server.sampling(fields("{}")).0
        #expect(d.topK == 50 && d.temperature == 0.6 && !d.greedy)
        #expect(try server.sampling(fields(#"{"temperature": 0}"#)).0.greedy)
    }
}
