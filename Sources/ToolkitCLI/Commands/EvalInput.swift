import ArgumentParser
import Foundation
import Models
import ToolkitSupport

/// The sequences `toolkit eval` scores, from a token file, shards or text.
struct EvalInput {
    var sequences: [[Int32]]
    var tokenBytes: ((Int32) -> Int)?

    static func load(tokens: String?, data: String?, text: String?, tokenizer: String?, maxTokens: Int,
                     model: DecoderModel) throws -> EvalInput {
        if let tokens { return EvalInput(sequences: try Evaluation.readTokenFile(tokens), tokenBytes: nil) }
        throw ValidationError("--data and --text need the tokenizer and shard modules (not available in this build)")
    }
}
