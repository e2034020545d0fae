import TensorCore

/// A trainable tensor with identity. Tied weights are the same `Parameter` reached twice.
///
/// `value` is a leaf on the autodiff tape while the parameter is trainable; its gradient
/// accumulates across backward calls until `zeroGrad()`. Optimizers update `value` in place
/// through `withUnsafeMutablePointer`/`storage` (the storage is owned by the parameter).
public final class Parameter: @unchecked Sendable {
    public private(set) var value: Tensor

    /// Whether backward computes a gradient for this parameter. Frozen parameters are constants.
    public var isTrainable: Bool {
        didSet { if isTrainable != oldValue { value = isTrainable ? value.requiringGrad() : value.detached() } }
    }

    public init(_ value: Tensor, trainable: Bool = true) {
        self.isTrainable = trainable
        self.value = trainable ? value.requiringGrad() : value.detached()
    }

    public var shape: [Int] { value.shape }
    public var count: Int { value.count }

    /// The accumulated gradient, or nil when none has been computed since the last zeroing.
    public var grad: Tensor? { value.grad }

    /// Drops the accumulated gradient.
    public func zeroGrad() { value.zeroGrad() }

    /// Replaces the values (same shape), keeping trainability; the old gradient is dropped.
    public func assign(_ newValue: Tensor) throws {
        guard newValue.shape == value.shape else {
            throw TensorError.shapeMismatch(op: "Parameter.assign", lhs: value.shape, rhs: newValue.shape)
        }
        let copy = TensorStorage(count: newValue.count, zeroed: false)
        newValue.withUnsafePointer { copy.pointer.update(from: $0, count: newValue.count) }
        let t = Tensor(storage: copy, shape: value.shape)
        value = isTrainable ? t.requiringGrad() : t
    }

    /// Raw pointer to the values for in-place updates (optimizer steps).
    public var values: UnsafeMutablePointer<Float> { value.storage.pointer }

    /// Raw pointer to the gradient, nil when none.
    public var gradValues: UnsafeMutablePointer<Float>? { value.node?.grad?.pointer }
}
