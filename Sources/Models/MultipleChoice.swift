import Foundation
import TensorCore
import ToolkitSupport

/// One multiple-choice item as token ids (HellaSwag and the like): a context, continuations, the
/// right one.
public struct MultipleChoiceItem: Sendable, Equatable {
    public var context: [Int32]
    public var choices: [[Int32]]
    /// Each continuation's length in characters (Unicode scalars, as Python's `len`), for acc_norm.
    public var choiceCharacters: [Int]
    public var gold: Int

    public init(context: [Int32], choices: [[Int32]], choiceCharacters: [Int], gold: Int) {
        self.context = context
        self.choices = choices
        self.choiceCharacters = choiceCharacters
        self.gold = gold
    }
}

/// How one item scored.
public struct MultipleChoiceScore: Sendable, Equatable, Codable {
    /// Each continuation's summed negative log-likelihood (nats) and its token count.
    public var nll: [Double]
    public var tokens: [Int]
    /// The lowest summed NLL (acc), and the lowest NLL per character (acc_norm).
    public var pick: Int
    public var pickNorm: Int
    public var gold: Int

    enum CodingKeys: String, CodingKey {
        case nll, tokens, pick, gold
        case pickNorm = "pick_norm"
    }
}

/// Accuracy over a task file.
public struct MultipleChoiceResult: Sendable, Equatable, Codable {
    public var items: Int
    /// Share of items whose lowest summed NLL is the gold continuation (lm-evaluation-harness `acc`).
    public var accuracy: Double
    /// The same with each NLL divided by its continuation's characters (lm-evaluation-harness `acc_norm`).
    public var normalizedAccuracy: Double
    public var scores: [MultipleChoiceScore]

    enum CodingKeys: String, CodingKey {
        case items, scores
        case accuracy = "acc"
        case normalizedAccuracy = "acc_norm"
    }
}

/// Scores multiple-choice items by continuation likelihood, as lm-evaluation-harness, llm.c and
/// nanochat score HellaSwag: context and continuation ids concatenated (the context's oldest
/// tokens dropped when they do not fit the model's context), one forward pass for all of an
/// item's choices (right-padded; causal attention keeps the padding out of the scored positions),
/// the continuation's log-probabilities summed in Double.
public enum MultipleChoice {
    public static func score(_ model: DecoderModel, _ item: MultipleChoiceItem) throws -> MultipleChoiceScore {
        let limit = model.dims.contextLength, v = model.dims.vocabSize
        try check(item, model)
        var rows: [[Int32]] = [], starts: [Int] = []
        for cont in item.choices {
            let full = item.context + cont
            let cut = max(0, full.count - limit)
            rows.append(Array(full[cut...]))
            starts.append(item.context.count - cut)
        }
        let width = rows.map(\.count).max()!
        let ids = rows.flatMap { $0 + [Int32](repeating: 0, count: width - $0.count) }
        let logits = try GradMode.withoutGrad { try model(ids, batch: rows.count) }.scalars  // [n, width, V]
        var nll = [Double](repeating: 0, count: rows.count)
        logits.withUnsafeBufferPointer { l in
            for (r, cont) in item.choices.enumerated() {
                for (j, t) in cont.enumerated() {
                    let row = l.baseAddress! + (r * width + starts[r] - 1 + j) * v
                    var m = -Float.infinity
                    for i in 0..<v { m = max(m, row[i]) }
                    var sum = 0.0
                    for i in 0..<v { sum += Foundation.exp(Double(row[i] - m)) }
                    nll[r] += Double(m) + Foundation.log(sum) - Double(row[Int(t)])
                }
            }
        }
        let pick = nll.indices.min { nll[$0] < nll[$1] }!
        let pickNorm = nll.indices.min { nll[$0] / Double(max(item.choiceCharacters[$0], 1)) < nll[$1] / Double(max(item.choiceCharacters[$1], 1)) }!
        return MultipleChoiceScore(nll: nll, tokens: item.choices.map(\.count), pick: pick, pickNorm: pickNorm, gold: item.gold)
    }

    /// Throws unless `item` can be scored by `model`: a non-empty context, two or more choices with
    /// a gold index among them, continuations shorter than the context, ids in the vocabulary.
    public static func check(_ item: MultipleChoiceItem, _ model: DecoderModel) throws {
        let limit = model.dims.contextLength, v = model.dims.vocabSize
        guard !item.context.isEmpty else { throw ToolkitError("a multiple-choice item has an empty context") }
        guard item.choices.count >= 2, item.gold >= 0, item.gold < item.choices.count,
              item.choiceCharacters.count == item.choices.count else {
            throw ToolkitError("a multiple-choice item needs two or more choices and a gold index among them")
        }
        for cont in item.choices where cont.isEmpty || cont.count >= limit {
            throw ToolkitError("a continuation of \(cont.count) tokens does not fit the context of \(limit) (with at least one context token)")
        }
        if let bad = (item.context + item.choices.joined()).first(where: { $0 < 0 || Int($0) >= v }) {
            throw ToolkitError("token id \(bad) is outside the vocabulary (0..<\(v))")
        }
    }

    /// Checks every item up front (`check`), naming the first that cannot be scored.
    public static func check(_ items: [MultipleChoiceItem], _ model: DecoderModel) throws {
        for (i, item) in items.enumerated() {
            do { try check(item, model) } catch let e as ToolkitError { throw ToolkitError("task item \(i + 1): \(e.message)") }
        }
    }

    /// Scores every item; `progress` sees the count done.
    public static func evaluate(_ model: DecoderModel, _ items: [MultipleChoiceItem], progress: ((Int) -> Void)? = nil) throws
        -> MultipleChoiceResult
    {
        var scores: [MultipleChoiceScore] = []
        for (i, item) in items.enumerated() {
            scores.append(try score(model, item))
            progress?(i + 1)
        }
        let n = Double(max(scores.count, 1))
        return MultipleChoiceResult(items: scores.count, accuracy: Double(scores.filter { $0.pick == $0.gold }.count) / n,
                                    normalizedAccuracy: Double(scores.filter { $0.pickNorm == $0.gold }.count) / n, scores: scores)
    }
}
