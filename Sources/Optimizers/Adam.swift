import CKernels
import Foundation
import Layers
import TensorCore

/// Adam with PyTorch's semantics (`torch.optim.Adam`, amsgrad off): weight decay is L2, added to
/// the gradient before the moments. `AdamW` is the decoupled variant.
///
/// ```
/// t = t + 1
/// g = grad + wd·p                   (Adam; AdamW instead does p = p·(1 − lr·wd))
/// m = β1·m + (1 − β1)·g
/// v = β2·v + (1 − β2)·g²
/// p = p − (lr / (1 − β1ᵗ)) · m / (√v / √(1 − β2ᵗ) + ε)
/// ```
/// Paper: Kingma & Ba, https://arxiv.org/abs/1412.6980 ; AdamW: Loshchilov & Hutter,
/// https://arxiv.org/abs/1711.05101 . State: `<param>.exp_avg`, `<param>.exp_avg_sq`,
/// `<param>.step` (per parameter, so bias correction is right for parameters that skipped steps).
public class Adam: OptimizerGroup {
    public let beta1: Double
    public let beta2: Double
    public let epsilon: Double
    /// True for AdamW (`p *= 1 − lr·wd`), false for L2 decay added to the gradient.
    public let decoupledWeightDecay: Bool

    /// Defaults follow `torch.optim.Adam`: lr 1e-3, betas (0.9, 0.999), eps 1e-8, no decay.
    public convenience init(
        _ parameters: [NamedParameter], learningRate: Double = 1e-3, beta1: Double = 0.9,
        beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0,
        label: String = "adam"
    ) throws {
        try self.init(
            parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
            weightDecay: weightDecay, decoupled: false, label: label)
    }

    init(
        _ parameters: [NamedParameter], learningRate: Double, beta1: Double, beta2: Double,
        epsilon: Double, weightDecay: Double, decoupled: Bool, label: String
    ) throws {
        try checkHyperparameter("beta1", beta1, beta1 >= 0 && beta1 < 1, "must be in [0, 1)")
        try checkHyperparameter("beta2", beta2, beta2 >= 0 && beta2 < 1, "must be in [0, 1)")
        try checkHyperparameter("epsilon", epsilon, epsilon >= 0 && epsilon.isFinite)
        self.beta1 = beta1
        self.beta2 = beta2
        self.epsilon = epsilon
        self.decoupledWeightDecay = decoupled
        try super.init(
            label: label, parameters: parameters, learningRate: learningRate,
            weightDecay: weightDecay,
            slotNames: ["exp_avg", "exp_avg_sq"])
    }

    override func update(
        index: Int, values: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        let p = UnsafeSendablePointer(values)
        let g = UnsafeSendablePointer(grad)
        let m = UnsafeSendablePointer(slot(0, of: index).pointer)
        let v = UnsafeSendablePointer(slot(1, of: index).pointer)
        let t = Double(stepCounts[index])
        // Scalars are formed in Double and rounded once, as PyTorch does with Python floats.
        let stepSize = Float(learningRate / (1 - Foundation.pow(beta1, t)))
        let bc2Sqrt = Float((1 - Foundation.pow(beta2, t)).squareRoot())
        let scalars = tk_adam_scalars(
            l2: decoupledWeightDecay ? 0 : Float(weightDecay), shrink: Float(1 - learningRate * weightDecay),
            w1: Float(1 - beta1), b2: Float(beta2), w2: Float(1 - beta2), bc2_sqrt: bc2Sqrt, eps: Float(epsilon),
            step_size: stepSize, decoupled: decoupledWeightDecay && weightDecay != 0 ? 1 : 0)
        // The vectorised C loop rounds exactly as this scalar form (no FMA contraction):
        //   d = g + l2·p; p *= shrink (AdamW); m = lerp(m, d, 1 − β1); v = β2·v + (1 − β2)·d·d
        //   p = p + −stepSize · (m / (√v / bc2Sqrt + eps))
        elementwise(count, cost: 16) { r in
            var local = scalars
            tk_adam_update(p.pointer, g.pointer, m.pointer, v.pointer, r.lowerBound, r.upperBound, &local)
        }
    }
}

/// AdamW (`torch.optim.AdamW`): Adam with decoupled weight decay `p = p·(1 − lr·wd)` applied
/// before the Adam update. Defaults: lr 1e-3, betas (0.9, 0.999), eps 1e-8, weight decay 0.01.
public final class AdamW: Adam {
    public init(
        _ parameters: [NamedParameter], learningRate: Double = 1e-3, beta1: Double = 0.9,
        beta2: Double = 0.999, epsilon: Double = 1e-8, weightDecay: Double = 0.01,
        label: String = "adamw"
    ) throws {
        try super.init(
            parameters, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
            weightDecay: weightDecay, decoupled: true, label: label)
    }
}

extension OptimizerKind {
    /// Recipe/flag name `adam`: L2 weight decay added to the gradient (torch.optim.Adam).
    public static let adam = OptimizerKind(name: "adam", summary: "Adam, L2 weight decay in the gradient") { c, params in
        try MultiOptimizer.decaySplit(params, label: "adam", weightDecay: c.weightDecay, noDecay: c.noDecayFilter) {
            try Adam($0, learningRate: c.learningRate, beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon, weightDecay: $1, label: $2)
        }
    }

    /// Recipe/flag name `adamw`: decoupled weight decay, 0.01 by default (torch.optim.AdamW).
    public static let adamw = OptimizerKind(name: "adamw", summary: "AdamW, decoupled weight decay", defaultWeightDecay: 0.01) { c, params in
        try MultiOptimizer.adamW(params, learningRate: c.learningRate, beta1: c.beta1, beta2: c.beta2, epsilon: c.epsilon,
                                 weightDecay: c.weightDecay, noDecay: c.noDecayFilter)
    }
}
