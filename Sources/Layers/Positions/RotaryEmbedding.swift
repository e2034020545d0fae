import Foundation
import TensorCore

/// How rotary frequencies are stretched for longer contexts.
public enum RoPEScaling: Equatable, Sendable {
    case none
    /// Position interpolation: every frequency divided by `factor`.
    case linear(factor: Double)
    /// NTK-aware: θ' = θ · factor^(d/(d−2)).
    case ntk(factor: Double)
    /// YaRN exactly as HF `_compute_yarn_parameters` (see SPECS §2.5).
    case yarn(factor: Double, originalMaxPositions: Int, betaFast: Double, betaSlow: Double,
              attentionFactor: Double?, mscale: Double?, mscaleAllDim: Double?, truncate: Bool)
}

/// Rotary position embedding (RoFormer) in the HF "rotate-half" or the interleaved layout, with
/// θ, a partial-rotary fraction and optional scaling (linear, NTK-aware, YaRN).
///
/// Recipe kind `rope`: `theta` (10000), `layout` (`half` | `interleaved`), `partial_rotary_factor`
/// (1.0), `scaling` { `kind`: `linear` | `ntk` | `yarn`, `factor`, `original_max_position_embeddings`,
/// `beta_fast` (32), `beta_slow` (1), `attention_factor`, `mscale`, `mscale_all_dim`, `truncate` (true) }.
///
/// Tables are computed in Float32 the way HF does (inv_freq in fp32, angle = fp32(position · inv_freq)),
/// then multiplied by the attention factor (YaRN: 0.1·ln(factor) + 1).
public final class RotaryEmbedding: PositionalEncoding {
    public let theta: Double
    public let layout: RoPELayout
    public let rotaryDim: Int
    public let scaling: RoPEScaling
    /// `inv_freq[i]`, i < rotaryDim/2.
    public let inverseFrequencies: [Float]
    public let attentionFactor: Float
    public let cos: Tensor
    public let sin: Tensor

    public init(headDim: Int, theta: Double, layout: RoPELayout = .half, partialRotaryFactor: Double = 1,
                scaling: RoPEScaling = .none, maxPositions: Int) throws {
        var dim = Int((Double(headDim) * partialRotaryFactor).rounded(.down))
        dim -= dim % 2
        guard dim >= 2 else {
            throw TensorError.invalidArgument(op: "rope", message: "rotary dimension \(dim) of head_dim \(headDim) is too small")
        }
        self.theta = theta
        self.layout = layout
        self.rotaryDim = dim
        self.scaling = scaling
        let (inv, factor) = Self.frequencies(dim: dim, theta: theta, scaling: scaling)
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

    /// inv_freq and attention factor per HF (`compute_default_rope_parameters`, `_compute_yarn_parameters`).
    static func frequencies(dim: Int, theta: Double, scaling: RoPEScaling) -> ([Float], Float) {
        func base(_ b: Double) -> [Float] {
            (0..<(dim / 2)).map { i in
                let e = Float(2 * i) / Float(dim)
                return 1 / Float(Foundation.pow(Double(Float(b)), Double(e)))
            }
        }
        switch scaling {
        case .none: return (base(theta), 1)
        case .linear(let f): return (base(theta).map { $0 / Float(f) }, 1)
        case .ntk(let f): return (base(theta * Foundation.pow(f, Double(dim) / Double(dim - 2))), 1)
        case .yarn(let s, let orig, let betaFast, let betaSlow, let attnFactor, let mscale, let mscaleAllDim, let truncate):
            func getMscale(_ scale: Double, _ m: Double = 1) -> Double { scale <= 1 ? 1 : 0.1 * m * Foundation.log(scale) + 1 }
            var factor: Double
            if let attnFactor {
                factor = attnFactor
            } else if let mscale, let mscaleAllDim, mscaleAllDim != 0 {
                factor = getMscale(s, mscale) / getMscale(s, mscaleAllDim)
            } else {
                factor = getMscale(s)
            }
            func correctionDim(_ r: Double) -> Double {
                Double(dim) * Foundation.log(Double(orig) / (r * 2 * Double.pi)) / (2 * Foundation.log(theta))
            }
            var low = correctionDim(betaFast), high = correctionDim(betaSlow)
            if truncate { low = low.rounded(.down); high = high.rounded(.up) }
            low = Swift.max(low, 0)
            high = Swift.min(high, Double(dim - 1))
            if low == high { high += 0.001 }
            let extrap = base(theta)
            let posFreqs = (0..<(dim / 2)).map { i in Float(Foundation.pow(Double(Float(theta)), Double(Float(2 * i) / Float(dim)))) }
            let inv = (0..<(dim / 2)).map { j -> Float in
                let ramp = Swift.min(Swift.max((Float(j) - Float(low)) / (Float(high) - Float(low)), 0), 1)
                let extrapFactor = 1 - ramp
                let interp = 1 / (Float(s) * posFreqs[j])
                return interp * (1 - extrapFactor) + extrap[j] * extrapFactor
            }
            factor = Double(Float(factor))
            return (inv, Float(factor))
        }
    }

    public static func make(_ o: inout ComponentOptions, _ c: ComponentContext) throws -> any PositionalEncoding {
        let theta = try o.double("theta", default: 10_000)
        let layout = RoPELayout(rawValue: try o.choice("layout", RoPELayout.allCases.map(\.rawValue), default: "half"))!
        let partial = try o.double("partial_rotary_factor", default: 1)
        guard theta > 1 else { throw o.error("theta", "must be greater than 1, got \(theta)") }
        guard partial > 0, partial <= 1 else { throw o.error("partial_rotary_factor", "must be in (0, 1], got \(partial)") }
        guard c.headDim % 2 == 0 else { throw o.error("kind", "RoPE needs an even head_dim, got \(c.headDim)") }
        var scaling = RoPEScaling.none
        if var s = try o.nested("scaling") {
            let kind = try s.choice("kind", ["none", "linear", "ntk", "yarn"], default: "none")
            let factor = try s.double("factor", default: 1)
            guard factor >= 1 else { throw s.error("factor", "must be at least 1, got \(factor)") }
            switch kind {
            case "linear": scaling = .linear(factor: factor)
            case "ntk": scaling = .ntk(factor: factor)
            case "yarn":
                let orig = try s.optionalInt("original_max_position_embeddings") ?? c.contextLength
                scaling = .yarn(
                    factor: factor, originalMaxPositions: orig, betaFast: try s.double("beta_fast", default: 32),
                    betaSlow: try s.double("beta_slow", default: 1), attentionFactor: try s.optionalDouble("attention_factor"),
                    mscale: try s.optionalDouble("mscale"), mscaleAllDim: try s.optionalDouble("mscale_all_dim"),
                    truncate: try s.bool("truncate", default: true))
            default: break
            }
            try s.finish()
        }
        return try RotaryEmbedding(headDim: c.headDim, theta: theta, layout: layout, partialRotaryFactor: partial,
                                   scaling: scaling, maxPositions: c.contextLength)
    }

    public var maxPositions: Int? { cos.shape[0] }

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
