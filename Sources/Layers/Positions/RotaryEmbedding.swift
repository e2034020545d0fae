import CKernels
import Foundation
import TensorCore

/// Rotary position embedding (RoFormer) in the HF "rotate-half" or the interleaved layout, with
/// θ, a partial-rotary fraction and optional scaling (linear, NTK-aware, YaRN).
///
/// Recipe kind `rope`: `theta` (10000), `layout` (`half` | `interleaved`), `partial_rotary_factor`
/// (1.0), `scaling` { `kind`: one of `Components.ropeScalings` (`linear`, `ntk`, `yarn`, `llama3`)
/// and that scaling's settings }.
///
/// Tables are computed in Float32 the way HF does (inv_freq in fp32, angle = fp32(position · inv_freq)),
/// then multiplied by the scaling's attention factor (YaRN: 0.1·ln(factor) + 1).
public final class RotaryEmbedding: PositionalEncoding {
    public let theta: Double
    public let layout: RoPELayout
    public let partialRotaryFactor: Double
    public let rotaryDim: Int
    /// nil: plain RoPE.
    public let scaling: (any RoPEScaling)?
    /// `inv_freq[i]`, i < rotaryDim/2.
    public let inverseFrequencies: [Float]
    public let attentionFactor: Float
    public let cos: Tensor
    public let sin: Tensor

    public init(headDim: Int, theta: Double, layout: RoPELayout = .half, partialRotaryFactor: Double = 1,
                scaling: (any RoPEScaling)? = nil, maxPositions: Int) throws {
        var dim = Int((Double(headDim) * partialRotaryFactor).rounded(.down))
        dim -= dim % 2
        guard dim >= 2 else {
            throw TensorError.invalidArgument(op: "rope", message: "rotary dimension \(dim) of head_dim \(headDim) is too small")
        }
        self.theta = theta
        self.layout = layout
        self.partialRotaryFactor = partialRotaryFactor
        self.rotaryDim = dim
        self.scaling = scaling
        let (inv, factor) = scaling?.frequencies(dim: dim, theta: theta) ?? (ropeBaseFrequencies(dim: dim, theta: theta), 1)
        inverseFrequencies = inv
        attentionFactor = factor
        let half = dim / 2
        var c = [Float](repeating: 0, count: maxPositions * half), s = c
        for p in 0..<maxPositions {
            for i in 0..<half {
                let angle = Float(p) * inv[i]  // fp32 product, as HF's fp32 matmul of positions and inv_freq
                c[p * half + i] = Float(Foundation.cos(Double(angle))) * factor
                s[p * half + i] = Float(Foundation.sin(Double(angle))) * factor
            }
        }
        cos = try Tensor(shape: [maxPositions, half], values: c)
        sin = try Tensor(shape: [maxPositions, half], values: s)
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any PositionalEncoding {
        let theta = try o.double("theta", default: 10_000)
        let layout = RoPELayout(rawValue: try o.choice("layout", RoPELayout.allCases.map(\.rawValue), default: "half"))!
        let partial = try o.double("partial_rotary_factor", default: 1)
        guard theta > 1, theta.isFinite else { throw o.error("theta", "must be a finite number greater than 1, got \(theta)") }
        guard partial > 0, partial <= 1 else { throw o.error("partial_rotary_factor", "must be in (0, 1], got \(partial)") }
        guard c.headDim % 2 == 0 else { throw o.error("kind", "RoPE needs an even head_dim, got \(c.headDim)") }
        var scaling: (any RoPEScaling)? = nil
        if let s = try o.nested("scaling") {
            var probe = s
            if try probe.kind() == "none" { try probe.finish() } else { scaling = try Components.ropeScalings.make(s, c) }
        }
        return try RotaryEmbedding(headDim: c.headDim, theta: theta, layout: layout, partialRotaryFactor: partial,
                                   scaling: scaling, maxPositions: c.contextLength)
    }

    public var maxPositions: Int? { cos.shape[0] }

    public var options: [String: ConfigValue] {
        var o: [String: ConfigValue] = ["kind": .string("rope"), "theta": .double(theta), "layout": .string(layout.rawValue),
                                        "partial_rotary_factor": .double(partialRotaryFactor)]
        if let scaling { o["scaling"] = .map(scaling.options) }
        return o
    }

    public var label: String { scaling.map { "rope+\($0.kind)" } ?? "rope" }

    public func cost(_ shape: CostShape, hidden: Int) -> ComponentCost { .zero }

    public func decodePositions(_ w: DecodeWeights) throws -> DecodePositions {
        let cos = w.pin(self.cos), sin = w.pin(self.sin), half = self.cos.shape[1]
        let interleaved: Int32 = layout == .interleaved ? 1 : 0
        return DecodePositions(rotate: { x, heads, headDim, position in
            tk_rope_row(x, Int32(heads), Int32(headDim), cos + position * half, sin + position * half, Int32(half), interleaved)
        })
    }

    public func rotate(_ x: Tensor, offset: Int) throws -> Tensor {
        try Tensor.rope(x, cos: cos, sin: sin, offset: offset, layout: layout)
    }

    /// HF-layout tables `[T, rotaryDim]` (`cat(freqs, freqs)`) for comparison with `rope.cos`.
    public func hfTables(positions: Int) -> (cos: [Float], sin: [Float]) {
        let half = rotaryDim / 2
        var c: [Float] = [], s: [Float] = []
        let pc = cos.scalars, ps = sin.scalars
        for p in 0..<positions {
            let rowC = Array(pc[(p * half)..<((p + 1) * half)]), rowS = Array(ps[(p * half)..<((p + 1) * half)])
            c += rowC + rowC
            s += rowS + rowS
        }
        return (c, s)
    }
}
