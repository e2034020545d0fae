import Layers
import TensorCore

/// Global-norm gradient clipping and non-finite gradient detection over the raw gradient
/// buffers of parameters (parameters without a gradient are ignored).
public enum GradientClipping {
    /// `‖g‖ = √(Σ_params Σ_i g_i²)`, accumulated in Double in a fixed order (deterministic).
    public static func globalNorm(_ parameters: [NamedParameter]) -> Double {
        sumOfSquares(parameters).squareRoot()
    }

    /// `Σ_params Σ_i g_i²` in Double, in a fixed order.
    public static func sumOfSquares(_ parameters: [NamedParameter]) -> Double {
        var total = 0.0
        for (_, p) in parameters {
            guard let g = p.gradValues else { continue }
            // Float dot products over fixed blocks, summed in Double: fast and accurate.
            let n = p.count
            let block = 4096
            var i = 0
            while i < n {
                let len = min(block, n - i)
                total += Double(Kernels.dot(g + i, g + i, len))
                i += len
            }
        }
        return total
    }

    /// Scales all gradients by `min(1, maxNorm / (norm + 1e-6))` (PyTorch's `clip_grad_norm_`)
    /// and returns the norm before clipping. When the norm is NaN or infinite the gradients are
    /// left unchanged (skip the step; see `nonFiniteGradients`).
    ///
    /// `combine` maps this process's sum of squares to the global one, for a model whose gradients
    /// are spread over processes (each owning some parameters); by default they are all here.
    @discardableResult
    public static func clipByGlobalNorm(
        _ parameters: [NamedParameter], maxNorm: Double, combine: (Double) -> Double = { $0 }
    ) -> Double {
        let norm = combine(sumOfSquares(parameters)).squareRoot()
        guard norm.isFinite else { return norm }
        let coefficient = maxNorm / (norm + 1e-6)
        guard coefficient < 1 else { return norm }
        let c = Float(coefficient)
        for (_, p) in parameters {
            guard let g = p.gradValues else { continue }
            let gs = UnsafeSendablePointer(g)
            elementwise(p.count) { r in
                for j in r { gs[j] *= c }
            }
        }
        return norm
    }

    /// Names of the parameters whose gradient contains NaN or ±Inf (empty when all are finite).
    public static func nonFiniteGradients(_ parameters: [NamedParameter]) -> [String] {
        parameters.compactMap { name, p in
            guard let g = p.gradValues else { return nil }
            for i in 0..<p.count where !g[i].isFinite { return name }
            return nil
        }
    }

    /// One pass for a training step: the global gradient norm, and — only when it is not finite —
    /// the names of the parameters whose gradients hold NaN/Inf (an overflowing norm with all values
    /// finite yields an empty list). Finite norms are clipped to `maxNorm` when it is positive.
    public static func normAndClip(
        _ parameters: [NamedParameter], maxNorm: Double, combine: (Double) -> Double = { $0 }
    ) -> (norm: Double, nonFinite: [String]?) {
        let norm = maxNorm > 0 ? clipByGlobalNorm(parameters, maxNorm: maxNorm, combine: combine)
            : combine(sumOfSquares(parameters)).squareRoot()
        return norm.isFinite ? (norm, nil) : (norm, nonFiniteGradients(parameters))
    }
}
