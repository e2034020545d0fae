import Layers
import TensorCore

/// Stochastic gradient descent with momentum, dampening, Nesterov and L2 weight decay, exactly
/// as `torch.optim.SGD`.
///
/// ```
/// g = grad + wd·p
/// buf = g                               (first update of this parameter)
/// buf = momentum·buf + (1 − dampening)·g (later updates)
/// u = g + momentum·buf   if nesterov, else buf   (u = g when momentum = 0)
/// p = p − lr·u
/// ```
/// State: `<param>.momentum_buffer` (only when momentum ≠ 0) and `<param>.step`.
public final class SGD: OptimizerGroup {
    public let momentum: Double
    public let dampening: Double
    public let nesterov: Bool

    /// - Throws: `OptimizerError.invalidHyperparameter` for negative values, or Nesterov without
    ///   momentum or with dampening (PyTorch's rule).
    public init(
        _ parameters: [NamedParameter], learningRate: Double, momentum: Double = 0,
        dampening: Double = 0, nesterov: Bool = false, weightDecay: Double = 0,
        label: String = "sgd"
    ) throws {
        try checkHyperparameter("momentum", momentum, momentum >= 0 && momentum.isFinite)
        try checkHyperparameter("dampening", dampening, dampening.isFinite)
        try checkHyperparameter(
            "momentum", momentum, !nesterov || (momentum > 0 && dampening == 0),
            "Nesterov momentum requires momentum > 0 and dampening = 0")
        self.momentum = momentum
        self.dampening = dampening
        self.nesterov = nesterov
        try super.init(
            label: label, parameters: parameters, learningRate: learningRate,
            weightDecay: weightDecay,
            slotNames: momentum == 0 ? [] : ["momentum_buffer"])
    }

    override func update(
        index: Int, values: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        let p = UnsafeSendablePointer(values)
        let g = UnsafeSendablePointer(grad)
        let wd = Float(weightDecay)
        let lr = Float(learningRate)
        guard momentum != 0 else {
            elementwise(count) { r in
                for j in r { p[j] = p[j] + -lr * (g[j] + wd * p[j]) }
            }
            return
        }
        let (bufPointer, first) = slot(0, of: index)
        let buf = UnsafeSendablePointer(bufPointer)
        let mu = Float(momentum)
        let keep = Float(1 - dampening)
        let nesterov = nesterov
        elementwise(count) { r in
            for j in r {
                let d = g[j] + wd * p[j]
                let b = first ? d : mu * buf[j] + keep * d
                buf[j] = b
                p[j] = p[j] + -lr * (nesterov ? d + mu * b : b)
            }
        }
    }
}

extension OptimizerKind {
    /// Recipe/flag name `sgd`: momentum, dampening, Nesterov, L2 weight decay (torch.optim.SGD).
    public static let sgd = OptimizerKind(name: "sgd", summary: "SGD with momentum, dampening, Nesterov, L2 weight decay") { c, params in
        try MultiOptimizer.decaySplit(params, label: "sgd", weightDecay: c.weightDecay, noDecay: c.noDecayFilter) {
            try SGD($0, learningRate: c.learningRate, momentum: c.momentum, dampening: c.dampening, nesterov: c.nesterov,
                    weightDecay: $1, label: $2)
        }
    }
}
