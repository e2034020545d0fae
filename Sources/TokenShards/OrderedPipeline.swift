import Foundation

/// One producer thread, `workers` transforming threads, results delivered in input order.
///
/// There are no batch barriers: a worker takes the next input as soon as it is free, so reading,
/// encoding and the consumer's work (appending to shards) overlap. At most `window` inputs wait
/// to be transformed and at most `2 * window` results wait to be consumed, bounding memory.
final class OrderedPipeline<Input, Output>: @unchecked Sendable {
    private let condition = NSCondition()
    private var pending: [(Int, Input)] = []
    private var pendingHead = 0
    private var produced = 0
    private var producerDone = false
    private var results: [Int: Output] = [:]
    private var nextOut = 0
    private var failure: (any Error)?
    private var stopped = false
    private let window: Int
    private let group = DispatchGroup()

    init(
        workers: Int, window: Int, produce: @escaping () throws -> Input?,
        transform: @escaping (Int, Input) throws -> Output
    ) {
        self.window = max(window, 1)
        start { [self] in runProducer(produce) }
        for w in 0..<max(workers, 1) { start { [self] in runWorker(w, transform) } }
    }

    private func start(_ body: @escaping () -> Void) {
        group.enter()
        let box = UncheckedBox(body)
        Thread.detachNewThread { [group] in
            box.value()
            group.leave()
        }
    }

    private func runProducer(_ produce: () throws -> Input?) {
        while true {
            let item: Input?
            do { item = try produce() } catch {
                fail(error)
                return
            }
            condition.lock()
            defer { condition.unlock() }
            guard let item else {
                producerDone = true
                condition.broadcast()
                return
            }
            while pending.count - pendingHead >= window && !stopped { condition.wait() }
            if stopped { return }
            pending.append((produced, item))
            produced += 1
            condition.broadcast()
        }
    }

    private func runWorker(_ worker: Int, _ transform: (Int, Input) throws -> Output) {
        while true {
            condition.lock()
            while pendingHead == pending.count && !producerDone && !stopped { condition.wait() }
            if stopped || pendingHead == pending.count {
                condition.unlock()
                return
            }
            let (seq, item) = pending[pendingHead]
            pendingHead += 1
            if pendingHead > 64 && pendingHead * 2 > pending.count {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }
            condition.broadcast()
            condition.unlock()
            let result: Output
            do { result = try transform(worker, item) } catch {
                fail(error)
                return
            }
            condition.lock()
            while seq >= nextOut + 2 * window && !stopped { condition.wait() }
            results[seq] = result
            condition.broadcast()
            condition.unlock()
        }
    }

    private func fail(_ error: any Error) {
        condition.lock()
        if failure == nil { failure = error }
        stopped = true
        condition.broadcast()
        condition.unlock()
    }

    /// The next result in input order; nil after the last. Rethrows the first failure.
    func next() throws -> Output? {
        condition.lock()
        defer { condition.unlock() }
        while true {
            if let failure { throw failure }
            if let r = results.removeValue(forKey: nextOut) {
                nextOut += 1
                condition.broadcast()
                return r
            }
            if producerDone && nextOut == produced { return nil }
            condition.wait()
        }
    }

    /// Stops every thread and waits for them (call on every exit path).
    func finish() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
        group.wait()
    }
}

/// Moves a non-Sendable value to another thread whose only user it becomes.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
