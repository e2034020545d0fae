import Foundation
import Models
import TokenShards
import ToolkitSupport

/// One micro-batch: `rows` sequences of `input` tokens with aligned `targets` (−100 = ignored).
public struct Batch: Sendable {
    public var input: [Int32]
    public var targets: [Int32]
    public var rows: Int
    public var tokens: Int { input.count }

    public init(input: [Int32], targets: [Int32], rows: Int) {
        self.input = input
        self.targets = targets
        self.rows = rows
    }
}

/// Where training batches come from. Batches are a pure function of (step, micro-step), so a
/// resumed run sees exactly the batches an uninterrupted one would.
public protocol TrainingData {
    /// Tokenizer content hash the data was made with (nil: unknown).
    var tokenizerHash: String? { get }
    /// Largest token id + 1 the data may contain.
    var vocabSize: Int { get }
    func batch(step: Int, micro: Int, settings: TrainSettings, seqLen: Int) throws -> Batch
    /// Fixed held-out batches (empty when there is no validation split).
    func validation(settings: TrainSettings, seqLen: Int) throws -> [Batch]
}

/// zstd token shards (`toolkit shard`): windows of T+1 tokens, random or sequential order.
public struct ShardTrainingData: TrainingData {
    public let dataset: ShardDataset

    public init(directory: String, expectedTokenizerHash: String?, allowMismatch: Bool) throws {
        dataset = try ShardDataset(directory: directory, expectedTokenizerHash: expectedTokenizerHash,
                                   allowMismatch: allowMismatch)
    }

    public var tokenizerHash: String? { dataset.manifest.tokenizer.hash }
    public var vocabSize: Int { dataset.manifest.tokenizer.vocabSize }

    static func split(_ flat: [Int32], rows: Int, seqLen t: Int) -> Batch {
        var input = [Int32](), targets = [Int32]()
        input.reserveCapacity(rows * t)
        targets.reserveCapacity(rows * t)
        for r in 0..<rows {
            let row = flat[(r * (t + 1))..<((r + 1) * (t + 1))]
            input += row.dropLast()
            targets += row.dropFirst()
        }
        return Batch(input: input, targets: targets, rows: rows)
    }

    public func batch(step: Int, micro: Int, settings s: TrainSettings, seqLen: Int) throws -> Batch {
        let index = (step - 1) * s.gradAccum + micro
        let flat = try dataset.split(.train).batch(step: index, batchSize: s.batchSize, seqLen: seqLen, seed: s.seed,
                                                   order: s.order == "sequential" ? .sequential : .random)
        return Self.split(flat, rows: s.batchSize, seqLen: seqLen)
    }

    public func validation(settings s: TrainSettings, seqLen: Int) throws -> [Batch] {
        let val = dataset.split(.val)
        guard val.evaluationBatchCount(batchSize: s.batchSize, seqLen: seqLen) > 0 else { return [] }
        var it = try val.evaluationBatches(batchSize: s.batchSize, seqLen: seqLen, maxBatches: s.evalBatches)
        var out: [Batch] = []
        while let b = try it.next() { out.append(Self.split(b, rows: s.batchSize, seqLen: seqLen)) }
        return out
    }
}

/// `--tokens FILE.json`: equal-length token-id arrays used as one full batch every step; the loss
/// is the mean next-token cross-entropy over all predicted positions (as `toolkit eval`).
///
/// As PyTorch's `model(ids, labels=ids)`, the model reads every token of each sequence, the last one
/// included (its target is ignored, −100): that changes no logit that is scored, but a MoE router
/// also routes the last token, and HF's load-balancing loss counts it.
public struct TokenFileData: TrainingData {
    public let sequences: [[Int32]]
    public let path: String
    /// The full batch, built once.
    let fullBatch: Batch

    public init(path: String) throws {
        sequences = try Evaluation.readTokenFile(path)
        self.path = path
        guard let first = sequences.first, first.count >= 2 else {
            throw ToolkitError.file(path, "needs at least one sequence of two or more tokens")
        }
        if let bad = sequences.firstIndex(where: { $0.count != first.count }) {
            throw ToolkitError.file(path, "sequence \(bad) has \(sequences[bad].count) tokens, sequence 0 has \(first.count): all must be equal")
        }
        fullBatch = Batch(input: sequences.flatMap { $0 }, targets: sequences.flatMap { $0.dropFirst() + [-100] },
                          rows: sequences.count)
    }

    public var tokenizerHash: String? { nil }
    public var vocabSize: Int { Int(sequences.flatMap { $0 }.max() ?? 0) + 1 }
    /// Tokens the model reads per sequence (all of them).
    public var sequenceLength: Int { sequences[0].count }

    public func batch(step: Int, micro: Int, settings: TrainSettings, seqLen: Int) throws -> Batch {
        fullBatch
    }

    public func validation(settings: TrainSettings, seqLen: Int) throws -> [Batch] { [] }
}
