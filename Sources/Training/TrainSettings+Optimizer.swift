import Optimizers
import ToolkitSupport

extension TrainSettings {
    /// The optimizer these settings describe (as `toolkit train` builds it).
    public func makeOptimizer(for parameters: [NamedParameter]) throws -> MultiOptimizer {
        var c = OptimizerConfiguration()
        guard let algorithm = OptimizerConfiguration.Algorithm(rawValue: optimizer) else {
            throw ToolkitError("unknown optimizer \(optimizer)")
        }
        c.algorithm = algorithm
        c.learningRate = lr
        c.beta1 = betas[0]
        c.beta2 = betas[1]
        c.epsilon = eps
        c.weightDecay = weightDecay ?? (optimizer == "adamw" ? 0.01 : 0)
        c.momentum = momentum ?? 0
        c.muonLearningRate = muonLR
        c.muonMomentum = momentum ?? 0.95
        return try c.makeOptimizer(for: parameters)
    }

    /// The learning-rate schedule these settings describe.
    public func makeSchedule() throws -> LRSchedule {
        let ratio = lr > 0 ? min(1, (minLR ?? 0) / lr) : 0
        switch schedule {
        case "constant": return LRSchedule.constant(warmupSteps: warmup)
        case "linear": return try LRSchedule(.linear, warmupSteps: min(warmup, steps), totalSteps: steps, minRatio: ratio)
        case "wsd": return try LRSchedule(.wsd(decayFraction: decayFraction, shape: .sqrt), warmupSteps: min(warmup, steps),
                                          totalSteps: steps, minRatio: ratio)
        default: return try LRSchedule(.cosine, warmupSteps: min(warmup, steps), totalSteps: steps, minRatio: ratio)
        }
    }
}
