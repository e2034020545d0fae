import Foundation
import Layers
import Optimizers
import TensorCore
import ToolkitSupport
import Training

/// One metrics JSONL row: `step` plus named values (`loss`, `lr`, `grad_norm`, `accuracy`, `val_*`, …).
public struct FineTuneRow: Encodable, Sendable {
    public var step: Int
    public var values: [String: Double]

    public init(step: Int, values: [String: Double]) {
        self.step = step
        self.values = values
    }

    struct Key: CodingKey {
        var stringValue: String
        var intValue: Int? { nil }
        init(_ s: String) { stringValue = s }
        init?(stringValue: String) { self.stringValue = stringValue }
        init?(intValue: Int) { nil }
    }

    public func encode(to encoder: any Encoder) throws {
        var c = encoder.container(keyedBy: Key.self)
        try c.encode(step, forKey: Key("step"))
        for (k, v) in values where v.isFinite { try c.encode(v, forKey: Key(k)) }
    }
}

/// What a step closure returns: the loss to back-propagate (already averaged) and extra metrics.
public struct StepOutput {
    public var loss: Tensor
    public var metrics: [String: Double]
    public var tokens: Int

    public init(loss: Tensor, metrics: [String: Double] = [:], tokens: Int = 0) {
        self.loss = loss
        self.metrics = metrics
        self.tokens = tokens
    }
}

/// The summary a fine-tuning run ends with.
public struct FineTuneSummary: Encodable, Sendable {
    public var method: String
    public var stop: TrainingStop
    public var steps: Int
    public var trainableParameters: Int
    public var totalParameters: Int
    public var final: [String: Double]
    public var validation: [String: Double]
    public var seconds: Double
    public var output: String?
    public var message: String?

    public init(method: String, result r: FineTuneResult, trainableParameters: Int, totalParameters: Int, seconds: Double,
                output: String?) {
        self.method = method
        stop = r.stop
        steps = r.steps
        self.trainableParameters = trainableParameters
        self.totalParameters = totalParameters
        final = r.last
        validation = r.validation
        self.seconds = seconds
        self.output = output
        message = r.message
    }
}

/// How a `FineTuneLoop.run` ended: completed steps, the last step's metrics and the last validation.
public struct FineTuneResult: Sendable {
    public var stop: TrainingStop
    public var steps: Int
    public var last: [String: Double]
    public var validation: [String: Double]
    public var message: String?
}

/// A fine-tuning loop over an explicit parameter list: zero grads, one or more micro-batches
/// (`gradAccum`), global-norm clipping, the optimizer step with a schedule, metrics JSONL,
/// periodic evaluation, SIGINT and non-finite handling.
public final class FineTuneLoop {
    public let parameters: [NamedParameter]
    public let settings: TrainSettings
    public let optimizer: MultiOptimizer
    public let schedule: LRSchedule
    public var metricsPath: String?
    public var onStep: ((FineTuneRow) -> Void)?
    public var onEval: ((FineTuneRow) -> Void)?

    public init(parameters: [NamedParameter], settings: TrainSettings) throws {
        guard !parameters.isEmpty else { throw ToolkitError("nothing to train: no trainable parameters") }
        self.parameters = parameters
        self.settings = settings
        optimizer = try settings.makeOptimizer(for: parameters)
        schedule = try settings.makeSchedule()
    }

    func append(_ row: FineTuneRow) throws {
        guard let metricsPath else { return }
        let line = try jsonLine(row) + "\n"
        if !FileManager.default.fileExists(atPath: metricsPath) { try AtomicFile.write("", to: metricsPath) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: metricsPath))
        defer { try? h.close() }
        try h.seekToEnd()
        try h.write(contentsOf: Data(line.utf8))
    }

    /// Runs `settings.steps` steps. `step(step, micro)` computes one micro-batch's loss; `evaluate`
    /// (every `evalEvery` steps and at the end) returns validation metrics, reported with a `val_` prefix.
    public func run(step: (Int, Int) throws -> StepOutput,
                    evaluate: (() throws -> [String: Double])? = nil) throws -> FineTuneResult {
        let s = settings
        var last: [String: Double] = [:], validation: [String: Double] = [:]
        var stop = TrainingStop.finished
        var message: String? = nil
        var completed = 0
        for stepIndex in 1...s.steps {
            let t0 = monotonicSeconds()
            let lrMultiplier = schedule.multiplier(at: stepIndex - 1)
            optimizer.setLearningRateMultiplier(lrMultiplier)
            optimizer.zeroGrad()
            var sums: [String: Double] = [:], tokens = 0
            for micro in 0..<s.gradAccum {
                let out = try step(stepIndex, micro)
                let loss = s.gradAccum > 1 ? out.loss * (1 / Float(s.gradAccum)) : out.loss
                try loss.backward()
                sums["loss", default: 0] += Double(out.loss.item())
                for (k, v) in out.metrics { sums[k, default: 0] += v }
                tokens += out.tokens
            }
            var values = sums.mapValues { $0 / Double(s.gradAccum) }
            let (norm, bad) = GradientClipping.normAndClip(parameters, maxNorm: s.gradClip)
            if !(values["loss"] ?? .nan).isFinite || bad != nil {
                stop = .nonFinite
                message = "step \(stepIndex): " + (bad.map { $0.isEmpty ? "gradient norm overflowed (\(norm))"
                                                        : "non-finite gradient in \($0.prefix(3).joined(separator: ", "))" }
                                                   ?? "loss is \(values["loss"] ?? .nan)")
                break
            }
            values["grad_norm"] = norm
            try optimizer.step()
            values["lr"] = s.lr * lrMultiplier
            let dt = monotonicSeconds() - t0
            if tokens > 0 { values["tokens_per_s"] = Double(tokens) / max(dt, 1e-9) }
            last = values
            completed = stepIndex
            let row = FineTuneRow(step: stepIndex, values: values)
            try append(row)
            onStep?(row)
            if let evaluate, (s.evalEvery > 0 && stepIndex % s.evalEvery == 0) || stepIndex == s.steps {
                let v = try GradMode.withoutGrad { try evaluate() }
                validation = v
                let evalRow = FineTuneRow(step: stepIndex, values: Dictionary(uniqueKeysWithValues: v.map { ("val_" + $0.key, $0.value) }))
                try append(evalRow)
                onEval?(evalRow)
            }
            if Interrupt.requested { stop = .interrupted; break }
        }
        return FineTuneResult(stop: stop, steps: completed, last: last, validation: validation, message: message)
    }
}

/// Deterministic example order: a fresh seeded permutation every epoch; step s (1-based) takes
/// examples `(s−1)·B ..< s·B` of the endless stream.
public struct EpochSampler: Sendable {
    public let count: Int
    public let seed: UInt64

    public init(count: Int, seed: UInt64) {
        self.count = count
        self.seed = seed
    }

    func permutation(epoch: Int) -> [Int] {
        var rng = SplitMix64(seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
        var p = Array(0..<count)
        if count > 1 {
            for i in stride(from: count - 1, to: 0, by: -1) { p.swapAt(i, rng.nextInt(below: i + 1)) }
        }
        return p
    }

    /// Example indices of micro-batch `index` (0-based) of `size` examples.
    public func batch(_ index: Int, size: Int) -> [Int] {
        guard count > 0 else { return [] }
        var out: [Int] = []
        var cached: (epoch: Int, perm: [Int])? = nil
        for i in (index * size)..<((index + 1) * size) {
            let epoch = i / count
            if cached?.epoch != epoch { cached = (epoch, permutation(epoch: epoch)) }
            out.append(cached!.perm[i % count])
        }
        return out
    }
}
