import Foundation

/// Decoded shards kept in memory (least recently used evicted), with background prefetch.
///
/// `tokens(_:)` returns a cached shard, waits for a prefetch in flight, or decodes on the calling
/// thread. A prefetch that fails keeps its error, which the next `tokens(_:)` for that shard throws.
final class ShardCache: @unchecked Sendable {
    private enum Entry {
        case loading
        case ready([UInt32])
        case failed(any Error)
    }

    private let load: @Sendable (Int) throws -> [UInt32]
    private let capacity: Int
    private let condition = NSCondition()
    private var entries: [Int: Entry] = [:]
    private var recent: [Int] = []  // most recent last
    /// Shards decoded by the background thread (for tests and statistics).
    private(set) var prefetchedLoads = 0
    /// Shards the caller had to decode itself.
    private(set) var directLoads = 0

    init(capacity: Int, load: @escaping @Sendable (Int) throws -> [UInt32]) {
        self.capacity = max(capacity, 2)
        self.load = load
    }

    func tokens(_ index: Int) throws -> [UInt32] {
        condition.lock()
        defer { condition.unlock() }
        while true {
            switch entries[index] {
            case .ready(let tokens)?:
                touch(index)
                return tokens
            case .loading?:
                condition.wait()
            case .failed(let error)?:
                entries[index] = nil
                throw error
            case nil:
                entries[index] = .loading
                directLoads += 1
                condition.unlock()
                let result = Result { try load(index) }
                condition.lock()
                store(index, result)
            }
        }
    }

    /// Starts decoding `index` on a background thread unless it is cached or loading.
    func prefetch(_ index: Int) {
        condition.lock()
        defer { condition.unlock() }
        guard entries[index] == nil else { return }
        entries[index] = .loading
        prefetchedLoads += 1
        let load = self.load
        Thread.detachNewThread { [self] in
            let result = Result { try load(index) }
            condition.lock()
            store(index, result)
            condition.unlock()
        }
    }

    /// Under the lock: records a finished load, evicts old shards, wakes waiters.
    private func store(_ index: Int, _ result: Result<[UInt32], any Error>) {
        switch result {
        case .success(let tokens): entries[index] = .ready(tokens)
        case .failure(let error): entries[index] = .failed(error)
        }
        touch(index)
        while recent.count > capacity {
            let victim = recent.removeFirst()
            if case .ready? = entries[victim] { entries[victim] = nil }
        }
        condition.broadcast()
    }

    private func touch(_ index: Int) {
        recent.removeAll { $0 == index }
        recent.append(index)
    }

    /// Waits until no load is in flight (tests).
    func waitIdle() {
        condition.lock()
        defer { condition.unlock() }
        while entries.values.contains(where: { if case .loading = $0 { true } else { false } }) {
            condition.wait()
        }
    }
}
