import ArgumentParser
import Foundation
import Models
import TokenShards
import Tokenization
import ToolkitSupport

/// The sequences `toolkit eval` scores, from a token file, shards or text.
struct EvalInput {
    var sequences: [[Int32]]
    var tokenBytes: ((Int32) -> Int)?

    /// `tokenizer` must be the shards' own (their manifest's content hash) unless `allowMismatch`:
    /// another one would count the bytes of the wrong strings (bits-per-byte silently wrong).
    static func load(tokens: String?, data: String?, text: String?, tokenizer: String?, maxTokens: Int,
                     model: DecoderModel, allowMismatch: Bool = false) throws -> EvalInput {
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
            return EvalInput(sequences: [ids], tokenBytes: tokenByteCounter(tok))
        }
        // Shards: the validation split (or the train split when there is none), as consecutive
        // windows of the model's context.
        let dataset = try ShardDataset(directory: data!, expectedTokenizerHash: nil)
        guard dataset.manifest.tokenizer.vocabSize <= model.dims.vocabSize else {
            throw ToolkitError("\(data!): shards use a vocabulary of \(dataset.manifest.tokenizer.vocabSize), the model has \(model.dims.vocabSize)")
        }
        if let tokenizer {
            try requireShardTokenizer(try BPETokenizer.load(path: tokenizer), path: tokenizer, shardsHash: dataset.manifest.tokenizer.hash,
                                      shards: data, allowMismatch: allowMismatch)
        }
        let split = dataset.split(.val).tokenCount > 1 ? dataset.split(.val) : dataset.split(.train)
        let t = model.dims.contextLength
        let windows = split.windowCount(seqLen: t)
        guard windows > 0 else {
            throw ToolkitError("\(data!): the \(split.split.rawValue) split has too few tokens for one window of \(t + 1)")
        }
        var limit = windows
        if maxTokens > 0 { limit = min(windows, max(1, maxTokens / t)) }
        var sequences: [[Int32]] = []
        for i in 0..<limit {
            sequences.append(try split.batch(step: i, batchSize: 1, seqLen: t, seed: 0, order: .sequential))
        }
        return EvalInput(sequences: sequences, tokenBytes: try tokenByteCounter(tokenizer))
    }
}

/// UTF-8 byte length per token id (bits-per-byte), from a tokenizer file; nil without one.
func tokenByteCounter(_ path: String?) throws -> ((Int32) -> Int)? {
    guard let path else { return nil }
    return tokenByteCounter(try BPETokenizer.load(path: path))
}

func tokenByteCounter(_ tok: BPETokenizer) -> (Int32) -> Int { { tok.tokenBytes(Int($0))?.count ?? 0 } }
