import Foundation
import Testing

@testable import TokenShards

/// The encode pipeline: results in input order, side jobs run on the workers, and no side job
/// is lost when a worker fails or the workers have finished.
@Suite struct OrderedPipelineTests {
    final class Counter: @unchecked Sendable {
        private let lock = NSLock()
        private var value = 0
        func add() {
            lock.lock()
            value += 1
            lock.unlock()
        }
        var count: Int {
            lock.lock()
            defer { lock.unlock() }
            return value
        }
    }

    struct Boom: Error {}

    static func source(_ n: Int) -> () throws -> Int? {
        let next = LockedCounter()
        return { next.take(below: n) }
    }

    @Test func resultsInOrderWithSideJobs() throws {
        let ran = Counter()
        let pipeline = OrderedPipeline<Int, Int>(
            workers: 3, window: 4, produce: Self.source(500),
            transform: { _, x in
                if x % 7 == 0 { usleep(50) }  // finish out of order
                return x * 2
            })
        defer { pipeline.finish() }
        var out: [Int] = []
        var accepted = 0
        while let r = try pipeline.next() {
            out.append(r)
            if r % 20 == 0, pipeline.runOnWorker({ ran.add() }) { accepted += 1 }
        }
        #expect(out == (0..<500).map { $0 * 2 })
        #expect(accepted > 0)
        pipeline.finish()
        #expect(ran.count == accepted)
        // The workers are gone: a new job is refused (its owner runs it elsewhere).
        #expect(!pipeline.runOnWorker({ ran.add() }))
    }

    /// Jobs queued before a transform fails still run (a writer waits for each of them).
    @Test func sideJobsRunAfterFailure() throws {
        let ran = Counter()
        let gate = DispatchSemaphore(value: 0)
        let pipeline = OrderedPipeline<Int, Int>(
            workers: 2, window: 2, produce: Self.source(100),
            transform: { _, x in
                if x == 3 {
                    gate.wait()  // fail only once the jobs below are queued
                    throw Boom()
                }
                return x
            })
        var accepted = 0
        for _ in 0..<5 where pipeline.runOnWorker({ ran.add() }) { accepted += 1 }
        #expect(accepted == 5)  // nothing has failed yet, so the workers take every job
        gate.signal()
        #expect(throws: Boom.self) { while try pipeline.next() != nil {} }
        pipeline.finish()
        #expect(ran.count == accepted)
    }
}
