/// Owns one 64-byte-aligned buffer of Float32. Tensors share storage by reference; the pointer
/// and count never change, so kernels can read them without exclusivity checks.
public final class TensorStorage: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public let count: Int

    /// Allocates `count` floats, zero-filled when `zeroed`.
    public init(count: Int, zeroed: Bool = true) {
        self.count = count
        let (raw, fresh) = BufferPool.take(count: max(count, 1))
        pointer = raw.bindMemory(to: Float.self, capacity: max(count, 1))
        MemoryStats.allocated(max(count, 1) * 4)
        if zeroed && !fresh {
            if count >= 1 << 18 {
                // Gradient buffers of activations and logits (MBs): zeroed on all cores.
                let p = UnsafeSendablePointer(pointer)
                Parallel.forRange(count) { r in (p.pointer + r.lowerBound).initialize(repeating: 0, count: r.count) }
            } else {
                pointer.initialize(repeating: 0, count: count)
            }
        }
    }

    /// Copies `values` into new storage.
    public convenience init(_ values: [Float]) {
        self.init(count: values.count, zeroed: false)
        values.withUnsafeBufferPointer { src in
            if let base = src.baseAddress { pointer.update(from: base, count: values.count) }
        }
    }

    /// A copy of this storage.
    public func copy() -> TensorStorage {
        let s = TensorStorage(count: count, zeroed: false)
        s.pointer.update(from: pointer, count: count)
        return s
    }

    deinit {
        MemoryStats.freed(max(count, 1) * 4)
        BufferPool.give(UnsafeMutableRawPointer(pointer), count: max(count, 1))
    }
}
