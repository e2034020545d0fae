import Optimizers
import ToolkitSupport

extension TrainSettings {
    /// The optimizer these settings describe (as `toolkit train` builds it).
    public func makeOptimizer(for parameters: [NamedParameter]) throws -> MultiOptimizer {
        guard let kind = OptimizerCatalog.optimizer(optimizer) else {
            throw ToolkitError("optimizer: '\(optimizer)' is not one of \(OptimizerCatalog.optimizerNames)")
        }
        var c = OptimizerConfiguration()
        c.algorithm = kind.name
        c.learningRate = lr
        c.beta1 = betas[0]
        c.beta2 = betas[1]
        c.epsilon = eps
        c.weightDecay = weightDecay ?? kind.defaultWeightDecay
        c.momentum = momentum ?? kind.defaultMomentum
        c.muonLearningRate = muonLR
        c.muonMomentum = momentum ?? kind.defaultMomentum
        return try c.makeOptimizer(for: parameters)
    }

    /// The learning-rate schedule these settings describe.
    public func makeSchedule() throws -> LRSchedule {
        guard let kind = OptimizerCatalog.schedule(schedule) else {
            throw ToolkitError("schedule: '\(schedule)' is not one of \(OptimizerCatalog.scheduleNames)")
        }
        let ratio = lr > 0 ? min(1, (minLR ?? 0) / lr) : 0
        return try kind.build(warmup, steps, ratio, decayFraction)
    }
}
