import Dispatch
import Foundation

/// A raw pointer that may cross into `concurrentPerform` closures.
///
/// Invariant: concurrent users write disjoint ranges (or only read).
public struct UnsafeSendablePointer<T>: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<T>
    @inlinable public init(_ p: UnsafeMutablePointer<T>) { pointer = p }
    @inlinable public subscript(i: Int) -> T {
        get { pointer[i] }
        nonmutating set { pointer[i] = newValue }
    }
}

/// Parallel loops over row ranges. `BLAS.gemm` splits large products with the same Dispatch pool.
public enum Parallel {
    /// Worker count (the active processor count, overridable once at start-up).
    nonisolated(unsafe) public static var workers =
        Int(ProcessInfo.processInfo.environment["TOOLKIT_PARALLEL_WORKERS"] ?? "") ?? ProcessInfo.processInfo.activeProcessorCount

    /// Work (count × costPerItem) below which a loop runs serially: waking workers costs more than
    /// it saves below this (300k measured best of 8M / 1M / 500k / 300k / 100k on 2 cores once
    /// OpenBLAS's spinning threads were gone; see docs/architecture-notes.md).
    nonisolated(unsafe) public static var minimumParallelWork =
        Int(ProcessInfo.processInfo.environment["TOOLKIT_PARALLEL_MIN_WORK"] ?? "") ?? 300_000

    /// Runs `body` over `0..<count` split into contiguous chunks. Falls back to a serial loop when
    /// `count * costPerItem` is below `minimumParallelWork` or there is one worker.
    @inlinable
    public static func forRange(
        _ count: Int, costPerItem: Int = 1, _ body: @Sendable (Range<Int>) -> Void
    ) {
        guard count > 0 else { return }
        let total = count &* max(costPerItem, 1)
        let w = workers
        if w <= 1 || total < minimumParallelWork || count < 2 {
            body(0..<count)
            return
        }
        // ~4 chunks per worker balance uneven rows without much overhead.
        let chunks = min(count, w * 4)
        let size = (count + chunks - 1) / chunks
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = c * size
            let hi = min(count, lo + size)
            if lo < hi { body(lo..<hi) }
        }
    }
}
