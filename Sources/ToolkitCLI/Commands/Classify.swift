import ArgumentParser
import FineTuning
import Foundation
import Models
import ToolkitSupport

struct Classify: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Predict labels with a classifier made by toolkit finetune --method classify.")

    @Option(help: "Classifier folder (checkpoint + classifier.json + classifier.safetensors).") var checkpoint: String
    @Option(help: "Tokenizer file used for training.") var tokenizer: String
    @Option(help: "Text to classify (repeatable).") var text: [String] = []
    @Option(help: "CSV/JSONL of text,label: report accuracy instead.") var data: String?
    @Flag(help: "Print JSON lines.") var json = false

    func validate() throws {
        guard !text.isEmpty || data != nil else { throw ValidationError("give --text \"...\" (repeatable) or --data FILE") }
    }

    struct Prediction: Codable {
        var text: String
        var label: String
        var probabilities: [String: Double]
    }

    struct Score: Codable {
        var examples: Int
        var accuracy: Double
        var loss: Double
    }

    func run() throws {
        let clf = try SequenceClassifier.load(checkpoint)
        let enc = try TextEncoder(path: tokenizer, model: clf.model, padID: Int(clf.padID))
        for t in text {
            let p = try clf.probabilities(enc.encode(t))
            let best = p.indices.max { p[$0] < p[$1] } ?? 0
            let pred = Prediction(text: t, label: clf.labels[best],
                                  probabilities: Dictionary(uniqueKeysWithValues: zip(clf.labels, p).map { ($0, $1) }))
            if json { print(try jsonLine(pred)) } else { print(String(format: "%@\t%.3f\t%@", pred.label, p[best], t)) }
        }
        if let data {
            let set = try LabelledTexts.load(data)
            let index = Dictionary(uniqueKeysWithValues: clf.labels.enumerated().map { ($1, Int32($0)) })
            var ys: [Int32] = []
            for l in set.labels {
                guard let y = index[l] else { throw ToolkitError.file(data, "label '\(l)' is not one of \(clf.labels)") }
                ys.append(y)
            }
            let m = try clf.evaluate(set.texts.map(enc.encode), labels: ys, batchSize: 16)
            let s = Score(examples: ys.count, accuracy: m["accuracy"] ?? 0, loss: m["loss"] ?? .nan)
            if json { print(try jsonLine(s)) } else { print(String(format: "%d examples: accuracy %.4f, loss %.4f", s.examples, s.accuracy, s.loss)) }
        }
    }
}
