import Checkpointing
import Foundation
import Layers
import Models
import Optimizers
import TensorCore
import ToolkitSupport

/// Which base parameters train (the head always does).
public enum TrainableScope: Equatable, Sendable, CustomStringConvertible {
    case head, all
    /// The last n blocks and the final norm.
    case last(Int)

    /// `head`, `all` or `last:N`.
    public init(parsing s: String) throws {
        switch s {
        case "head": self = .head
        case "all": self = .all
        default:
            guard s.hasPrefix("last:"), let n = Int(s.dropFirst(5)), n >= 1 else {
                throw ToolkitError("--trainable: '\(s)' is not head, all or last:N (N ≥ 1)")
            }
            self = .last(n)
        }
    }

    public var description: String {
        switch self {
        case .head: "head"
        case .all: "all"
        case .last(let n): "last:\(n)"
        }
    }

    /// Sets `isTrainable` on every model parameter and returns the trainable ones.
    @discardableResult
    public func apply(to model: DecoderModel) -> [NamedParameter] {
        let all = model.namedParameters()
        switch self {
        case .all: for (_, p) in all { p.isTrainable = true }
        case .head: for (_, p) in all { p.isTrainable = false }
        case .last(let n):
            let first = max(0, model.layers.count - n)
            let prefixes = (first..<model.layers.count).map { "model.layers.\($0)." } + ["model.norm."]
            for (name, p) in all { p.isTrainable = prefixes.contains { name.hasPrefix($0) } }
        }
        return all.filter { $0.parameter.isTrainable }
    }
}

/// A decoder with its LM head replaced by an N-class head on the last non-pad token's final hidden
/// state (LFS ch06). The head is saved as `classifier.safetensors` (`score.weight`, `score.bias`)
/// beside the model checkpoint, with `classifier.json` (labels, pad id).
public final class SequenceClassifier {
    public let model: DecoderModel
    public let head: Linear
    public let labels: [String]
    public let padID: Int32

    public init(model: DecoderModel, labels: [String], padID: Int32, seed: UInt64 = 0) throws {
        guard labels.count >= 2 else { throw ToolkitError("classification needs at least two classes, got \(labels.count)") }
        self.model = model
        self.labels = labels
        self.padID = padID
        var rng = SplitMix64(seed: seed)
        let c = model.dims.hiddenSize
        let bound = 1 / Float(c).squareRoot()  // nn.Linear's default init
        head = Linear(weight: Tensor.uniform([labels.count, c], low: -bound, high: bound, rng: &rng),
                      bias: Tensor.uniform([labels.count], low: -bound, high: bound, rng: &rng))
    }

    public var headParameters: [NamedParameter] { [("score.weight", head.weight), ("score.bias", head.bias!)] }

    /// Logits `[B, N]` from hidden states `[B, T, C]` at each row's last real token (`lengths[b] − 1`).
    public static func lastTokenLogits(hidden: Tensor, lengths: [Int], weight: Tensor, bias: Tensor?) throws -> Tensor {
        let (b, t, c) = (hidden.shape[0], hidden.shape[1], hidden.shape[2])
        guard lengths.count == b, lengths.allSatisfy({ $0 >= 1 && $0 <= t }) else {
            throw ToolkitError("lastTokenLogits: lengths \(lengths) do not fit \(b) rows of \(t) tokens")
        }
        let rows = lengths.enumerated().map { Int32($0.offset * t + $0.element - 1) }
        return try Tensor.linear(hidden.reshaped([b * t, c]).gatherRows(rows), weight: weight, bias: bias)
    }

    /// Right-padded ids `[B, T]` and lengths; texts longer than the context keep their first tokens.
    public func collate(_ seqs: [[Int32]]) -> (ids: [Int32], lengths: [Int], t: Int) {
        let cut = seqs.map { Array($0.prefix(model.dims.contextLength)) }
        let t = max(1, cut.map(\.count).max() ?? 1)
        var ids: [Int32] = []
        for s in cut { ids += s + Array(repeating: padID, count: t - s.count) }
        return (ids, cut.map { max(1, $0.count) }, t)
    }

    /// Class logits `[B, N]` for token sequences (`dropoutSeed`: a training forward with the model's dropout).
    public func logits(_ seqs: [[Int32]], dropoutSeed: UInt64? = nil) throws -> Tensor {
        let (ids, lengths, _) = collate(seqs.map { $0.isEmpty ? [padID] : $0 })
        let h = try model.hiddenStates(ids, batch: seqs.count, dropoutSeed: dropoutSeed)
        return try Self.lastTokenLogits(hidden: h, lengths: lengths, weight: head.weight.value, bias: head.bias?.value)
    }

    /// Mean cross-entropy and accuracy over a batch.
    public func loss(_ seqs: [[Int32]], labels y: [Int32], dropoutSeed: UInt64? = nil) throws -> (loss: Tensor, accuracy: Double) {
        let lg = try logits(seqs, dropoutSeed: dropoutSeed)
        return (try Tensor.crossEntropy(logits: lg, targets: y), Self.accuracy(lg, y))
    }

    static func accuracy(_ logits: Tensor, _ y: [Int32]) -> Double {
        let n = logits.shape[1], v = logits.scalars
        var right = 0
        for (i, label) in y.enumerated() {
            let row = v[(i * n)..<((i + 1) * n)]
            if let best = row.indices.max(by: { row[$0] < row[$1] }), best - i * n == Int(label) { right += 1 }
        }
        return Double(right) / Double(max(y.count, 1))
    }

    /// Loss and accuracy over a labelled set in batches (no gradients).
    public func evaluate(_ seqs: [[Int32]], labels y: [Int32], batchSize: Int) throws -> [String: Double] {
        var loss = 0.0, right = 0.0
        try GradMode.withoutGrad {
            for start in stride(from: 0, to: seqs.count, by: batchSize) {
                let end = min(seqs.count, start + batchSize)
                let (l, a) = try self.loss(Array(seqs[start..<end]), labels: Array(y[start..<end]))
                loss += Double(l.item()) * Double(end - start)
                right += a * Double(end - start)
            }
        }
        let n = Double(max(seqs.count, 1))
        return ["loss": loss / n, "accuracy": right / n]
    }

    /// Class probabilities for one sequence.
    public func probabilities(_ ids: [Int32]) throws -> [Double] {
        try GradMode.withoutGrad { try logits([ids]).softmax().scalars.map(Double.init) }
    }

    /// Writes the model checkpoint plus `classifier.safetensors` and `classifier.json` into `dir`.
    public func save(to dir: String, metadata: [String: String] = [:]) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        try ModelIO.saveCheckpoint(model, to: dir, metadata: metadata)
        var w = SafetensorsWriter(metadata: ["format": "pt", "kind": "classifier"])
        for (name, p) in headParameters { try w.add(name, HostTensor(shape: p.shape, values: p.value.scalars)) }
        try w.write(to: dir + "/classifier.safetensors")
        let json: [String: Any] = ["labels": labels, "num_labels": labels.count, "pad_token_id": Int(padID), "pooling": "last"]
        try AtomicFile.write(try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]),
                             to: dir + "/classifier.json")
    }

    /// Loads a folder written by `save`.
    public static func load(_ dir: String) throws -> SequenceClassifier {
        let path = dir + "/classifier.json"
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolkitError.file(path, "cannot read (is \(dir) a classifier made by toolkit finetune --method classify?)")
        }
        guard let obj = (try? JSONSerialization.jsonObject(with: data)) as? [String: Any],
              let labels = obj["labels"] as? [String], let pad = obj["pad_token_id"] as? Int else {
            throw ToolkitError.file(path, "expected an object with labels (strings) and pad_token_id (integer)")
        }
        let model = try ModelIO.loadCheckpoint(dir)
        let c = try SequenceClassifier(model: model, labels: labels, padID: Int32(clamping: pad))
        let file = dir + "/classifier.safetensors"
        let tensors = try SafetensorsFile(path: file).loadAll()
        for (name, p) in c.headParameters {
            guard let t = tensors[name], t.shape == p.shape else {
                throw ToolkitError.file(file, "tensor \(name) missing or not of shape \(p.shape)")
            }
            try p.assign(Tensor(shape: t.shape, values: t.values))
        }
        return c
    }
}
