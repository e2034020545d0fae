import TensorCore

/// Keys and values of past positions for incremental decoding, sized by KV heads (not query
/// heads): per layer `[B, capacity, kvHeads, headDim]` for keys and for values.
public final class KVCache {
    public let batch: Int
    public let capacity: Int
    public let kvHeads: Int
    public let headDim: Int
    /// Positions already stored (the position offset of the next token).
    public private(set) var length = 0
    var keys: [TensorStorage]
    var values: [TensorStorage]

    public init(layers: Int, batch: Int, capacity: Int, kvHeads: Int, headDim: Int) {
        self.batch = batch
        self.capacity = capacity
        self.kvHeads = kvHeads
        self.headDim = headDim
        let n = batch * capacity * kvHeads * headDim
        keys = (0..<layers).map { _ in TensorStorage(count: n, zeroed: false) }
        values = (0..<layers).map { _ in TensorStorage(count: n, zeroed: false) }
    }

    /// Layers the cache holds.
    public var layers: Int { keys.count }

    /// Bytes held by the cache.
    public var bytes: Int { (keys.count + values.count) * batch * capacity * kvHeads * headDim * 4 }

    /// Appends `k`, `v` `[B, T, kvHeads, D]` for `layer` at positions `length ..< length+T` and
    /// returns the whole cache of that layer as `[B, capacity, kvHeads, D]` tensors (valid rows:
    /// `length + T`).
    func append(layer: Int, k: Tensor, v: Tensor) throws -> (k: Tensor, v: Tensor) {
        let t = k.shape[1]
        guard k.shape == [batch, t, kvHeads, headDim], v.shape == k.shape else {
            throw TensorError.shapeMismatch(op: "KVCache.append", lhs: [batch, t, kvHeads, headDim], rhs: k.shape)
        }
        guard length + t <= capacity else {
            throw TensorError.invalidArgument(op: "KVCache", message: "cache of \(capacity) positions is full (\(length) + \(t))")
        }
        let row = kvHeads * headDim
        for (src, dst) in [(k, keys[layer]), (v, values[layer])] {
            src.withUnsafePointer { s in
                for b in 0..<batch {
                    (dst.pointer + (b * capacity + length) * row).update(from: s + b * t * row, count: t * row)
                }
            }
        }
        let shape = [batch, capacity, kvHeads, headDim]
        return (Tensor(storage: keys[layer], shape: shape), Tensor(storage: values[layer], shape: shape))
    }

    /// The key and value buffers of `layer`, `[B, capacity, kvHeads, headDim]` each (for kernels
    /// that write one position at a time; call `advance(by:)` after every layer has written it).
    public func storage(layer: Int) -> (keys: UnsafeMutablePointer<Float>, values: UnsafeMutablePointer<Float>) {
        (keys[layer].pointer, values[layer].pointer)
    }

    /// Marks `t` more positions as stored (after every layer appended them).
    public func advance(by t: Int) { length += t }
}
