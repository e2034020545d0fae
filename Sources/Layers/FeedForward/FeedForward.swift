import CKernels
import Foundation
import TensorCore

/// The position-wise block after attention.
public protocol FeedForward: Component {
    /// x `[..., C]` → `[..., C]`.
    func callAsFunction(_ x: Tensor) throws -> Tensor
    /// The block for one token in the fast decoder, or `DecodeUnsupported`.
    func decodeStep(_ w: DecodeWeights) throws -> DecodeFeedForward
    /// What a routed block's router did in the last forward pass (nil for dense blocks): the
    /// model adds the auxiliary losses from it.
    var lastRouting: RoutingRecord? { get }
}

extension FeedForward {
    public var lastRouting: RoutingRecord? { nil }
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
        try ModelLimits.check(o, "intermediate_size", inner, max: ModelLimits.maxIntermediate)
        let approx = try o.choice("approximation", GELUApproximation.allCases.map(\.rawValue), default: "tanh")
        return GELUMLP(hiddenSize: c.hiddenSize, intermediateSize: inner, approximation: GELUApproximation(rawValue: approx)!,
                       bias: try o.bool("bias", default: true), context: c)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor { try fcOut(fcIn(x).gelu(approximation)) }

    public var options: [String: ConfigValue] {
        ["kind": .string("gelu"), "intermediate_size": .int(fcIn.outFeatures), "approximation": .string(approximation.rawValue),
         "bias": .bool(fcIn.bias != nil)]
    }
    public var label: String { "gelu \(fcIn.outFeatures)" }

    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        let (c, i) = (Double(hidden), Double(fcIn.outFeatures))
        return ComponentCost(flopsPerToken: 2 * 2 * c * i, activationBytes: 4 * shape.tokens * (2 * i + c))
    }

    public var adaptableLinears: [AdaptableLinear] { [AdaptableLinear("fc_in", fcIn), AdaptableLinear("fc_out", fcOut)] }

    public func decodeStep(_ w: DecodeWeights) throws -> DecodeFeedForward {
        let fcIn = try w.matrix(self.fcIn), fcOut = try w.matrix(self.fcOut)
        let exact = approximation == .exact, width = Int(fcIn.rows)
        return DecodeFeedForward(scratchFloats: width) { x, out, rows, h in
            DecodeKernels.gemv(fcIn, h, x: x, vectors: rows, accumulate: false, geluTanh: !exact)  // tanh GELU fused into the rows
            if exact { for i in 0..<(rows * width) { h[i] = Kernels.geluExact(h[i]) } }
            DecodeKernels.gemv(fcOut, out, x: h, vectors: rows, accumulate: true)
        }
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("fc_in", fcIn)
        v.child("fc_out", fcOut)
    }
}

/// A gated MLP, `down_proj(act(gate_proj(x)) ∘ up_proj(x))`. Recipe kinds `swiglu` (act = SiLU:
/// Llama, Qwen) and `geglu` (act = GELU with the tanh approximation, HF `gelu_pytorch_tanh`:
/// Gemma): `intermediate_size` (required), `bias` (false).
public final class SwiGLUMLP: FeedForward {
    public enum Activation: String, Sendable {
        /// gpt-oss's experts: `(clamp(up, ±limit) + 1) · g·σ(α·g)` with `g = min(gate, limit)`.
        case silu = "swiglu", geluTanh = "geglu", clampedSwiGLU = "clamped_swiglu"
    }

    public let gateProj, upProj, downProj: Linear
    public let activation: Activation
    /// `clamped_swiglu`'s α and limit (gpt-oss: 1.702 and 7).
    public let alpha: Float, limit: Float

    public init(hiddenSize: Int, intermediateSize: Int, bias: Bool, activation: Activation = .silu, alpha: Float = 1.702,
                limit: Float = 7, context: ComponentContext) {
        gateProj = Linear(hiddenSize, intermediateSize, bias: bias, context: context)
        upProj = Linear(hiddenSize, intermediateSize, bias: bias, context: context)
        downProj = Linear(intermediateSize, hiddenSize, bias: bias, context: context, residual: true)
        self.activation = activation
        self.alpha = alpha
        self.limit = limit
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any FeedForward {
        try make(o: &o, c, .silu)
    }

    /// Recipe kind `geglu`.
    public static func makeGeGLU(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any FeedForward {
        try make(o: &o, c, .geluTanh)
    }

    static func make(o: inout ComponentOptions, _ c: ComponentContext, _ activation: Activation) throws -> any FeedForward {
        let inner = try o.requiredInt("intermediate_size")
        try ModelLimits.check(o, "intermediate_size", inner, max: ModelLimits.maxIntermediate)
        return SwiGLUMLP(hiddenSize: c.hiddenSize, intermediateSize: inner,
                         bias: try o.bool("bias", default: false), activation: activation, context: c)
    }

    public func callAsFunction(_ x: Tensor) throws -> Tensor {
        switch activation {
        case .silu: return try downProj(Tensor.swiglu(gate: gateProj(x), up: upProj(x)))
        case .geluTanh: return try downProj(gateProj(x).gelu(.tanh) * upProj(x))
        case .clampedSwiGLU:
            let g = try gateProj(x).clamped(max: limit), u = try upProj(x).clamped(min: -limit, max: limit)
            return try downProj((u + 1) * (g * (g * alpha).sigmoid()))
        }
    }

    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = ["kind": .string(activation.rawValue), "intermediate_size": .int(gateProj.outFeatures),
                                        "bias": .bool(gateProj.bias != nil)]
        if activation == .clampedSwiGLU { o["swiglu_alpha"] = .double(Double(alpha)); o["swiglu_limit"] = .double(Double(limit)) }
        return o
    }
    public var label: String { "\(activation.rawValue) \(gateProj.outFeatures)" }

    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost {
        let (c, i) = (Double(hidden), Double(gateProj.outFeatures))
        return ComponentCost(flopsPerToken: 3 * 2 * c * i, activationBytes: 4 * shape.tokens * (3 * i + c))
    }

    public var adaptableLinears: [AdaptableLinear] {
        [AdaptableLinear("gate_proj", gateProj), AdaptableLinear("up_proj", upProj), AdaptableLinear("down_proj", downProj)]
    }

    public func decodeStep(_ w: DecodeWeights) throws -> DecodeFeedForward {
        let gate = try w.matrix(gateProj), up = try w.matrix(upProj), down = try w.matrix(downProj)
        let width = Int(gate.rows)
        let (activation, alpha, limit) = (self.activation, self.alpha, self.limit)
        return DecodeFeedForward(scratchFloats: 2 * width) { x, out, rows, h in
            let n = rows * width, u = h + n  // gate rows [rows, width], then up rows
            DecodeKernels.gemv(gate, h, up, u, x: x, vectors: rows, accumulate: false)
            switch activation {
            case .silu: tk_swiglu_forward(h, u, h, 0, n)
            case .geluTanh:
                tk_gelu_tanh_forward(h, h, 0, n)
                for i in 0..<n { h[i] *= u[i] }
            case .clampedSwiGLU:
                for i in 0..<n {
                    let g = Swift.min(h[i], limit), up = Swift.min(Swift.max(u[i], -limit), limit)
                    h[i] = (up + 1) * g / (1 + Foundation.exp(-alpha * g))
                }
            }
            DecodeKernels.gemv(down, out, x: h, vectors: rows, accumulate: true)
        }
    }

    public func visit(_ v: inout ModuleVisitor) {
        v.child("gate_proj", gateProj)
        v.child("up_proj", upProj)
        v.child("down_proj", downProj)
    }
}
