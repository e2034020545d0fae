import Foundation
import Models
import Tokenization
import ToolkitSupport

/// A multiple-choice task file (JSON Lines) read into token ids, for `eval --task`,
/// `train --eval-task` and `compare --task`. Each line is one item in either format:
/// - HellaSwag's own: `ctx` (the context), `endings` (the choices), `label` (the gold index, an
///   integer or a string of one); other fields are ignored.
/// - llm-foundry's `local_data` multiple choice: `query`, `choices`, `gold` (also `context`,
///   `choices`, `gold`).
///
/// The context and each continuation (`delimiter` + choice, a space by default, as llm.c and
/// nanochat score HellaSwag) are encoded separately, without special tokens.
public enum MultipleChoiceTask {
    public static func load(_ path: String, codec: TextCodec, delimiter: String = " ") throws -> [MultipleChoiceItem] {
        try JSONL.read(path).map { record, location in
            func fail(_ why: String) -> ToolkitError { ToolkitError("\(location): \(why)") }
            let context: String, choices: [String], gold: Int
            if let ctx = record["ctx"] as? String, let endings = record["endings"] as? [String] {
                context = ctx
                choices = endings
                guard let g = (record["label"] as? Int) ?? (record["label"] as? String).flatMap({ Int($0) }) else {
                    throw fail("a HellaSwag item needs an integer 'label'")
                }
                gold = g
            } else if let query = (record["query"] as? String) ?? (record["context"] as? String), let c = record["choices"] as? [String] {
                context = query
                choices = c
                guard let g = record["gold"] as? Int else { throw fail("an item needs an integer 'gold'") }
                gold = g
            } else {
                throw fail("not a multiple-choice item: expected HellaSwag's ctx/endings/label or query/choices/gold")
            }
            guard choices.count >= 2 else { throw fail("an item needs at least two choices") }
            guard (0..<choices.count).contains(gold) else { throw fail("gold index \(gold) is not one of the \(choices.count) choices") }
            let continuations = choices.map { delimiter + $0 }
            let ids = try continuations.map { try codec.encode($0) }
            guard !ids.contains(where: \.isEmpty) else { throw fail("a choice encodes to no tokens") }
            let contextIDs = try codec.encode(context)
            guard !contextIDs.isEmpty else { throw fail("the context is empty (a choice needs something to follow)") }
            // acc_norm divides by the choice's own length, without the delimiter (lm-evaluation-harness).
            return MultipleChoiceItem(context: contextIDs, choices: ids, choiceCharacters: choices.map(\.unicodeScalars.count), gold: gold)
        }
    }
}
