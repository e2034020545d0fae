import Foundation
import Models
import Tokenization
import ToolkitSupport

/// A tokenizer bound to a model: encodes text to ids the model's vocabulary covers and knows the
/// end-of-sequence and padding ids.
public struct TextEncoder {
    public let tokenizer: BPETokenizer
    public let path: String
    /// Appended to responses: `<|endoftext|>` when the tokenizer has it, else `<|im_end|>`, else none.
    public let eos: Int32?
    /// Padding id: `--pad-id`, else the EOS id, else 0 (padding positions never reach a loss).
    public let pad: Int32

    public init(path: String, model: DecoderModel, padID: Int? = nil) throws {
        tokenizer = try BPETokenizer.load(path: path)
        self.path = path
        let byName = Dictionary(tokenizer.specialTokens.map { ($0.content, $0.id) }, uniquingKeysWith: { a, _ in a })
        let eosID = tokenizer.endOfTextID ?? byName["<|endoftext|>"] ?? byName["<|im_end|>"]
        eos = eosID.map { Int32($0) }
        pad = Int32(padID ?? eosID ?? 0)
        guard tokenizer.vocabSize <= model.dims.vocabSize else {
            throw ToolkitError("\(path): the tokenizer has \(tokenizer.vocabSize) ids but the model's vocabulary is \(model.dims.vocabSize)")
        }
        guard pad >= 0, Int(pad) < model.dims.vocabSize else {
            throw ToolkitError("pad id \(pad) is outside the model's vocabulary (\(model.dims.vocabSize))")
        }
    }

    public func encode(_ text: String) -> [Int32] { tokenizer.encode(text).map { Int32($0) } }
}

/// Deterministic train/validation split of `n` items: a seeded shuffle, the last `fraction` held out.
public func splitIndices(_ n: Int, fraction: Double, seed: UInt64) -> (train: [Int], validation: [Int]) {
    let perm = EpochSampler(count: n, seed: seed).permutation(epoch: 0)
    let v = fraction > 0 ? min(n - 1, max(1, Int((Double(n) * fraction).rounded()))) : 0
    return (Array(perm.prefix(n - v)), Array(perm.suffix(v)))
}
