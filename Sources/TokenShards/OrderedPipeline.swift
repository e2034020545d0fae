import Foundation

/// One producer thread, `workers` transforming threads, results delivered in input order.
///
/// There are no batch barriers: a worker takes the next input as soon as it is free, so reading,
/// encoding and the consumer's work (appending to shards) overlap. At most `window` inputs wait
/// to be transformed and at most `2 * window` results wait to be consumed, bounding memory.
final class OrderedPipeline<Input, Output>: @unchecked Sendable {
    private let condition = NSCondition()
    /// Inputs waiting for a worker; a taken slot is cleared so the worker holds the only reference.
    private var pending: [(Int, Input)?] = []
    private var pendingHead = 0
    private var produced = 0
    private var producerDone = false
    private var results: [Int: Output] = [:]
    private var nextOut = 0
    private var failure: (any Error)?
    private var stopped = false
    /// Jobs handed to the workers (`runOnWorker`), run before their next input.
    private var sideJobs: [() -> Void] = []
    private var workersAlive: Int
    private let window: Int
    private let group = DispatchGroup()

    init(
        workers: Int, window: Int, produce: @escaping () throws -> Input?,
        transform: @escaping (Int, Input) throws -> Output
    ) {
        self.window = max(window, 1)
        workersAlive = max(workers, 1)
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
        condition.lock()
        defer {
            workersAlive -= 1
            condition.unlock()
        }
        while true {
            while sideJobs.isEmpty && pendingHead == pending.count && !producerDone && !stopped {
                condition.wait()
            }
            if runSideJob() { continue }
            if stopped || pendingHead == pending.count { return }
            let (seq, item) = pending[pendingHead]!
            pending[pendingHead] = nil
            pendingHead += 1
            if pendingHead > 64 && pendingHead * 2 > pending.count {
                pending.removeFirst(pendingHead)
                pendingHead = 0
            }
            condition.broadcast()
            condition.unlock()
            let result: Output
            do { result = try transform(worker, item) } catch {
                condition.lock()
                failLocked(error)
                continue  // runs the side jobs already queued, then exits
            }
            condition.lock()
            while seq >= nextOut + 2 * window && !stopped {
                if !runSideJob() { condition.wait() }
            }
            results[seq] = result
            condition.broadcast()
        }
    }

    /// Runs the oldest side job with the lock released; false when there is none.
    /// Call with the lock held; returns with it held.
    private func runSideJob() -> Bool {
        guard !sideJobs.isEmpty else { return false }
        let job = sideJobs.removeFirst()
        condition.unlock()
        job()
        condition.lock()
        return true
    }

    /// Has one of the workers run `job` before it takes its next input, so work that the
    /// consumer produces (compressing a full shard) shares the workers' cores instead of adding
    /// a thread. Returns false, without running it, once the workers have exited.
    func runOnWorker(_ job: @escaping () -> Void) -> Bool {
        condition.lock()
        defer { condition.unlock() }
        guard workersAlive > 0 && !stopped else { return false }
        sideJobs.append(job)
        condition.broadcast()
        return true
    }

    private func fail(_ error: any Error) {
        condition.lock()
        failLocked(error)
        condition.unlock()
    }

    private func failLocked(_ error: any Error) {
        if failure == nil { failure = error }
        stopped = true
        condition.broadcast()
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

    /// Stops every thread and waits for them, then runs side jobs no worker took (call on every
    /// exit path).
    func finish() {
        condition.lock()
        stopped = true
        condition.broadcast()
        condition.unlock()
        group.wait()
        condition.lock()
        while runSideJob() {}
        condition.unlock()
    }
}

/// Moves a non-Sendable value to another thread whose only user it becomes.
struct UncheckedBox<T>: @unchecked Sendable {
    let value: T
    init(_ value: T) { self.value = value }
}
