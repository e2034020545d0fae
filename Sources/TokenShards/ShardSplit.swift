import Foundation
import ToolkitSupport

/// The train or validation tokens of a `ShardDataset`, cut into (T+1)-token windows.
///
/// Windows never cross a shard boundary: the part of shard `s` inside the split, of length `L`,
/// holds `(L - 1) / T` windows starting every `T` tokens (consecutive windows share one token, as
/// llm.c's `B*T+1` reads do). The windows of one epoch are visited in an order that depends only on
/// (seed, epoch); window number `step * B + b` fills row `b` of batch `step`. So a batch is a pure
/// function of (seed, step, B, T, order) and a resumed run sees exactly the batches it would have
/// seen; the only loader state to save is the step.
public final class ShardSplit: @unchecked Sendable {
    public let split: DataSplit
    /// The shard directory.
    public let directory: String
    private let cache: ShardCache
    private let prefetchEnabled: Bool
    /// Global token positions of this split.
    public let range: Range<Int>

    struct Segment {
        var shard: Int
        var start: Int  // local offset of the first token in the shard
        var length: Int
    }

    private let segments: [Segment]
    private let lock = NSLock()
    private var plan: Plan?
    private var windowPermutations: [Int: [Int32]] = [:]

    /// Windows of every segment for one T, plus one epoch's segment order.
    private struct Plan {
        var seqLen: Int
        var windows: [Int]  // per segment
        var total: Int
        var epoch: Int
        var order: BatchOrder
        var seed: UInt64
        var segmentOrder: [Int]  // indices into segments with windows > 0
        var prefix: [Int]  // prefix[i] = windows before segmentOrder[i]
    }

    /// Built once per split by `ShardDataset` (which keeps it, so plans and permutations are
    /// reused by every `split(_:)` call); holds the shard cache, not the dataset.
    init(
        manifest m: ShardManifest, directory: String, cache: ShardCache, prefetch: Bool,
        split: DataSplit
    ) {
        self.split = split
        self.directory = directory
        self.cache = cache
        prefetchEnabled = prefetch
        let range = split == .train ? 0..<m.split.valStart : m.split.valStart..<m.totalTokens
        self.range = range
        segments = m.shards.enumerated().compactMap { i, s in
            let lo = max(s.firstToken, range.lowerBound)
            let hi = min(s.firstToken + s.tokens, range.upperBound)
            return hi > lo ? Segment(shard: i, start: lo - s.firstToken, length: hi - lo) : nil
        }
    }

    /// Tokens in this split.
    public var tokenCount: Int { range.count }

    /// Number of (T+1)-token windows per epoch for `seqLen` T.
    public func windowCount(seqLen: Int) -> Int {
        guard seqLen > 0 else { return 0 }
        return segments.reduce(0) { $0 + Self.windows(in: $1.length, seqLen: seqLen) }
    }

    private static func windows(in length: Int, seqLen: Int) -> Int {
        length > seqLen ? (length - 1) / seqLen : 0
    }

    /// Batch `step`: `batchSize` rows of `seqLen + 1` tokens, row-major, as Int32.
    ///
    /// Inputs are `row[0..<T]`, targets `row[1...T]`. Deterministic in (seed, step, batchSize,
    /// seqLen, order); wraps into a new epoch (reshuffled for `.random`) when windows run out.
    public func batch(
        step: Int, batchSize: Int, seqLen: Int, seed: UInt64, order: BatchOrder
    ) throws -> [Int32] {
        try checkShape(batchSize: batchSize, seqLen: seqLen, step: step)
        let total = windowCount(seqLen: seqLen)
        var out: [Int32] = []
        out.reserveCapacity(batchSize * (seqLen + 1))
        var last: (epoch: Int, position: Int) = (0, 0)
        for row in 0..<batchSize {
            let g = step * batchSize + row
            let (epoch, index) = (g / total, g % total)
            let (segment, window, position) = locate(
                index, epoch: epoch, seqLen: seqLen, seed: seed, order: order)
            try appendWindow(segment, window, seqLen: seqLen, to: &out)
            last = (epoch, position)
        }
        prefetchAfter(
            epoch: last.epoch, position: last.position, seqLen: seqLen, seed: seed,
            order: order)
        return out
    }

    /// Number of full validation batches (sequential windows, no wrap-around).
    public func evaluationBatchCount(batchSize: Int, seqLen: Int) -> Int {
        guard batchSize > 0 else { return 0 }
        return windowCount(seqLen: seqLen) / batchSize
    }

    /// Fixed held-out batches: the first `maxBatches` full batches of sequential windows.
    /// The same for every seed and step.
    public func evaluationBatches(batchSize: Int, seqLen: Int, maxBatches: Int? = nil) throws
        -> EvaluationBatches
    {
        try checkShape(batchSize: batchSize, seqLen: seqLen, step: 0)
        var count = evaluationBatchCount(batchSize: batchSize, seqLen: seqLen)
        if let maxBatches { count = min(count, maxBatches) }
        guard count > 0 else {
            throw ToolkitError(
                "the \(split.rawValue) split has \(tokenCount) tokens: not enough for one batch "
                    + "of \(batchSize) × \(seqLen + 1) tokens (shard it with a larger "
                    + "--val-fraction, or use a smaller batch or context)")
        }
        return EvaluationBatches(split: self, batchSize: batchSize, seqLen: seqLen, count: count)
    }

    private func checkShape(batchSize: Int, seqLen: Int, step: Int) throws {
        guard batchSize > 0, seqLen > 0, step >= 0 else {
            throw ToolkitError("batch size and sequence length must be positive, step ≥ 0")
        }
        guard windowCount(seqLen: seqLen) > 0 else {
            throw ToolkitError(
                "the \(split.rawValue) split of \(directory) has no window of "
                    + "\(seqLen + 1) tokens inside one shard (\(tokenCount) tokens)")
        }
    }

    private func appendWindow(_ segment: Segment, _ window: Int, seqLen: Int, to out: inout [Int32])
        throws
    {
        let tokens = try cache.tokens(segment.shard)
        let start = segment.start + window * seqLen
        for t in tokens[start...(start + seqLen)] { out.append(Int32(bitPattern: t)) }
    }

    /// Segment, window inside it, and position of that segment in the epoch order.
    private func locate(_ index: Int, epoch: Int, seqLen: Int, seed: UInt64, order: BatchOrder)
        -> (Segment, Int, Int)
    {
        lock.lock()
        defer { lock.unlock() }
        let p = plan(epoch: epoch, seqLen: seqLen, seed: seed, order: order)
        var lo = 0
        var hi = p.segmentOrder.count - 1
        while lo < hi {  // last position whose prefix ≤ index
            let mid = (lo + hi + 1) / 2
            if p.prefix[mid] <= index { lo = mid } else { hi = mid - 1 }
        }
        let s = p.segmentOrder[lo]
        var window = index - p.prefix[lo]
        if order == .random {
            if windowPermutations[s] == nil {
                windowPermutations[s] = permutation(
                    p.windows[s], seed: mix(seed, UInt64(epoch), UInt64(s) &+ 1))
            }
            window = Int(windowPermutations[s]![window])
        }
        return (segments[s], window, lo)
    }

    /// Under the lock: the plan for (epoch, seqLen, seed, order), rebuilt when any changes.
    private func plan(epoch: Int, seqLen: Int, seed: UInt64, order: BatchOrder) -> Plan {
        if let p = plan, p.seqLen == seqLen, p.seed == seed, p.order == order,
            p.epoch == epoch || order == .sequential
        {
            return p
        }
        windowPermutations = [:]
        let windows = segments.map { Self.windows(in: $0.length, seqLen: seqLen) }
        var segmentOrder = windows.indices.filter { windows[$0] > 0 }
        if order == .random {
            let perm = permutation(segmentOrder.count, seed: mix(seed, UInt64(epoch), 0))
            segmentOrder = perm.map { segmentOrder[Int($0)] }
        }
        var prefix: [Int] = []
        var sum = 0
        for s in segmentOrder {
            prefix.append(sum)
            sum += windows[s]
        }
        let p = Plan(
            seqLen: seqLen, windows: windows, total: sum, epoch: epoch, order: order, seed: seed,
            segmentOrder: segmentOrder, prefix: prefix)
        plan = p
        return p
    }

    /// Starts decoding the shard of the segment after `position` in the epoch order.
    private func prefetchAfter(
        epoch: Int, position: Int, seqLen: Int, seed: UInt64, order: BatchOrder
    ) {
        lock.lock()
        let p = plan(epoch: epoch, seqLen: seqLen, seed: seed, order: order)
        let next = position + 1 < p.segmentOrder.count ? p.segmentOrder[position + 1] : nil
        lock.unlock()
        // At the end of an epoch the next shard depends on the next epoch's order; computing it
        // would discard this epoch's cached permutations, so wrap-around is not prefetched.
        if let next, prefetchEnabled { cache.prefetch(segments[next].shard) }
    }

    fileprivate func evaluationBatch(_ index: Int, batchSize: Int, seqLen: Int) throws -> [Int32] {
        try batch(step: index, batchSize: batchSize, seqLen: seqLen, seed: 0, order: .sequential)
    }
}

/// Fixed validation batches of a split; iterate with `next()`.
public struct EvaluationBatches: Sendable {
    public let split: ShardSplit
    public let batchSize: Int
    public let seqLen: Int
    /// Number of batches.
    public let count: Int
    private var index = 0

    init(split: ShardSplit, batchSize: Int, seqLen: Int, count: Int) {
        self.split = split
        self.batchSize = batchSize
        self.seqLen = seqLen
        self.count = count
    }

    /// The next batch of `batchSize * (seqLen + 1)` tokens, or nil after the last.
    public mutating func next() throws -> [Int32]? {
        guard index < count else { return nil }
        defer { index += 1 }
        return try split.evaluationBatch(index, batchSize: batchSize, seqLen: seqLen)
    }
}

/// A seed derived from several values.
func mix(_ values: UInt64...) -> UInt64 {
    var g = SplitMix64(seed: 0x5EED)
    var h: UInt64 = 0
    for v in values {
        g.state ^= v
        h = g.next()
    }
    return h
}

/// Fisher–Yates permutation of 0..<n.
func permutation(_ n: Int, seed: UInt64) -> [Int32] {
    var p = (0..<n).map { Int32($0) }
    var g = SplitMix64(seed: seed)
    var i = n - 1
    while i > 0 {
        let j = Int(g.next() % UInt64(i + 1))
        p.swapAt(i, j)
        i -= 1
    }
    return p
}
