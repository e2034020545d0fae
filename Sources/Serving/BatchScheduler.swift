import Foundation
import Layers
import Models
import TensorCore
import Tokenization
import ToolkitSupport

/// One generation the scheduler runs: a prompt, a token budget, sampling and where to stop.
public struct GenerationRequest: Sendable {
    public var prompt: [Int32]
    public var maxTokens: Int
    public var sampling: SamplingOptions
    /// Token ids that end the answer (not part of its text): the model's EOS ids, a chat template's end of turn.
    public var stopIDs: Set<Int32>
    /// Strings that end the answer (cut off before the first one).
    public var stopStrings: [String]

    public init(prompt: [Int32], maxTokens: Int, sampling: SamplingOptions = .init(), stopIDs: Set<Int32> = [],
                stopStrings: [String] = []) {
        self.prompt = prompt
        self.maxTokens = maxTokens
        self.sampling = sampling
        self.stopIDs = stopIDs
        self.stopStrings = stopStrings
    }
}

/// Why an answer ended, in OpenAI's words: a stop token or string (`stop`), or the token budget or
/// the context (`length`).
public enum FinishReason: String, Sendable, Codable {
    case stop, length
}

/// What a submitted generation reports, in order: pieces of text (with the tokens that made them;
/// text that might start a stop string is held back until it cannot), then `done` or `failed`.
public enum GenerationEvent: Sendable, Equatable {
    case text(String, tokens: [Int32])
    case done(FinishReason, promptTokens: Int, completionTokens: Int)
    case failed(String)
}

/// A queued generation: its events, and a way to cancel it (a client that went away).
public struct Submission: Sendable {
    public let events: AsyncStream<GenerationEvent>
    public let cancel: @Sendable () -> Void
}

/// Why a generation was not accepted.
public enum SubmitError: Error, Equatable, CustomStringConvertible {
    /// Every batch slot and every queue place is taken (HTTP 429).
    case busy(running: Int, queued: Int)
    /// The scheduler is shutting down (HTTP 503).
    case shuttingDown
    /// The request cannot run (HTTP 400): what is wrong, and the request field it concerns.
    case invalid(String, field: String)

    public var description: String {
        switch self {
        case .busy(let running, let queued):
            return "the server is busy: \(running) generations running and \(queued) queued, the most it takes; retry later"
        case .shuttingDown: return "the server is shutting down"
        case .invalid(let message, _): return message
        }
    }
}

/// Continuous batching on one thread that owns the model: up to `maxBatch` generations share each
/// decoding step (one pass over the weights for all of them, `DecodeEngine.step(tokens:caches:)`),
/// and a waiting generation joins as soon as a slot frees, after its prompt has been run (prefill,
/// on the tensor path). Up to `maxQueue` more wait in arrival order; past that `submit` refuses.
///
/// Every generation samples with its own seed and history, so its tokens do not depend on what
/// else shares the steps: a greedy generation gives `toolkit generate --greedy`'s tokens. A
/// generation whose stream is dropped (a client that went away) leaves at the next step.
/// Models the decode engine cannot run (MoE, adapters) decode each generation on the tensor path
/// in turn within the step.
public final class BatchScheduler: @unchecked Sendable {
    public struct Limits: Sendable {
        /// Generations per decoding step.
        public var maxBatch: Int
        /// Generations waiting for a slot.
        public var maxQueue: Int
        public init(maxBatch: Int = 8, maxQueue: Int = 64) {
            self.maxBatch = maxBatch
            self.maxQueue = maxQueue
        }
    }

    public let model: DecoderModel
    public let codec: TextCodec
    public let limits: Limits
    private let engine: DecodeEngine?

    /// Guards `waiting`, `running`, `stopping` and every sequence's `cancelled`.
    private let lock = NSCondition()
    private var waiting: [Generation] = []
    private var running = 0
    private var stopping = false
    /// Tests hold admission with this (nothing joins the batch while it is set).
    private var paused = false
    /// Tests slow every step by this many seconds (to leave a stream mid-way); set before submitting.
    var throttle: Double = 0
    /// Generations cancelled while queued or running.
    private var cancelledCount = 0
    private let finished = DispatchSemaphore(value: 0)
    /// Steps run and generations that shared them (for `stats`).
    private var steps = 0, stepRows = 0

    /// Builds the scheduler and starts its thread. `engine` nil: the tensor path decodes.
    public init(model: DecoderModel, codec: TextCodec, engine: DecodeEngine?, limits: Limits = .init()) {
        self.model = model
        self.codec = codec
        self.engine = engine
        self.limits = Limits(maxBatch: max(1, limits.maxBatch), maxQueue: max(0, limits.maxQueue))
        let thread = Thread {  // holds the scheduler until shutdown() ends the loop
            self.loop()
            self.finished.signal()
        }
        thread.name = "toolkit-serve-scheduler"
        thread.stackSize = 16 << 20
        thread.start()
    }

    /// Queues `request`; its events arrive on the submission's stream. `cancel()`, dropping the
    /// stream or cancelling the task that reads it cancels the generation. A request that cannot run (empty
    /// prompt, ids outside the vocabulary, prompt + budget beyond the context) is refused here.
    public func submit(_ request: GenerationRequest) throws -> Submission {
        let p = request.prompt.count, context = model.dims.contextLength, v = model.dims.vocabSize
        guard p >= 1 else { throw SubmitError.invalid("the prompt is empty", field: "prompt") }
        guard request.maxTokens >= 1 else { throw SubmitError.invalid("max_tokens must be at least 1", field: "max_tokens") }
        guard p + request.maxTokens <= context else {
            throw SubmitError.invalid("this model's context is \(context) tokens; the prompt has \(p) and max_tokens asks for \(request.maxTokens) more",
                                      field: "max_tokens")
        }
        if let bad = request.prompt.first(where: { $0 < 0 || Int($0) >= v }) {
            throw SubmitError.invalid("prompt token id \(bad) is outside the vocabulary (0..<\(v))", field: "prompt")
        }
        let (stream, continuation) = AsyncStream.makeStream(of: GenerationEvent.self, bufferingPolicy: .unbounded)
        let s = Generation(request, continuation)
        lock.lock()
        defer { lock.unlock() }
        guard !stopping else { throw SubmitError.shuttingDown }
        guard running + waiting.count < limits.maxBatch + limits.maxQueue else {
            throw SubmitError.busy(running: running, queued: waiting.count)
        }
        waiting.append(s)
        continuation.onTermination = { [weak self, weak s] termination in
            guard case .cancelled = termination, let self, let s else { return }
            self.cancel(s)
        }
        lock.signal()
        return Submission(events: stream) { [weak self, weak s] in
            guard let self, let s else { return }
            self.cancel(s)
        }
    }

    /// Generations running and waiting, and the mean number of generations per decoding step so far.
    public var stats: (running: Int, queued: Int, meanBatch: Double, cancelled: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (running, waiting.count, steps == 0 ? 0 : Double(stepRows) / Double(steps), cancelledCount)
    }

    /// Decoding steps run so far and the generations they carried in all (their ratio is the mean batch).
    public var stepCounts: (steps: Int, rows: Int) {
        lock.lock()
        defer { lock.unlock() }
        return (steps, stepRows)
    }

    /// Stops taking generations: the waiting ones fail ("shutting down"), the running ones finish,
    /// then the thread ends. Returns when it has.
    public func shutdown() {
        lock.lock()
        let dropped = stopping ? [] : waiting
        waiting.removeAll()
        let first = !stopping
        stopping = true
        lock.signal()
        lock.unlock()
        for s in dropped { s.fail(SubmitError.shuttingDown.description) }
        if first { finished.wait() }
    }

    /// Holds (true) or releases admission: waiting generations stay queued while held.
    func hold(_ on: Bool) {
        lock.lock()
        paused = on
        lock.signal()
        lock.unlock()
    }

    private func cancel(_ s: Generation) {
        lock.lock()
        s.cancelled = true
        let queued = waiting.contains { $0 === s }
        if queued { cancelledCount += 1 }  // running ones are counted when the loop drops them
        waiting.removeAll { $0 === s }
        lock.signal()
        lock.unlock()
        if queued { s.continuation.finish() }  // never started: its stream just ends
    }

    // MARK: - The scheduler thread

    private func loop() {
        var active: [Generation] = []
        while true {
            lock.lock()
            while (waiting.isEmpty || paused) && active.isEmpty && !stopping { lock.wait() }
            if stopping && waiting.isEmpty && active.isEmpty {
                running = 0
                lock.unlock()
                return
            }
            var joining: [Generation] = []
            while !paused, active.count + joining.count < limits.maxBatch, !waiting.isEmpty { joining.append(waiting.removeFirst()) }
            running = active.count + joining.count
            lock.unlock()

            for s in joining where prefill(s) { active.append(s) }
            dropCancelled(&active)
            let batch = active.count
            if batch > 0 {
                decode(active)
                if throttle > 0 { Thread.sleep(forTimeInterval: throttle) }
            }
            dropCancelled(&active)
            lock.lock()
            running = active.count
            if batch > 0 { steps += 1; stepRows += batch }
            lock.unlock()
        }
    }

    /// Ends the streams of generations cancelled while the lock was not held, and drops them
    /// with the finished ones.
    private func dropCancelled(_ active: inout [Generation]) {
        lock.lock()
        let gone = active.filter { $0.cancelled && !$0.isDone }
        cancelledCount += gone.count
        lock.unlock()
        for s in gone { s.abandon() }
        active.removeAll { $0.isDone }
    }

    /// Runs the prompt and takes the first token; false when the generation already ended.
    private func prefill(_ s: Generation) -> Bool {
        let p = s.request.prompt
        do {
            let cache = model.makeCache(batch: 1, capacity: p.count + s.request.maxTokens)
            s.cache = cache
            try model.nextTokenLogits(p, batch: 1, cache: cache).withUnsafeBufferPointer { s.sample($0, codec) }
        } catch {
            s.fail("\(error)")
        }
        return !s.isDone
    }

    /// One token for every active generation.
    private func decode(_ active: [Generation]) {
        let v = model.dims.vocabSize
        do {
            if let engine {
                let logits = try engine.step(tokens: active.map(\.last), caches: active.map { $0.cache! })
                for (r, s) in active.enumerated() { s.sample(UnsafeBufferPointer(rebasing: logits[(r * v)..<((r + 1) * v)]), codec) }
            } else {
                for s in active {
                    try model.nextTokenLogits([s.last], batch: 1, cache: s.cache!).withUnsafeBufferPointer { s.sample($0, codec) }
                }
            }
        } catch {
            for s in active where !s.isDone { s.fail("\(error)") }
        }
    }

    /// A generation in flight (touched by the scheduler thread only, except `cancelled`).
    private final class Generation: @unchecked Sendable {
        let request: GenerationRequest
        let continuation: AsyncStream<GenerationEvent>.Continuation
        var cancelled = false
        var cache: KVCache?
        var rng: SplitMix64
        var history: TokenHistory
        var generated: [Int32] = []
        var streamer: TextCodec.Streamer?
        var answer: AnswerText
        private(set) var isDone = false

        init(_ request: GenerationRequest, _ continuation: AsyncStream<GenerationEvent>.Continuation) {
            self.request = request
            self.continuation = continuation
            rng = SplitMix64(seed: request.sampling.seed)
            history = TokenHistory(prompt: request.sampling.penalises ? request.prompt : [])
            answer = AnswerText(stops: request.stopStrings)
        }

        var last: Int32 { generated.last ?? request.prompt.last ?? 0 }

        /// Draws the next token from `logits` with this generation's settings, seed and history.
        func sample(_ logits: UnsafeBufferPointer<Float>, _ codec: TextCodec) {
            accept(Generator.sample(logits, request.sampling, history: history, rng: &rng), codec)
        }

        /// Takes the sampled token: a stop id ends the answer without its text; otherwise its text
        /// is sent, less anything that could still become a stop string; a stop string or the
        /// budget ends the answer.
        func accept(_ token: Int32, _ codec: TextCodec) {
            generated.append(token)
            if request.sampling.penalises { history.add(token) }
            if request.stopIDs.contains(token) { return finish(.stop, answer.rest()) }
            if streamer == nil { streamer = codec.streamer() }
            let (piece, stopped) = answer.add(streamer!.push(token))
            if stopped { return finish(.stop, piece) }
            if generated.count >= request.maxTokens {
                let (tail, stoppedInTail) = answer.add(streamer!.flush())
                return finish(stoppedInTail ? .stop : .length, piece + tail + answer.rest())
            }
            continuation.yield(.text(piece, tokens: [token]))
        }

        private func finish(_ reason: FinishReason, _ text: String) {
            continuation.yield(.text(text, tokens: Array(generated.suffix(1))))
            continuation.yield(.done(reason, promptTokens: request.prompt.count, completionTokens: generated.count))
            continuation.finish()
            isDone = true
            cache = nil
        }

        /// Cancelled while running: the stream ends without a finish reason.
        func abandon() {
            continuation.finish()
            isDone = true
            cache = nil
        }

        func fail(_ message: String) {
            guard !isDone else { return }
            continuation.yield(.failed(message))
            continuation.finish()
            isDone = true
            cache = nil
        }
    }
}
