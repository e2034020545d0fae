import Foundation

/// A binary elementwise op with its two partial derivatives (for dOut = g).
@usableFromInline protocol BinaryOpKind: SendableMetatype {
    static var name: String { get }
    static func f(_ a: Float, _ b: Float) -> Float
    static func da(_ g: Float, _ a: Float, _ b: Float) -> Float
    static func db(_ g: Float, _ a: Float, _ b: Float) -> Float
    /// Whether ∂out/∂a is 1, so a's gradient is dOut itself (same shapes).
    static var aGradientIsDOut: Bool { get }
    /// ∂out/∂b when it is a constant (1 for a sum, −1 for a difference), so b's gradient is dOut
    /// scaled (same shapes); nil otherwise.
    static var bGradientFactor: Float? { get }
}

extension BinaryOpKind {
    @usableFromInline static var aGradientIsDOut: Bool { false }
    @usableFromInline static var bGradientFactor: Float? { nil }
}

@usableFromInline enum AddOp: BinaryOpKind {
    @usableFromInline static let aGradientIsDOut = true
    @usableFromInline static let bGradientFactor: Float? = 1
    @usableFromInline static let name = "add"
    @inline(__always) @usableFromInline static func f(_ a: Float, _ b: Float) -> Float { a + b }
    @inline(__always) @usableFromInline static func da(_ g: Float, _ a: Float, _ b: Float) -> Float { g }
    @inline(__always) @usableFromInline static func db(_ g: Float, _ a: Float, _ b: Float) -> Float { g }
}

@usableFromInline enum SubOp: BinaryOpKind {
    @usableFromInline static let aGradientIsDOut = true
    @usableFromInline static let bGradientFactor: Float? = -1
    @usableFromInline static let name = "subtract"
    @inline(__always) @usableFromInline static func f(_ a: Float, _ b: Float) -> Float { a - b }
    @inline(__always) @usableFromInline static func da(_ g: Float, _ a: Float, _ b: Float) -> Float { g }
    @inline(__always) @usableFromInline static func db(_ g: Float, _ a: Float, _ b: Float) -> Float { -g }
}

@usableFromInline enum MulOp: BinaryOpKind {
    @usableFromInline static let name = "multiply"
    @inline(__always) @usableFromInline static func f(_ a: Float, _ b: Float) -> Float { a * b }
    @inline(__always) @usableFromInline static func da(_ g: Float, _ a: Float, _ b: Float) -> Float { g * b }
    @inline(__always) @usableFromInline static func db(_ g: Float, _ a: Float, _ b: Float) -> Float { g * a }
}

@usableFromInline enum DivOp: BinaryOpKind {
    @usableFromInline static let name = "divide"
    @inline(__always) @usableFromInline static func f(_ a: Float, _ b: Float) -> Float { a / b }
    @inline(__always) @usableFromInline static func da(_ g: Float, _ a: Float, _ b: Float) -> Float { g / b }
    @inline(__always) @usableFromInline static func db(_ g: Float, _ a: Float, _ b: Float) -> Float { -g * a / (b * b) }
}

extension Tensor {
    /// Broadcasting binary op: forward, then a backward that reduces over broadcast axes.
    static func binary<Op: BinaryOpKind>(_ a: Tensor, _ b: Tensor, _: Op.Type) throws -> Tensor {
        let outShape: [Int]
        if a.shape == b.shape {
            outShape = a.shape
        } else {
            guard let s = Shape.broadcast(a.shape, b.shape) else {
                throw TensorError.shapeMismatch(op: Op.name, lhs: a.shape, rhs: b.shape)
            }
            outShape = s
        }
        var out = Tensor(storage: TensorStorage(count: Shape.count(outShape), zeroed: false), shape: outShape)
        let pa = UnsafeSendablePointer(a.storage.pointer), pb = UnsafeSendablePointer(b.storage.pointer)
        let po = UnsafeSendablePointer(out.storage.pointer)
        let sameShape = a.shape == b.shape
        if sameShape {
            Parallel.forRange(out.count) { r in
                for i in r { po[i] = Op.f(pa[i], pb[i]) }
            }
        } else if b.count == 1 {
            let bv = pb[0]
            Parallel.forRange(out.count) { r in for i in r { po[i] = Op.f(pa[i], bv) } }
        } else {
            BroadcastWalker(out: outShape, a: a.shape, b: b.shape).forEach { o, ia, ib in
                po[o] = Op.f(pa[ia], pb[ib])
            }
        }
        let aShape = a.shape, bShape = b.shape
        let keep = (a.storage, b.storage)
        recordPassingGradient(&out, [a, b]) { dOut, nodes in
            withExtendedLifetime(keep) {}
            let g = dOut.pointer, gp = UnsafeSendablePointer(g)
            if sameShape {
                // A new gradient buffer is written, an existing one added into (no zero-filling);
                // b first, because a may take dOut's buffer itself.
                if let nb = nodes[1] {
                    // A constant ∂out/∂b: one vectorised pass (the closure below is a call per element).
                    if let factor = Op.bGradientFactor { nb.writeOrAdd(g, times: factor) } else { nb.writeOrAddGradient { i in Op.db(gp[i], pa[i], pb[i]) } }
                }
                if let na = nodes[0] {
                    if Op.aGradientIsDOut { na.accumulate(taking: dOut) } else { na.writeOrAddGradient { i in Op.da(gp[i], pa[i], pb[i]) } }
                }
                return
            }
            let walker = BroadcastWalker(out: outShape, a: aShape, b: bShape)
            if let na = nodes[0] {
                let ga = na.gradBuffer()
                walker.forEach { o, ia, ib in ga[ia] += Op.da(gp[o], pa[ia], pb[ib]) }
            }
            if let nb = nodes[1] {
                let gb = nb.gradBuffer()
                walker.forEach { o, ia, ib in gb[ib] += Op.db(gp[o], pa[ia], pb[ib]) }
            }
        }
        return out
    }

    public static func + (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, AddOp.self) }
    public static func - (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, SubOp.self) }
    public static func * (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, MulOp.self) }
    public static func / (a: Tensor, b: Tensor) throws -> Tensor { try binary(a, b, DivOp.self) }
}

// MARK: - Unary ops

extension Tensor {
    /// Elementwise map with derivative `df(g, x, y)` (x = input, y = output).
    @inline(__always)
    func unary(
        _ f: @escaping @Sendable (Float) -> Float,
        _ df: @escaping @Sendable (_ g: Float, _ x: Float, _ y: Float) -> Float
    ) -> Tensor {
        var out = Tensor(storage: TensorStorage(count: count, zeroed: false), shape: shape)
        let px = UnsafeSendablePointer(storage.pointer), po = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(count, costPerItem: 4) { r in for i in r { po[i] = f(px[i]) } }
        let input = self
        let output = out.storage
        Tensor.record(&out, [input]) { g, nodes in
            let gp = UnsafeSendablePointer(g), py = UnsafeSendablePointer(output.pointer)
            _ = input
            nodes[0]!.writeOrAddGradient(costPerItem: 4) { i in df(gp[i], px[i], py[i]) }
        }
        return out
    }

    public static prefix func - (x: Tensor) -> Tensor { x.unary({ -$0 }, { g, _, _ in -g }) }
    public static func + (x: Tensor, s: Float) -> Tensor { x.unary({ $0 + s }, { g, _, _ in g }) }
    public static func - (x: Tensor, s: Float) -> Tensor { x.unary({ $0 - s }, { g, _, _ in g }) }
    public static func * (x: Tensor, s: Float) -> Tensor { x.unary({ $0 * s }, { g, _, _ in g * s }) }
    public static func / (x: Tensor, s: Float) -> Tensor { x * (1 / s) }
    public static func * (s: Float, x: Tensor) -> Tensor { x * s }
    public static func + (s: Float, x: Tensor) -> Tensor { x + s }

    public func exp() -> Tensor { unary({ Foundation.exp($0) }, { g, _, y in g * y }) }
    public func log() -> Tensor { unary({ Foundation.log($0) }, { g, x, _ in g / x }) }
    public func sqrt() -> Tensor { unary({ $0.squareRoot() }, { g, _, y in g * 0.5 / y }) }
    public func square() -> Tensor { unary({ $0 * $0 }, { g, x, _ in 2 * g * x }) }
    public func tanh() -> Tensor { unary({ Foundation.tanh($0) }, { g, _, y in g * (1 - y * y) }) }
    public func sigmoid() -> Tensor { unary({ 1 / (1 + Foundation.exp(-$0)) }, { g, _, y in g * y * (1 - y) }) }
    /// Each element limited to `[lo, hi]` (`torch.clamp`: the gradient passes where lo ≤ x ≤ hi).
    public func clamped(min lo: Float = -.infinity, max hi: Float = .infinity) -> Tensor {
        unary({ Swift.min(Swift.max($0, lo), hi) }, { g, x, _ in x >= lo && x <= hi ? g : 0 })
    }
    public func relu() -> Tensor { unary({ Swift.max($0, 0) }, { g, x, _ in x > 0 ? g : 0 }) }
    /// x^p for a constant exponent.
    public func pow(_ p: Float) -> Tensor {
        unary({ Foundation.pow($0, p) }, { g, x, _ in g * p * Foundation.pow(x, p - 1) })
    }
}
