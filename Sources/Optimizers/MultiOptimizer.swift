import Layers
import TensorCore

/// A predicate on named parameters, used to split parameters into groups.
public struct ParameterFilter: Sendable {
    public let matches: @Sendable (_ name: String, _ parameter: Parameter) -> Bool

    public init(_ matches: @escaping @Sendable (_ name: String, _ parameter: Parameter) -> Bool) {
        self.matches = matches
    }

    public func callAsFunction(_ name: String, _ parameter: Parameter) -> Bool {
        matches(name, parameter)
    }

    /// Names containing any of `patterns` (case-insensitive substring match).
    public static func nameContains(_ patterns: [String]) -> ParameterFilter {
        let lowered = patterns.map { $0.lowercased() }
        return ParameterFilter { name, _ in
            let n = name.lowercased()
            return lowered.contains { n.contains($0) }
        }
    }

    /// Tensors of rank below `rank` (1-D biases and norm gains for `rank: 2`).
    public static func rank(below rank: Int) -> ParameterFilter {
        ParameterFilter { _, p in p.shape.count < rank }
    }

    /// Every parameter.
    public static let all = ParameterFilter { _, _ in true }

    /// Name patterns of embeddings (HF Llama/Qwen `embed_tokens`, GPT-2 `wte`/`wpe`).
    public static let embeddingNames = ["embed", "wte", "wpe"]

    /// Default "no weight decay" set: 1-D tensors and names with embed/norm/bias (GPT-2 `wte`,
    /// `wpe`, `ln_` too).
    public static let noWeightDecay =
        rank(below: 2) || nameContains(embeddingNames + ["norm", "bias", "ln_"])

    /// Default Muon set: 2-D matrices that are not embeddings, the output head, norms or biases.
    public static let muonEligible =
        ParameterFilter { _, p in p.shape.count == 2 }
        && !nameContains(embeddingNames + ["lm_head", "norm", "bias", "ln_"])

    public static func || (l: ParameterFilter, r: ParameterFilter) -> ParameterFilter {
        ParameterFilter { n, p in l(n, p) || r(n, p) }
    }

    public static func && (l: ParameterFilter, r: ParameterFilter) -> ParameterFilter {
        ParameterFilter { n, p in l(n, p) && r(n, p) }
    }

    public static prefix func ! (f: ParameterFilter) -> ParameterFilter {
        ParameterFilter { n, p in !f(n, p) }
    }
}

/// Several parameter groups stepped together (e.g. Muon for hidden matrices plus AdamW with and
/// without weight decay for the rest). Each group keeps its own learning rate; state keys are
/// per parameter, so the merged state has no collisions.
public final class MultiOptimizer: Optimizer {
    public let groups: [OptimizerGroup]

    /// - Throws: `OptimizerError.duplicateParameter` if a parameter or name is in two groups.
    public init(_ groups: [OptimizerGroup]) throws {
        var names = Set<String>()
        var seen = Set<ObjectIdentifier>()
        for g in groups {
            for (name, p) in g.parameters {
                guard names.insert(name).inserted, seen.insert(ObjectIdentifier(p)).inserted else {
                    throw OptimizerError.duplicateParameter(name: name)
                }
            }
        }
        self.groups = groups
    }

    public var parameters: [NamedParameter] { groups.flatMap(\.parameters) }

    /// The group with `label`, if any.
    public func group(_ label: String) -> OptimizerGroup? { groups.first { $0.label == label } }

    public func step() throws {
        for g in groups { try g.step() }
    }

    public func stateTensors() -> OptimizerState {
        var out: OptimizerState = [:]
        for g in groups { out.merge(g.stateTensors()) { a, _ in a } }
        return out
    }

    /// Every group's state in place (`ParameterGroup.stateBuffers`).
    public func stateBuffers() -> [String: (shape: [Int], storage: TensorStorage)] {
        var out: [String: (shape: [Int], storage: TensorStorage)] = [:]
        for g in groups { out.merge(g.stateBuffers()) { a, _ in a } }
        return out
    }

    public func loadStateTensors(_ state: OptimizerState) throws {
        var parts = Array(repeating: OptimizerState(), count: groups.count)
        for (key, t) in state {
            guard let gi = groups.firstIndex(where: { $0.resolve(key) != nil }) else {
                throw OptimizerError.unknownStateKey(key: key)
            }
            parts[gi][key] = t
        }
        // Validate every group before changing any.
        let parsed = try zip(groups, parts).map { try $0.parse($1) }
        for (g, p) in zip(groups, parsed) { g.apply(p) }
    }

    // MARK: Standard group layouts

    /// Splits trainable parameters into `(selected, rest)` keeping their order.
    static func split(_ params: [NamedParameter], _ filter: ParameterFilter) -> (
        [NamedParameter], [NamedParameter]
    ) {
        let trainable = params.filter { $0.parameter.isTrainable }
        return (
            trainable.filter { filter($0.name, $0.parameter) },
            trainable.filter { !filter($0.name, $0.parameter) }
        )
    }

    /// Two groups of one algorithm, `label` with `weightDecay` and `label_no_decay` with none
    /// for `noDecay` parameters (empty groups omitted, frozen parameters left out). `make`
    /// builds a group from its parameters, weight decay and label.
    public static func decaySplit(
        _ params: [NamedParameter], label: String, weightDecay: Double, noDecay: ParameterFilter,
        _ make: (_ params: [NamedParameter], _ weightDecay: Double, _ label: String) throws ->
            OptimizerGroup
    ) throws -> MultiOptimizer {
        let (plain, decayed) = split(params, noDecay)
        var groups: [OptimizerGroup] = []
        if !decayed.isEmpty { groups.append(try make(decayed, weightDecay, label)) }
        if !plain.isEmpty { groups.append(try make(plain, 0, label + "_no_decay")) }
        return try MultiOptimizer(groups)
    }

    /// AdamW with weight decay on most matrices and none on `noDecay` (1-D tensors, embeddings,
    /// norms, biases by default): groups `adamw` and `adamw_no_decay` (empty groups omitted).
    /// Frozen parameters are left out.
    public static func adamW(
        _ params: [NamedParameter], learningRate: Double, beta1: Double = 0.9, beta2: Double = 0.95,
        epsilon: Double = 1e-8, weightDecay: Double = 0.1, noDecay: ParameterFilter = .noWeightDecay
    ) throws -> MultiOptimizer {
        try decaySplit(params, label: "adamw", weightDecay: weightDecay, noDecay: noDecay) {
            try AdamW(
                $0, learningRate: learningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
                weightDecay: $1, label: $2)
        }
    }

    /// Muon for hidden 2-D matrices (`useMuon`), AdamW for everything else (embeddings, output
    /// head, norms, biases), the AdamW part split by `noDecay`. Groups: `muon`, `adamw`,
    /// `adamw_no_decay` (empty groups omitted). Frozen parameters are left out.
    public static func muonWithAdamW(
        _ params: [NamedParameter],
        muonLearningRate: Double = 0.02, muonMomentum: Double = 0.95, muonWeightDecay: Double = 0,
        muonNesterov: Bool = true, muonAdjustment: Muon.LearningRateAdjustment = .original,
        adamLearningRate: Double = 3e-4, beta1: Double = 0.9, beta2: Double = 0.95,
        epsilon: Double = 1e-10, adamWeightDecay: Double = 0,
        useMuon: ParameterFilter = .muonEligible, noDecay: ParameterFilter = .noWeightDecay
    ) throws -> MultiOptimizer {
        let (hidden, others) = split(params, useMuon)
        let adam = try adamW(
            others, learningRate: adamLearningRate, beta1: beta1, beta2: beta2, epsilon: epsilon,
            weightDecay: adamWeightDecay, noDecay: noDecay)
        let muon = try Muon(
            hidden, learningRate: muonLearningRate, weightDecay: muonWeightDecay,
            momentum: muonMomentum, nesterov: muonNesterov, adjustment: muonAdjustment)
        return try MultiOptimizer((hidden.isEmpty ? [] : [muon]) + adam.groups)
    }
}
