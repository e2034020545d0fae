@preconcurrency import CKernels
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
        case .tanh: return unaryC(tk_gelu_tanh_forward, tk_gelu_tanh_backward)
        case .exact: return unary(Kernels.geluExact, { g, x, _ in g * Kernels.geluExactGrad(x) })
        }
    }

    /// SiLU (swish): y = x·σ(x), y' = σ(x)(1 + x(1 − σ(x))).
    public func silu() -> Tensor { unaryC(tk_silu_forward, tk_silu_backward) }

    /// An elementwise op computed by a vectorised C kernel pair (forward writes y; backward writes
    /// dy·f'(x) into a new dx buffer or adds it into an existing one), split across workers.
    func unaryC(
        _ forward: @escaping @Sendable (UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int, Int) -> Void,
        _ backward: @escaping @Sendable (UnsafePointer<Float>?, UnsafePointer<Float>?, UnsafeMutablePointer<Float>?, Int32, Int, Int) -> Void
    ) -> Tensor {
        var out = Tensor(storage: TensorStorage(count: count, zeroed: false), shape: shape)
        let px = UnsafeSendablePointer(storage.pointer), po = UnsafeSendablePointer(out.storage.pointer)
        Parallel.forRange(count, costPerItem: 16) { r in forward(px.pointer, po.pointer, r.lowerBound, r.upperBound) }
        let keep = storage
        let n = count
        Tensor.record(&out, [self]) { g, nodes in
            withExtendedLifetime(keep) {}
            let (buffer, fresh) = nodes[0]!.gradBufferForOverwrite()
            let gx = UnsafeSendablePointer(buffer), gp = UnsafeSendablePointer(g), accumulate: Int32 = fresh ? 0 : 1
            Parallel.forRange(n, costPerItem: 16) { r in backward(px.pointer, gp.pointer, gx.pointer, accumulate, r.lowerBound, r.upperBound) }
        }
        return out
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
        Parallel.forRange(gate.count, costPerItem: 16) { r in
            tk_swiglu_forward(pg.pointer, pu.pointer, po.pointer, r.lowerBound, r.upperBound)
        }
        let n = gate.count
        let keep = (gate.storage, up.storage)
        record(&out, [gate, up]) { g, nodes in
            withExtendedLifetime(keep) {}
            let gp = UnsafeSendablePointer(g)
            // New buffers are written, existing ones added into; one call when both are the same kind.
            let gg = nodes[0].map { $0.gradBufferForOverwrite() }, gu = nodes[1].map { $0.gradBufferForOverwrite() }
            func run(_ dg: (pointer: UnsafeMutablePointer<Float>, fresh: Bool)?, _ du: (pointer: UnsafeMutablePointer<Float>, fresh: Bool)?) {
                guard dg != nil || du != nil else { return }
                let a = dg.map { UnsafeSendablePointer($0.pointer) }, b = du.map { UnsafeSendablePointer($0.pointer) }
                let accumulate: Int32 = (dg ?? du)!.fresh ? 0 : 1
                Parallel.forRange(n, costPerItem: 16) { r in
                    tk_swiglu_backward(pg.pointer, pu.pointer, gp.pointer, a?.pointer, b?.pointer, accumulate, r.lowerBound, r.upperBound)
                }
            }
            if let gg, let gu, gg.fresh != gu.fresh { run(gg, nil); run(nil, gu) } else { run(gg, gu) }
        }
        return out
    }
}

extension Kernels {
    @inline(__always) public static func geluExact(_ x: Float) -> Float {
        0.5 * x * (1 + Foundation.erf(x * 0.707_106_781_186_547_5))
    }
    @inline(__always) public static func geluExactGrad(_ x: Float) -> Float {
        0.5 * (1 + Foundation.erf(x * 0.707_106_781_186_547_5)) + x * Foundation.exp(-0.5 * x * x) * 0.398_942_280_401_432_7
    }
}
