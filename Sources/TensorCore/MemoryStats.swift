import Synchronization

/// Bytes held by tensor storage, current and peak (for `toolkit bench` memory reports).
public enum MemoryStats {
    static let current = Atomic<Int>(0)
    static let peak = Atomic<Int>(0)

    @inline(__always) static func allocated(_ bytes: Int) {
        let now = current.add(bytes, ordering: .relaxed).newValue
        var p = peak.load(ordering: .relaxed)
        while now > p {
            let (exchanged, original) = peak.compareExchange(expected: p, desired: now, ordering: .relaxed)
            if exchanged { break }
            p = original
        }
    }

    @inline(__always) static func freed(_ bytes: Int) { current.subtract(bytes, ordering: .relaxed) }

    /// Bytes of tensor storage alive now.
    public static var currentBytes: Int { current.load(ordering: .relaxed) }
    /// Highest `currentBytes` since the last `resetPeak()`.
    public static var peakBytes: Int { peak.load(ordering: .relaxed) }
    /// Sets the peak to the current value.
    public static func resetPeak() { peak.store(current.load(ordering: .relaxed), ordering: .relaxed) }
}
