import Foundation

/// A learning-rate schedule as a pure function of the (0-based) step, expressed as a multiplier
/// of each group's base learning rate (`Optimizer.setLearningRateMultiplier`).
///
/// With W = `warmupSteps`, T = `totalSteps`, r = `minRatio` (min_lr / peak lr):
/// ```
/// warm-up (step < W):  (step + 1) / W                           (llm.c; reaches 1 at step W−1)
/// constant:            1
/// cosine:              r + (1 − r)·½(1 + cos(π·q)),  q = (step − W)/(T − W)
/// linear:              r + (1 − r)·(1 − q)
/// wsd:                 1 until D = T − round(f·T) (but ≥ W), then
///                      r + (1 − r)·(1 − √q)  (.sqrt, llm.c)  or  r + (1 − r)·(1 − q)  (.linear),
///                      q = (step − D)/(T − D)
/// ```
/// q is clamped to [0, 1], so steps at or past T give r. Schedules: llm.c `llmc/schedulers.h`;
/// WSD: Hu et al., MiniCPM, https://arxiv.org/abs/2404.06395 .
public struct LRSchedule: Sendable, Equatable {
    /// Shape of the WSD cool-down.
    public enum DecayShape: String, Sendable, Equatable, Codable {
        case linear
        /// `1 − √q` (llm.c's WSD).
        case sqrt
    }

    public enum Kind: Sendable, Equatable {
        case constant
        case cosine
        case linear
        /// Warm-up, stable, then decay over the last `decayFraction` of the steps.
        case wsd(decayFraction: Double, shape: DecayShape)
    }

    public var kind: Kind
    public var warmupSteps: Int
    public var totalSteps: Int
    public var minRatio: Double

    /// - Throws: `OptimizerError.invalidHyperparameter` when steps are negative, warm-up exceeds
    ///   the total for a decaying schedule, or a ratio/fraction is outside [0, 1].
    public init(_ kind: Kind, warmupSteps: Int = 0, totalSteps: Int = 0, minRatio: Double = 0)
        throws
    {
        try checkHyperparameter("warmup_steps", Double(warmupSteps), warmupSteps >= 0)
        try checkHyperparameter(
            "min_lr_ratio", minRatio, minRatio >= 0 && minRatio <= 1, "must be in [0, 1]")
        if kind != .constant {
            try checkHyperparameter(
                "total_steps", Double(totalSteps), totalSteps > 0 && totalSteps >= warmupSteps,
                "must be positive and at least warmup_steps (\(warmupSteps))")
        }
        if case .wsd(let f, _) = kind {
            try checkHyperparameter("decay_fraction", f, f >= 0 && f <= 1, "must be in [0, 1]")
        }
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minRatio = minRatio
    }

    /// Linear warm-up then constant.
    public static func constant(warmupSteps: Int = 0) -> LRSchedule {
        LRSchedule(
            unchecked: .constant, warmupSteps: max(0, warmupSteps), totalSteps: 0, minRatio: 1)
    }

    private init(unchecked kind: Kind, warmupSteps: Int, totalSteps: Int, minRatio: Double) {
        self.kind = kind
        self.warmupSteps = warmupSteps
        self.totalSteps = totalSteps
        self.minRatio = minRatio
    }

    /// First step of the decay phase.
    public var decayStart: Int {
        switch kind {
        case .constant: return Int.max
        case .cosine, .linear: return warmupSteps
        case .wsd(let f, _):
            return max(warmupSteps, totalSteps - Int((f * Double(totalSteps)).rounded()))
        }
    }

    /// The multiplier of the base learning rate at `step` (0-based).
    public func multiplier(at step: Int) -> Double {
        if step < warmupSteps { return Double(max(step, 0) + 1) / Double(warmupSteps) }
        let start = decayStart
        if step < start { return 1 }
        let q = start >= totalSteps ? 1 : min(1, Double(step - start) / Double(totalSteps - start))
        let r = minRatio
        switch kind {
        case .constant: return 1
        case .cosine: return r + (1 - r) * 0.5 * (1 + cos(Double.pi * q))
        case .linear: return r + (1 - r) * (1 - q)
        case .wsd(_, let shape): return r + (1 - r) * (1 - (shape == .sqrt ? q.squareRoot() : q))
        }
    }

    /// `peak · multiplier(at: step)`.
    public func learningRate(at step: Int, peak: Double) -> Double { peak * multiplier(at: step) }
}
