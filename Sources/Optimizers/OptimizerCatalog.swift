import Layers

/// One optimizer as recipes, flags and reports name it: its name, a one-line summary, the defaults a
/// run takes for settings the recipe leaves unset, and how it builds its parameter groups from an
/// `OptimizerConfiguration`. Each optimizer's file declares its kind (`OptimizerKind.sgd`, …); a
/// new optimizer is one file plus one line in `OptimizerCatalog.kinds`.
public struct OptimizerKind: Sendable {
    public let name: String
    public let summary: String
    /// Weight decay when the run sets none (PyTorch's default for the class).
    public let defaultWeightDecay: Double
    /// Momentum when the run sets none (SGD: 0, as torch; Muon: 0.95).
    public let defaultMomentum: Double
    public let build: @Sendable (OptimizerConfiguration, [NamedParameter]) throws -> MultiOptimizer

    public init(name: String, summary: String, defaultWeightDecay: Double = 0, defaultMomentum: Double = 0,
                build: @escaping @Sendable (OptimizerConfiguration, [NamedParameter]) throws -> MultiOptimizer) {
        self.name = name
        self.summary = summary
        self.defaultWeightDecay = defaultWeightDecay
        self.defaultMomentum = defaultMomentum
        self.build = build
    }
}

/// One learning-rate schedule as recipes and flags name it.
public struct ScheduleKind: Sendable {
    public let name: String
    public let summary: String
    public let build: @Sendable (_ warmup: Int, _ total: Int, _ minRatio: Double, _ decayFraction: Double) throws -> LRSchedule
}

/// The single source of the optimizer and schedule names: recipe validation, the CLI's help and the
/// README's table (`toolkit catalog --markdown`) all read these lists.
public enum OptimizerCatalog {
    public static let kinds: [OptimizerKind] = [.sgd, .adam, .adamw, .muon]

    public static let schedules: [ScheduleKind] = [
        ScheduleKind(name: "constant", summary: "linear warm-up, then the peak rate") { w, _, _, _ in .constant(warmupSteps: w) },
        ScheduleKind(name: "cosine", summary: "warm-up, then cosine decay to min_lr") { w, t, r, _ in
            try LRSchedule(.cosine, warmupSteps: min(w, t), totalSteps: t, minRatio: r)
        },
        ScheduleKind(name: "linear", summary: "warm-up, then linear decay to min_lr") { w, t, r, _ in
            try LRSchedule(.linear, warmupSteps: min(w, t), totalSteps: t, minRatio: r)
        },
        ScheduleKind(name: "wsd", summary: "warm-up, stable, then 1 − √q decay over the last decay_fraction (MiniCPM, llm.c)") {
            w, t, r, f in try LRSchedule(.wsd(decayFraction: f, shape: .sqrt), warmupSteps: min(w, t), totalSteps: t, minRatio: r)
        },
    ]

    public static func optimizer(_ name: String) -> OptimizerKind? { kinds.first { $0.name == name } }
    public static func schedule(_ name: String) -> ScheduleKind? { schedules.first { $0.name == name } }

    /// "sgd, adam, adamw, muon"
    public static var optimizerNames: String { kinds.map(\.name).joined(separator: ", ") }
    /// "constant, cosine, linear, wsd"
    public static var scheduleNames: String { schedules.map(\.name).joined(separator: ", ") }
}
