import Layers

/// Optimizer settings as a recipe would state them (snake_case keys), with defaults in one place,
/// a `validate()` that names the offending key, and `makeOptimizer` that builds the groups.
///
/// `algorithm`: a name in `OptimizerCatalog` — `sgd`, `adam`, `adamw` (groups `<algorithm>` and
/// `<algorithm>_no_decay`) or `muon` (groups `muon`, `adamw`, `adamw_no_decay`: Muon for hidden
/// matrices, AdamW with `learning_rate`, betas, `epsilon` and `weight_decay` for the rest).
/// No-decay parameters: rank < 2 or a name containing one of `no_decay_patterns`. Muon
/// parameters: rank 2 and a name containing none of `muon_exclude_patterns`.
public struct OptimizerConfiguration: Codable, Equatable, Sendable {
    public var algorithm = "adamw"
    public var learningRate: Double = 3e-4
    public var weightDecay: Double = 0.1
    public var beta1: Double = 0.9
    public var beta2: Double = 0.95
    public var epsilon: Double = 1e-8
    /// SGD only.
    public var momentum: Double = 0.9
    public var dampening: Double = 0
    public var nesterov: Bool = false
    /// Muon group only.
    public var muonLearningRate: Double = 0.02
    public var muonMomentum: Double = 0.95
    public var muonWeightDecay: Double = 0
    public var muonNesterov: Bool = true
    public var muonLearningRateAdjustment: Muon.LearningRateAdjustment = .original
    public var noDecayPatterns: [String] = ParameterFilter.embeddingNames + ["norm", "bias", "ln_"]
    public var muonExcludePatterns: [String] =
        ParameterFilter.embeddingNames + ["lm_head", "norm", "bias", "ln_"]

    public enum CodingKeys: String, CodingKey, CaseIterable {
        case algorithm
        case learningRate = "learning_rate"
        case weightDecay = "weight_decay"
        case beta1, beta2, epsilon, momentum, dampening, nesterov
        case muonLearningRate = "muon_learning_rate"
        case muonMomentum = "muon_momentum"
        case muonWeightDecay = "muon_weight_decay"
        case muonNesterov = "muon_nesterov"
        case muonLearningRateAdjustment = "muon_lr_adjustment"
        case noDecayPatterns = "no_decay_patterns"
        case muonExcludePatterns = "muon_exclude_patterns"
    }

    public init() {}

    /// Missing keys take the defaults above.
    public init(from decoder: any Decoder) throws {
        let c = try decoder.container(keyedBy: CodingKeys.self)
        func value<T: Decodable>(_ key: CodingKeys, _ fallback: T) throws -> T {
            try c.decodeIfPresent(T.self, forKey: key) ?? fallback
        }
        let d = OptimizerConfiguration()
        algorithm = try value(.algorithm, d.algorithm)
        guard OptimizerCatalog.optimizer(algorithm) != nil else {
            throw DecodingError.dataCorruptedError(
                forKey: .algorithm, in: c, debugDescription: "'\(algorithm)' is not one of \(OptimizerCatalog.optimizerNames)")
        }
        learningRate = try value(.learningRate, d.learningRate)
        weightDecay = try value(.weightDecay, d.weightDecay)
        beta1 = try value(.beta1, d.beta1)
        beta2 = try value(.beta2, d.beta2)
        epsilon = try value(.epsilon, d.epsilon)
        momentum = try value(.momentum, d.momentum)
        dampening = try value(.dampening, d.dampening)
        nesterov = try value(.nesterov, d.nesterov)
        muonLearningRate = try value(.muonLearningRate, d.muonLearningRate)
        muonMomentum = try value(.muonMomentum, d.muonMomentum)
        muonWeightDecay = try value(.muonWeightDecay, d.muonWeightDecay)
        muonNesterov = try value(.muonNesterov, d.muonNesterov)
        muonLearningRateAdjustment = try value(
            .muonLearningRateAdjustment, d.muonLearningRateAdjustment)
        noDecayPatterns = try value(.noDecayPatterns, d.noDecayPatterns)
        muonExcludePatterns = try value(.muonExcludePatterns, d.muonExcludePatterns)
    }

    public var noDecayFilter: ParameterFilter { .rank(below: 2) || .nameContains(noDecayPatterns) }
    public var muonFilter: ParameterFilter {
        ParameterFilter { _, p in p.shape.count == 2 } && !.nameContains(muonExcludePatterns)
    }

    /// Checks ranges; the error names the key (`learning_rate`, `beta1`, …).
    public func validate() throws {
        func check(_ key: CodingKeys, _ v: Double, _ ok: Bool, _ reason: String) throws {
            try checkHyperparameter(key.rawValue, v, ok && v.isFinite, reason)
        }
        try check(.learningRate, learningRate, learningRate >= 0, "must be ≥ 0")
        try check(.weightDecay, weightDecay, weightDecay >= 0, "must be ≥ 0")
        try check(.beta1, beta1, beta1 >= 0 && beta1 < 1, "must be in [0, 1)")
        try check(.beta2, beta2, beta2 >= 0 && beta2 < 1, "must be in [0, 1)")
        try check(.epsilon, epsilon, epsilon >= 0, "must be ≥ 0")
        try check(.momentum, momentum, momentum >= 0, "must be ≥ 0")
        try check(.dampening, dampening, true, "must be finite")
        try check(.muonLearningRate, muonLearningRate, muonLearningRate >= 0, "must be ≥ 0")
        try check(
            .muonMomentum, muonMomentum, muonMomentum >= 0 && muonMomentum < 1, "must be in [0, 1)")
        try check(.muonWeightDecay, muonWeightDecay, muonWeightDecay >= 0, "must be ≥ 0")
        if algorithm == "sgd" && nesterov {
            try check(
                .nesterov, momentum, momentum > 0 && dampening == 0,
                "Nesterov needs momentum > 0 and dampening = 0")
        }
    }

    /// Builds the optimizer for `params` (frozen parameters are left out).
    public func makeOptimizer(for params: [NamedParameter]) throws -> MultiOptimizer {
        try validate()
        guard let kind = OptimizerCatalog.optimizer(algorithm) else {
            throw OptimizerError.invalidHyperparameter(
                name: CodingKeys.algorithm.rawValue, value: 0,
                reason: "'\(algorithm)' is not one of \(OptimizerCatalog.optimizerNames)")
        }
        return try kind.build(self, params)
    }
}
