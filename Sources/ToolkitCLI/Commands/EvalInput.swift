import ArgumentParser
import Foundation
import Models
import Tokenization
import ToolkitSupport

/// The sequences `toolkit eval` scores, from a token file, shards or text.
struct EvalInput {
    var sequences: [[Int32]]
    var tokenBytes: ((Int32) -> Int)?

    static func load(tokens: String?, data: String?, text: String?, tokenizer: String?, maxTokens: Int,
                     model: DecoderModel) throws -> EvalInput {
        if let tokens { return EvalInput(sequences: try Evaluation.readTokenFile(tokens), tokenBytes: nil) }
        if let text, let tokenizer {
            let tok = try BPETokenizer.load(path: tokenizer)
            let content: String
            do { content = try String(contentsOfFile: text, encoding: .utf8) } catch {
                throw ToolkitError.file(text, "cannot read as UTF-8 text: \(error.localizedDescription)")
            }
            guard tok.vocabSize <= model.dims.vocabSize else {
                throw ToolkitError("\(tokenizer): vocabulary of \(tok.vocabSize) does not fit the model's \(model.dims.vocabSize)")
            }
            let ids = tok.encode(content).map { Int32($0) }
            return EvalInput(sequences: [ids], tokenBytes: { tok.tokenBytes(Int($0))?.count ?? 0 })
        }
        throw ValidationError("--data needs the shard module (not available in this build)")
    }
}
