import TensorCore

/// The position-wise block after attention.
public protocol FeedForward: Module {
    /// x `[..., C]` → `[..., C]`.
    func callAsFunction(_ x: Tensor) throws -> Tensor
}

/// GELU MLP: `fc_out(gelu(fc_in(x)))` (GPT-2's `c_fc`/`c_proj`). Recipe kind `gelu`:
/// `intermediate_size` (4·hidden), `approximation` (`tanh` | `exact`), `bias` (true).
public final class GELUMLP: FeedForward {
    public let fcIn, fcOut: Linear
    public let approximation: GELUApproximation

    public init(hiddenSize: Int, intermediateSize: Int, approximation: GELUApproximation, bias: Bool, context: ComponentContext) {
        fcIn = Linear(hiddenSize, intermediateSize, bias: bias, context: context)
        fcOut = Linear(intermediateSize, hiddenSize, bias: bias, context: context, residual: true)
        self.approximation = approximation
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any FeedForward {
        let inner = try o.int("intermediate_size", default: 4 * c.hiddenSize)
        guard inner > 0 else { throw o.error("intermediate_size", "must be positive") }
        let approx = try o.choice("approximation", GELUApproximation.allCases.map(\.rawValue), default: "tanh")
        return GELUMLP(hiddenSize: c.hiddenSize, intermediateSize: inner, approximation: GELUApproximation(rawValue: approx)!,
                       bias: try o.bool("bias", default: true), context: c)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try fcOut(fcIn(x).gelu(approximation)) }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("fc_in", fcIn)
        v.child("fc_out", fcOut)
    }
}

/// SwiGLU: `down_proj(silu(gate_proj(x)) ∘ up_proj(x))` (Llama/Qwen). Recipe kind `swiglu`:
/// `intermediate_size` (required), `bias` (false).
public final class SwiGLUMLP: FeedForward {
    public let gateProj, upProj, downProj: Linear

    public init(hiddenSize: Int, intermediateSize: Int, bias: Bool, context: ComponentContext) {
        gateProj = Linear(hiddenSize, intermediateSize, bias: bias, context: context)
        upProj = Linear(hiddenSize, intermediateSize, bias: bias, context: context)
        downProj = Linear(intermediateSize, hiddenSize, bias: bias, context: context, residual: true)
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any FeedForward {
        SwiGLUMLP(hiddenSize: c.hiddenSize, intermediateSize: try o.requiredInt("intermediate_size"),
                  bias: try o.bool("bias", default: false), context: c)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        try downProj(Tensor.swiglu(gate: gateProj(x), up: upProj(x)))
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("gate_proj", gateProj)
        v.child("up_proj", upProj)
        v.child("down_proj", downProj)
    }
}
