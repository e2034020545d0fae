/// A plain host-side Float32 tensor: a row-major value buffer and its shape.
///
/// This is the exchange type of the `Checkpointing` target, which deliberately does not depend
/// on `TensorCore`; model code converts it to and from its own tensors. Names live outside the
/// value (as dictionary keys), so a checkpoint is `[String: HostTensor]`.
public struct HostTensor: Sendable, Equatable {
    /// Dimensions, outermost first. `[]` is a scalar (one value).
    public var shape: [Int]
    /// Row-major values; `values.count == shape.reduce(1, *)`.
    public var values: [Float]

    /// Creates a tensor. `values.count` must equal the product of `shape` (programmer error
    /// otherwise; file input is validated before it reaches here).
    public init(shape: [Int], values: [Float]) {
        precondition(
            HostTensor.elementCount(shape) == values.count,
            "HostTensor: shape \(shape) does not match \(values.count) values")
        self.shape = shape
        self.values = values
    }

    /// Number of elements.
    public var count: Int { values.count }

    /// True when both tensors have the same shape and the same bit pattern in every value
    /// (unlike `==`, distinguishes -0 from +0 and treats identical NaNs as equal).
    public func bitwiseEqual(_ other: HostTensor) -> Bool {
        guard shape == other.shape, values.count == other.values.count else { return false }
        return values.withUnsafeBytes { a in
            other.values.withUnsafeBytes { b in a.elementsEqual(b) }
        }
    }

    /// The product of `shape`, or nil for a negative dimension or on overflow.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var n = 1
        for d in shape {
            guard d >= 0 else { return nil }
            let (p, o) = n.multipliedReportingOverflow(by: d)
            if o { return nil }
            n = p
        }
        return n
    }
}
