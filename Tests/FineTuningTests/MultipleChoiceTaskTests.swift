import Foundation
import Testing
import _TestSupport
@testable import FineTuning
import Models
import Tokenization

/// `eval --task`: HellaSwag's JSONL and the llm-foundry style read into items, and every choice's
/// score equal to transformers' (scripts/fixtures/make-task-fixtures.py).
@Suite struct MultipleChoiceTaskTests {
    static let tasks = Fixtures.root.appendingPathComponent("tasks")

    @Test(arguments: ["gpt2-tiny", "qwen3-tiny"])
    func scoresMatchTransformers(name: String) throws {
        let expected = try JSONSerialization.jsonObject(with: Data(contentsOf: Self.tasks.appendingPathComponent("expected.json"))) as! [String: Any]
        let reference = (expected["models"] as! [String: Any])[name] as! [String: Any]
        let model = try ModelIO.loadHF(Fixtures.root.appendingPathComponent(name).path)
        let codec = TextCodec(tokenizer: try BPETokenizer.load(path: Self.tasks.appendingPathComponent("tokenizer.json").path))
        let limit = model.dims.contextLength
        for task in ["hellaswag.jsonl", "mc.jsonl"] {
            let items = try MultipleChoiceTask.load(Self.tasks.appendingPathComponent(task).path, codec: codec)
            let ref = reference[task] as! [String: Any]
            let refItems = ref["items"] as! [[String: Any]]
            #expect(items.count == refItems.count)
            let result = try MultipleChoice.evaluate(model, items)
            for (i, (item, r)) in zip(items, refItems).enumerated() {
                let choices = r["choices"] as! [[String: Any]]
                for (c, choice) in choices.enumerated() {
                    // The same ids (the tokenizer agrees; the context is cut on the left to fit).
                    let full = item.context + item.choices[c]
                    #expect(Array(full.suffix(limit)).map(Int.init) == choice["ids"] as! [Int], "\(task) item \(i) choice \(c)")
                    // Per-token loss of the continuation within `Tolerance.Model.loss` of transformers'.
                    let tokens = Double(choice["continuation_tokens"] as! Int)
                    let mine = result.scores[i].nll[c] / tokens, theirs = (choice["nll"] as! Double) / tokens
                    #expect(abs(mine - theirs) < Tolerance.Model.loss, "\(name) \(task) item \(i) choice \(c): \(mine) vs \(theirs)")
                    #expect(item.choiceCharacters[c] == choice["chars"] as! Int)
                }
                #expect(result.scores[i].pick == r["pick"] as! Int && result.scores[i].pickNorm == r["pick_norm"] as! Int)
            }
            #expect(result.accuracy == ref["acc"] as! Double && result.normalizedAccuracy == ref["acc_norm"] as! Double, "\(name) \(task)")
        }
    }

    @Test func badItemsNameTheLine() throws {
        let codec = TextCodec(tokenizer: try BPETokenizer.load(path: Self.tasks.appendingPathComponent("tokenizer.json").path))
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("mc-\(UUID())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        let cases = [
            (#"{"query": "q", "choices": ["a", "b"], "gold": 2}"#, "gold index 2"),
            (#"{"query": "q", "choices": ["a"], "gold": 0}"#, "at least two choices"),
            (#"{"ctx": "c", "endings": ["a", "b"]}"#, "integer 'label'"),
            (#"{"question": "q"}"#, "not a multiple-choice item"),
            ("[1]", "not a JSON object"),
            (#"{"query": "", "choices": ["a", "b"], "gold": 0}"#, "the context is empty"),
        ]
        for (line, message) in cases {
            let path = dir.appendingPathComponent("t.jsonl").path
            try (#"{"query": "fine", "choices": ["a", "b"], "gold": 0}"# + "\n" + line).write(toFile: path, atomically: true, encoding: .utf8)
            #expect(throws: (any Error).self) { _ = try MultipleChoiceTask.load(path, codec: codec) }
            do { _ = try MultipleChoiceTask.load(path, codec: codec) } catch {
                #expect("\(error)".contains("t.jsonl:2") && "\(error)".contains(message), "\(error)")
            }
        }
        // Items a model cannot score are named before any work (train --eval-task checks at its start).
        let model = try ModelIO.loadHF(Fixtures.root.appendingPathComponent("qwen3-tiny").path)
        let long = MultipleChoiceItem(context: [1], choices: [Array(repeating: 5, count: model.dims.contextLength), [6]],
                                      choiceCharacters: [1, 1], gold: 0)
        let outside = MultipleChoiceItem(context: [1], choices: [[5], [Int32(model.dims.vocabSize)]], choiceCharacters: [1, 1], gold: 0)
        for (item, message) in [(long, "does not fit"), (outside, "outside the vocabulary")] {
            do {
                try MultipleChoice.check([item], model)
                Issue.record("accepted: \(message)")
            } catch { #expect("\(error)".contains("task item 1") && "\(error)".contains(message), "\(error)") }
        }
        // HellaSwag's label may also be a string.
        let path = dir.appendingPathComponent("s.jsonl").path
        try #"{"ctx": "c", "endings": ["a", "b"], "label": "1"}"#.write(toFile: path, atomically: true, encoding: .utf8)
        #expect(try MultipleChoiceTask.load(path, codec: codec).first?.gold == 1)
    }
}
