import Foundation
import Layers
import Models
import TensorCore
import ToolkitSupport
import Training

/// How response-token log-probabilities combine into a sequence log-probability.
public enum LogProbReduction: String, Sendable, CaseIterable {
    /// Mean over response tokens (LFS `compute_logprobs`; the default).
    case mean
    /// Sum over response tokens (torchtune `get_batch_log_probs`).
    case sum
}

/// One preference pair, tokenized: a prompt and two responses.
public struct PreferencePair: Sendable {
    public var prompt: [Int32]
    public var chosen: [Int32]
    public var rejected: [Int32]

    public init(prompt: [Int32], chosen: [Int32], rejected: [Int32]) {
        self.prompt = prompt
        self.chosen = chosen
        self.rejected = rejected
    }

    func sequence(_ response: [Int32], maxLength: Int) -> MaskedSequence {
        // Keep at least one response token: long prompts lose their beginning.
        let room = max(1, maxLength + 1 - min(response.count, maxLength))
        let p = Array(prompt.suffix(room))
        let s = MaskedSequence(ids: p + response, trainable: Array(repeating: false, count: p.count) + Array(repeating: true, count: response.count))
        return s.truncated(to: maxLength + 1)
    }

    /// Reads JSONL records with string `prompt`, `chosen` and `rejected`.
    public static func load(_ path: String, encode: (String) -> [Int32], eos: Int32?) throws -> [PreferencePair] {
        try JSONL.read(path).map { obj, location in
            guard let p = obj["prompt"] as? String, let c = obj["chosen"] as? String, let r = obj["rejected"] as? String else {
                throw ToolkitError("\(location): needs string keys prompt, chosen and rejected")
            }
            let tail = eos.map { [$0] } ?? []
            let pair = PreferencePair(prompt: encode(p), chosen: encode(c) + tail, rejected: encode(r) + tail)
            guard !pair.chosen.isEmpty, !pair.rejected.isEmpty else { throw ToolkitError("\(location): empty response") }
            return pair
        }
    }
}

/// Direct Preference Optimization (Rafailov et al.; LFS `compute_dpo_loss`, torchtune `DPOLoss`).
public enum DPO {
    /// Sequence log-probabilities `[R]` of the targets from logits `[R, T, V]`; targets `[R·T]` with
    /// −100 for positions outside the response.
    public static func responseLogProbs(logits: Tensor, targets: [Int32], reduction: LogProbReduction) throws -> Tensor {
        let (r, t, v) = (logits.shape[0], logits.shape[1], logits.shape[2])
        var parts: [Tensor] = []
        for row in 0..<r {
            let tg = Array(targets[(row * t)..<((row + 1) * t)])
            let n = tg.filter { $0 != -100 }.count
            guard n > 0 else { throw ToolkitError("DPO: sequence \(row) has no response tokens (prompt too long?)") }
            let ce = try Tensor.crossEntropy(logits: logits.slice(axis: 0, row..<(row + 1)).reshaped([t, v]), targets: tg)
            parts.append(try (ce * (reduction == .mean ? -1 : -Float(n))).reshaped([1]))
        }
        return try Tensor.concat(parts, axis: 0)
    }

    /// Log-probabilities `[R]` of each sequence's trainable tokens under `model`.
    public static func sequenceLogProbs(model: DecoderModel, sequences: [MaskedSequence], padID: Int32,
                                        reduction: LogProbReduction) throws -> Tensor {
        let b = SequenceBatching.pad(sequences, padID: padID, maxLength: model.dims.contextLength)
        let logits = try model(b.input, batch: b.rows)
        return try responseLogProbs(logits: logits, targets: b.targets, reduction: reduction)
    }

    public struct Output {
        /// Mean loss over the pairs.
        public var loss: Tensor
        /// Mean β(log πθ(yw) − log πref(yw)) and the same for yl.
        public var chosenReward: Double
        public var rejectedReward: Double
        /// Mean chosen − rejected reward.
        public var margin: Double
        /// Fraction of pairs whose chosen reward beats the rejected one.
        public var accuracy: Double

        public var metrics: [String: Double] {
            ["reward_chosen": chosenReward, "reward_rejected": rejectedReward, "reward_margin": margin, "preference_accuracy": accuracy]
        }
    }

    /// `L = −(1−ε)·log σ(βz) − ε·log σ(−βz)`, `z = (log πθ(yw) − log πθ(yl)) − (log πref(yw) − log πref(yl))`,
    /// averaged over pairs (ε = label smoothing, 0 = standard DPO). All inputs `[B]`.
    public static func loss(policyChosen: Tensor, policyRejected: Tensor, referenceChosen: Tensor, referenceRejected: Tensor,
                            beta: Float, labelSmoothing: Float = 0) throws -> Output {
        let n = policyChosen.count
        let z = try (policyChosen - policyRejected) - (referenceChosen - referenceRejected)
        // −log σ(x) as the cross-entropy of logits [0, x] with target 1 (stable for any x).
        let pairLogits = try Tensor.concat([Tensor(zeros: [n, 1]), (z * beta).reshaped([n, 1])], axis: 1)
        var loss = try Tensor.crossEntropy(logits: pairLogits, targets: Array(repeating: 1, count: n))
        if labelSmoothing > 0 {
            let flipped = try Tensor.crossEntropy(logits: pairLogits, targets: Array(repeating: 0, count: n))
            loss = try loss * (1 - labelSmoothing) + flipped * labelSmoothing
        }
        let pc = policyChosen.scalars, pr = policyRejected.scalars, rc = referenceChosen.scalars, rr = referenceRejected.scalars
        var chosen = 0.0, rejected = 0.0, wins = 0
        for i in 0..<n {
            let c = Double(beta) * Double(pc[i] - rc[i]), r = Double(beta) * Double(pr[i] - rr[i])
            chosen += c
            rejected += r
            if c > r { wins += 1 }
        }
        let d = Double(max(n, 1))
        return Output(loss: loss, chosenReward: chosen / d, rejectedReward: rejected / d, margin: (chosen - rejected) / d,
                      accuracy: Double(wins) / d)
    }
}

/// A DPO trainer's state: the policy, a frozen copy of its starting weights as the reference, and β.
public final class DPOTrainer {
    public let policy: DecoderModel
    public let reference: DecoderModel
    public var beta: Float
    public var labelSmoothing: Float
    public var reduction: LogProbReduction
    public let padID: Int32

    public init(policy: DecoderModel, beta: Float = 0.1, labelSmoothing: Float = 0, reduction: LogProbReduction = .mean,
                padID: Int32) throws {
        guard beta > 0, beta.isFinite else { throw ToolkitError("DPO beta must be positive, got \(beta)") }
        guard labelSmoothing >= 0, labelSmoothing < 0.5 else { throw ToolkitError("label smoothing must be in [0, 0.5)") }
        self.policy = policy
        reference = try ModelCopy.frozenCopy(policy)
        self.beta = beta
        self.labelSmoothing = labelSmoothing
        self.reduction = reduction
        self.padID = padID
    }

    /// Loss and metrics over a batch of pairs (the policy forward records gradients).
    public func step(_ pairs: [PreferencePair]) throws -> DPO.Output {
        let ctx = policy.dims.contextLength
        let seqs = pairs.map { $0.sequence($0.chosen, maxLength: ctx) } + pairs.map { $0.sequence($0.rejected, maxLength: ctx) }
        let n = pairs.count
        let ref = try GradMode.withoutGrad {
            try DPO.sequenceLogProbs(model: reference, sequences: seqs, padID: padID, reduction: reduction)
        }
        let pol = try DPO.sequenceLogProbs(model: policy, sequences: seqs, padID: padID, reduction: reduction)
        return try DPO.loss(policyChosen: pol.slice(axis: 0, 0..<n), policyRejected: pol.slice(axis: 0, n..<(2 * n)),
                            referenceChosen: ref.slice(axis: 0, 0..<n), referenceRejected: ref.slice(axis: 0, n..<(2 * n)),
                            beta: beta, labelSmoothing: labelSmoothing)
    }

    /// Pair-weighted metrics over a set (no gradients).
    public func evaluate(_ pairs: [PreferencePair], batchSize: Int) throws -> [String: Double] {
        var sums: [String: Double] = [:]
        try GradMode.withoutGrad {
            for start in stride(from: 0, to: pairs.count, by: batchSize) {
                let part = Array(pairs[start..<min(pairs.count, start + batchSize)])
                let o = try step(part)
                let w = Double(part.count)
                sums["loss", default: 0] += Double(o.loss.item()) * w
                for (k, v) in o.metrics { sums[k, default: 0] += v * w }
            }
        }
        return sums.mapValues { $0 / Double(max(pairs.count, 1)) }
    }
}

/// Copies of models.
public enum ModelCopy {
    /// The same architecture and weights, every parameter frozen.
    public static func frozenCopy(_ model: DecoderModel) throws -> DecoderModel {
        let copy = try ModelBuilder.build(model.recipe, initializeWeights: false)
        try ModelIO.assign(ModelIO.hostTensors(model), to: copy, source: "model copy")
        for (_, p) in copy.namedParameters() { p.isTrainable = false }
        return copy
    }
}
