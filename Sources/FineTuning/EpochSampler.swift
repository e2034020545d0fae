import ToolkitSupport

/// Deterministic example order: a fresh seeded permutation every epoch; step s (1-based) takes
/// examples `(s−1)·B ..< s·B` of the endless stream.
public struct EpochSampler: Sendable {
    public let count: Int
    public let seed: UInt64

    public init(count: Int, seed: UInt64) {
        self.count = count
        self.seed = seed
    }

    func permutation(epoch: Int) -> [Int] {
        var rng = SplitMix64(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var p = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, rng.nextInt(below: i + 1)) }
        }
        return p
    }

    /// Example indices of micro-batch `index` (0-based) of `size` examples.
    public func batch(_ index: Int, size: Int) -> [Int] {
        guard count > 0 else { return [] }
        var out: [Int] = []
        var cached: (epoch: Int, perm: [Int])? = nil
        for i in (index * size)..<((index + 1) * size) {
            let epoch = i / count
            if cached?.epoch != epoch { cached = (epoch, permutation(epoch: epoch)) }
            out.append(cached!.perm[i % count])
        }
        return out
    }
}
