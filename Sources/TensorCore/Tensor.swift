/// A contiguous, row-major Float32 tensor with an optional place on the autodiff tape.
///
/// `Tensor` is a value: ops return new tensors. Storage is shared by reference; in-place
/// mutation (`withUnsafeMutablePointer`) copies first unless the storage is uniquely owned.
public struct Tensor: @unchecked Sendable, CustomStringConvertible {
    public private(set) var storage: TensorStorage
    public let shape: [Int]
    /// The tape node when this tensor requires grad (nil for constants).
    public internal(set) var node: Node?

    public init(storage: TensorStorage, shape: [Int]) {
        precondition(storage.count == Shape.count(shape), "storage count \(storage.count) != shape \(shape)")
        self.storage = storage
        self.shape = shape
    }

    /// A zero tensor.
    public init(zeros shape: [Int]) { self.init(storage: TensorStorage(count: Shape.count(shape)), shape: shape) }

    /// A tensor filled with `value`.
    public init(shape: [Int], repeating value: Float) {
        let s = TensorStorage(count: Shape.count(shape), zeroed: false)
        s.pointer.initialize(repeating: value, count: s.count)
        self.init(storage: s, shape: shape)
    }

    /// A tensor from row-major values; throws when the count does not match the shape.
    public init(shape: [Int], values: [Float]) throws {
        guard shape.allSatisfy({ $0 >= 0 }) else {
            throw TensorError.invalidArgument(op: "Tensor(shape:values:)", message: "negative dimension in \(shape)")
        }
        guard values.count == Shape.count(shape) else {
            throw TensorError.shapeMismatch(op: "Tensor(shape:values:)", lhs: shape, rhs: [values.count])
        }
        self.init(storage: TensorStorage(values), shape: shape)
    }

    /// A 0-d scalar.
    public init(scalar: Float) { self.init(storage: TensorStorage([scalar]), shape: []) }

    public var count: Int { storage.count }
    public var rank: Int { shape.count }
    public var requiresGrad: Bool { node != nil }

    /// Row-major values.
    public var scalars: [Float] { Array(UnsafeBufferPointer(start: storage.pointer, count: count)) }

    /// The single value of a one-element tensor.
    public func item() -> Float {
        precondition(count == 1, "item() needs one element, shape \(shape)")
        return storage.pointer[0]
    }

    /// Read-only access to the values.
    @inlinable public func withUnsafePointer<R>(_ body: (UnsafePointer<Float>) throws -> R) rethrows -> R {
        try body(UnsafePointer(storage.pointer))
    }

    /// Mutable access to the values; copies the storage first if it is shared.
    public mutating func withUnsafeMutablePointer<R>(_ body: (UnsafeMutablePointer<Float>) throws -> R) rethrows -> R {
        if !isKnownUniquelyReferenced(&storage) { storage = storage.copy() }
        return try body(storage.pointer)
    }

    public var description: String {
        let vals = scalars.prefix(8).map { String($0) }.joined(separator: ", ")
        return "Tensor(\(shape), [\(vals)\(count > 8 ? ", …" : "")]\(requiresGrad ? ", grad" : ""))"
    }
}

// MARK: - Initialisers

extension Tensor {
    public static func zeros(_ shape: [Int]) -> Tensor { Tensor(zeros: shape) }
    public static func ones(_ shape: [Int]) -> Tensor { Tensor(shape: shape, repeating: 1) }

    /// Normal(mean, std²) from a seeded generator.
    public static func randn(_ shape: [Int], mean: Float = 0, std: Float = 1, rng: inout SplitMix64) -> Tensor {
        let t = Tensor(zeros: shape)
        let p = t.storage.pointer
        for i in 0..<t.count { p[i] = mean + std * Float(rng.nextNormal()) }
        return t
    }

    /// Uniform in [low, high) from a seeded generator.
    public static func uniform(_ shape: [Int], low: Float, high: Float, rng: inout SplitMix64) -> Tensor {
        let t = Tensor(zeros: shape)
        let p = t.storage.pointer
        for i in 0..<t.count { p[i] = low + (high - low) * Float(rng.nextUniform()) }
        return t
    }
}
