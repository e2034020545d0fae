import Foundation

/// GELU variants: `tanh` is GPT-2's `gelu_new`, `exact` uses erf.
public enum GELUApproximation: String, Sendable, Codable, CaseIterable {
    case tanh, exact
}

extension Tensor {
    /// GELU.
    ///
    /// ```
    /// tanh:  y = ½x(1 + tanh u), u = √(2/π)(x + 0.044715x³)
    ///        y' = ½(1 + tanh u) + ½x(1 − tanh²u)·√(2/π)(1 + 3·0.044715x²)
    /// exact: y = ½x(1 + erf(x/√2)),  y' = ½(1 + erf(x/√2)) + x·φ(x)
    /// ```
    public func gelu(_ approximation: GELUApproximation = .tanh) -> Tensor {
        switch approximation {
        case .tanh: return unary(Kernels.geluTanh, { g, x, _ in g * Kernels.geluTanhGrad(x) })
        case .exact: return unary(Kernels.geluExact, { g, x, _ in g * Kernels.geluExactGrad(x) })
        }
    }

    /// SiLU (swish): y = x·σ(x), y' = σ(x)(1 + x(1 − σ(x))).
    public func silu() -> Tensor {
        unary(Kernels.silu, { g, x, _ in g * Kernels.siluGrad(x) })
    }

    /// SwiGLU: silu(gate) ∘ up, fused (one pass forward, one backward).
    ///
    /// ```
    /// dgate = dy·up·silu'(gate),  dup = dy·silu(gate)
    /// ```
    public static func swiglu(gate: Tensor, up: Tensor) throws -> Tensor {
        guard gate.shape == up.shape else {
            throw TensorError.shapeMismatch(op: "swiglu", lhs: gate.shape, rhs: up.shape)
        }
        var out = Tensor(storage: TensorStorage(count: gate.count, zeroed: false), shape: gate.shape)
        let pg = UnsafeSendablePointer(gate.storage.pointer), pu = UnsafeSendablePointer(up.storage.pointer)
        let po = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(gate.count, costPerItem: 4) { r in
            for i in r { po[i] = Kernels.silu(pg[i]) * pu[i] }
        }
        let n = gate.count
        let keep = (gate.storage, up.storage)
        record(&out, [gate, up]) { g, nodes in
            withExtendedLifetime(keep) {}
            let gp = UnsafeSendablePointer(g)
            let gg = nodes[0].map { UnsafeSendablePointer($0.gradBuffer()) }
            let gu = nodes[1].map { UnsafeSendablePointer($0.gradBuffer()) }
            Parallel.forRange(n, costPerItem: 6) { r in
                for i in r {
                    if let gg { gg[i] += gp[i] * pu[i] * Kernels.siluGrad(pg[i]) }
                    if let gu { gu[i] += gp[i] * Kernels.silu(pg[i]) }
                }
            }
        }
        return out
    }
}

extension Kernels {
    static let sqrt2OverPi: Float = 0.797_884_560_802_865_4
    @inline(__always) public static func geluTanh(_ x: Float) -> Float {
        0.5 * x * (1 + Foundation.tanh(sqrt2OverPi * (x + 0.044715 * x * x * x)))
    }
    @inline(__always) public static func geluTanhGrad(_ x: Float) -> Float {
        let t = Foundation.tanh(sqrt2OverPi * (x + 0.044715 * x * x * x))
        return 0.5 * (1 + t) + 0.5 * x * (1 - t * t) * sqrt2OverPi * (1 + 3 * 0.044715 * x * x)
    }
    @inline(__always) public static func geluExact(_ x: Float) -> Float {
        0.5 * x * (1 + Foundation.erf(x * 0.707_106_781_186_547_5))
    }
    @inline(__always) public static func geluExactGrad(_ x: Float) -> Float {
        0.5 * (1 + Foundation.erf(x * 0.707_106_781_186_547_5)) + x * Foundation.exp(-0.5 * x * x) * 0.398_942_280_401_432_7
    }
    @inline(__always) public static func sigmoid(_ x: Float) -> Float { 1 / (1 + Foundation.exp(-x)) }
    @inline(__always) public static func silu(_ x: Float) -> Float { x * sigmoid(x) }
    @inline(__always) public static func siluGrad(_ x: Float) -> Float {
        let s = sigmoid(x)
        return s * (1 + x * (1 - s))
    }
}
