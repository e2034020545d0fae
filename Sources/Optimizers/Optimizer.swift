import Layers
import TensorCore

/// A parameter with its dotted checkpoint name, as `Module.namedParameters()` returns it.
public typealias NamedParameter = (name: String, parameter: Parameter)

/// One saved optimizer-state tensor (row-major Float32), ready for a safetensors writer.
public struct StateTensor: Equatable, Sendable {
    public var shape: [Int]
    public var values: [Float]

    public init(shape: [Int], values: [Float]) {
        self.shape = shape
        self.values = values
    }
}

/// Optimizer state as named tensors: `<param>.exp_avg`, `<param>.exp_avg_sq`,
/// `<param>.momentum_buffer` (same shape as the parameter) and `<param>.step` (shape `[]`, the
/// number of updates that parameter has received, stored exactly as a float up to 2²⁴).
public typealias OptimizerState = [String: StateTensor]

/// Errors for invalid hyper-parameters, unsupported parameters and bad saved state.
public enum OptimizerError: Error, CustomStringConvertible, Equatable {
    /// A hyper-parameter outside its valid range; names it.
    case invalidHyperparameter(name: String, value: Double, reason: String)
    /// A parameter this optimizer cannot update (e.g. Muon on a 1-D tensor).
    case unsupportedParameter(name: String, shape: [Int], reason: String)
    /// The same parameter (or the same name) given twice.
    case duplicateParameter(name: String)
    /// A saved-state key that names no parameter/slot of this optimizer.
    case unknownStateKey(key: String)
    /// A saved-state tensor whose shape or content does not fit.
    case invalidState(key: String, reason: String)

    public var description: String {
        switch self {
        case .invalidHyperparameter(let name, let value, let reason):
            return "optimizer: invalid \(name) = \(value): \(reason)"
        case .unsupportedParameter(let name, let shape, let reason):
            return "optimizer: parameter '\(name)' with shape \(shape) is not supported: \(reason)"
        case .duplicateParameter(let name):
            return "optimizer: parameter '\(name)' appears more than once"
        case .unknownStateKey(let key):
            return "optimizer state: unknown key '\(key)'"
        case .invalidState(let key, let reason):
            return "optimizer state: key '\(key)': \(reason)"
        }
    }
}

/// Updates parameters in place from their accumulated gradients.
///
/// Conformers are single-algorithm groups (`SGD`, `Adam`, `AdamW`, `Muon`, all subclasses of
/// `OptimizerGroup`) and `MultiOptimizer`, which steps several groups together. A training step is
/// `zeroGrad()` → forward → `backward()` → (clip) → set learning rates → `step()`.
public protocol Optimizer: AnyObject {
    /// Every parameter this optimizer updates, in order.
    var parameters: [NamedParameter] { get }
    /// The parameter groups, each with its own learning rate (a single optimizer is one group).
    var groups: [OptimizerGroup] { get }
    /// One update of every parameter that has a gradient (parameters without one are skipped,
    /// as in PyTorch).
    func step() throws
    /// The complete state as named tensors (see `OptimizerState`).
    func stateTensors() -> OptimizerState
    /// Replaces the state with `state`; parameters absent from it start fresh. Throws on unknown
    /// keys, wrong shapes or incomplete entries, leaving the state unchanged.
    func loadStateTensors(_ state: OptimizerState) throws
}

extension Optimizer {
    /// Drops the gradients of every parameter.
    public func zeroGrad() {
        for (_, p) in parameters { p.zeroGrad() }
    }

    /// Sets each group's learning rate to `baseLearningRate · multiplier` (use with `LRSchedule`).
    public func setLearningRateMultiplier(_ multiplier: Double) {
        for g in groups { g.learningRate = g.baseLearningRate * multiplier }
    }
}

/// A group of parameters sharing one algorithm and one set of hyper-parameters.
///
/// Holds per-parameter state buffers ("slots", allocated once, lazily at a parameter's first
/// update) and per-parameter step counts, and implements state save/load for its subclasses.
/// Subclasses implement `update(index:values:grad:count:)` over raw pointers.
public class OptimizerGroup: Optimizer {
    /// A label for logs ("muon", "adamw", "adamw_no_decay", …).
    public var label: String
    public let parameters: [NamedParameter]
    /// The current learning rate (schedules overwrite it every step).
    public var learningRate: Double
    /// The configured (peak) learning rate that `setLearningRateMultiplier` scales.
    public var baseLearningRate: Double
    /// Weight decay (L2 or decoupled, depending on the algorithm).
    public var weightDecay: Double

    /// Names of the per-parameter state buffers, e.g. `["exp_avg", "exp_avg_sq"]`.
    let slotNames: [String]
    /// `slots[param][slot]`, nil until the parameter's first update.
    var slots: [[TensorStorage?]]
    /// Number of updates each parameter has received.
    var stepCounts: [Int]
    let indexByName: [String: Int]

    init(
        label: String, parameters: [NamedParameter], learningRate: Double, weightDecay: Double,
        slotNames: [String]
    ) throws {
        try checkHyperparameter(
            "learning_rate", learningRate, learningRate >= 0 && learningRate.isFinite)
        try checkHyperparameter(
            "weight_decay", weightDecay, weightDecay >= 0 && weightDecay.isFinite)
        var index: [String: Int] = [:]
        var seen = Set<ObjectIdentifier>()
        for (i, (name, p)) in parameters.enumerated() {
            guard index[name] == nil, seen.insert(ObjectIdentifier(p)).inserted else {
                throw OptimizerError.duplicateParameter(name: name)
            }
            index[name] = i
        }
        self.label = label
        self.parameters = parameters
        self.learningRate = learningRate
        self.baseLearningRate = learningRate
        self.weightDecay = weightDecay
        self.slotNames = slotNames
        self.slots = Array(
            repeating: Array(repeating: nil, count: slotNames.count), count: parameters.count)
        self.stepCounts = Array(repeating: 0, count: parameters.count)
        self.indexByName = index
    }

    public var groups: [OptimizerGroup] { [self] }

    public func step() throws {
        prepareStep()
        for i in parameters.indices {
            let p = parameters[i].parameter
            guard p.isTrainable, let g = p.gradValues else { continue }
            stepCounts[i] += 1
            update(index: i, values: p.values, grad: g, count: p.count)
        }
    }

    /// Called once at the start of `step()` (allocate shared workspaces here).
    func prepareStep() {}

    /// Updates parameter `index` in place. `stepCounts[index]` already counts this update.
    func update(
        index: Int, values: UnsafeMutablePointer<Float>, grad: UnsafeMutablePointer<Float>,
        count: Int
    ) {
        preconditionFailure("OptimizerGroup subclasses implement update")
    }

    /// The slot buffer of a parameter, allocated (zeroed) on first use; `created` tells whether it
    /// was just allocated.
    func slot(_ s: Int, of i: Int) -> (pointer: UnsafeMutablePointer<Float>, created: Bool) {
        if let b = slots[i][s] { return (b.pointer, false) }
        let b = TensorStorage(count: parameters[i].parameter.count)
        slots[i][s] = b
        return (b.pointer, true)
    }

    // MARK: State

    /// The state in place, for saving without a copy: each slot's buffer, and each step count in a
    /// one-element buffer (same keys as `stateTensors`).
    public func stateBuffers() -> [String: (shape: [Int], storage: TensorStorage)] {
        var out: [String: (shape: [Int], storage: TensorStorage)] = [:]
        for (i, (name, p)) in parameters.enumerated() where stepCounts[i] > 0 {
            out["\(name).step"] = ([], TensorStorage([Float(stepCounts[i])]))
            for (s, slotName) in slotNames.enumerated() {
                if let b = slots[i][s] { out["\(name).\(slotName)"] = (p.shape, b) }
            }
        }
        return out
    }

    public func stateTensors() -> OptimizerState {
        var out: OptimizerState = [:]
        for (i, (name, p)) in parameters.enumerated() where stepCounts[i] > 0 {
            out["\(name).step"] = StateTensor(shape: [], values: [Float(stepCounts[i])])
            for (s, slotName) in slotNames.enumerated() {
                guard let b = slots[i][s] else { continue }
                out["\(name).\(slotName)"] = StateTensor(
                    shape: p.shape,
                    values: Array(UnsafeBufferPointer(start: b.pointer, count: b.count)))
            }
        }
        return out
    }

    /// Whether `key` names state of one of this group's parameters (its parameter index and
    /// slot, `slotNames.count` standing for `step`).
    func resolve(_ key: String) -> (index: Int, slot: Int)? {
        for (s, slotName) in (slotNames + ["step"]).enumerated() where key.hasSuffix("." + slotName)
        {
            if let i = indexByName[String(key.dropLast(slotName.count + 1))] { return (i, s) }
        }
        return nil
    }

    public func loadStateTensors(_ state: OptimizerState) throws {
        apply(try parse(state))
    }

    /// Checks `state` against this group's parameters; returns it indexed `[param][slot]`
    /// (`slotNames.count` = step). Nothing is changed, so a bad file leaves the state untouched.
    func parse(_ state: OptimizerState) throws -> [[StateTensor?]] {
        var found: [[StateTensor?]] = Array(
            repeating: Array(repeating: nil, count: slotNames.count + 1), count: parameters.count)
        for (key, t) in state {
            guard let (i, s) = resolve(key) else { throw OptimizerError.unknownStateKey(key: key) }
            let expected = s == slotNames.count ? [] : parameters[i].parameter.shape
            guard t.shape == expected, t.values.count == Shape.count(expected) else {
                throw OptimizerError.invalidState(
                    key: key,
                    reason: "shape \(t.shape) with \(t.values.count) values, expected \(expected)")
            }
            if s == slotNames.count {
                let v = t.values[0]
                guard v.isFinite, v >= 1, v == v.rounded() else {
                    throw OptimizerError.invalidState(
                        key: key, reason: "step must be a positive integer, got \(v)")
                }
            }
            found[i][s] = t
        }
        for (i, entries) in found.enumerated() where entries.contains(where: { $0 != nil }) {
            let all = slotNames + ["step"]
            if let missing = entries.indices.first(where: { entries[$0] == nil }) {
                throw OptimizerError.invalidState(
                    key: "\(parameters[i].name).\(all[missing])",
                    reason: "missing (other state of this parameter is present)")
            }
        }
        return found
    }

    /// Replaces the state with parsed entries (from `parse`).
    func apply(_ found: [[StateTensor?]]) {
        for (i, entries) in found.enumerated() {
            stepCounts[i] = entries[slotNames.count].map { Int($0.values[0]) } ?? 0
            for s in slotNames.indices {
                guard let t = entries[s] else {
                    slots[i][s] = nil
                    continue
                }
                let b = slots[i][s] ?? TensorStorage(count: t.values.count, zeroed: false)
                t.values.withUnsafeBufferPointer { src in
                    if let base = src.baseAddress {
                        b.pointer.update(from: base, count: t.values.count)
                    }
                }
                slots[i][s] = b
            }
        }
    }
}

func checkHyperparameter(
    _ name: String, _ value: Double, _ ok: Bool, _ reason: String = "out of range"
) throws {
    guard ok else {
        throw OptimizerError.invalidHyperparameter(name: name, value: value, reason: reason)
    }
}

/// PyTorch's `lerp` formula (`start + w·(end − start)` for |w| < 0.5, else
/// `end − (end − start)·(1 − w)`), so moment updates round exactly as in `torch.lerp`.
@inline(__always) func lerp(_ start: Float, _ end: Float, _ weight: Float) -> Float {
    abs(weight) < 0.5 ? start + weight * (end - start) : end - (end - start) * (1 - weight)
}

/// Elementwise loops over parameter-sized buffers, split across workers for large tensors.
/// Each index is touched by exactly one worker, so results do not depend on the split.
@inline(__always) func elementwise(
    _ count: Int, cost: Int = 4, _ body: @Sendable (Range<Int>) -> Void
) {
    Parallel.forRange(count, costPerItem: cost, body)
}
