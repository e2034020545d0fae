import TokenShards
import Tokenization
import ToolkitSupport

/// The tokenizer behind `toolkit shard`, seen through TokenShards' `TokenEncoder`.
enum ShardTokenizer {
    /// Loads a tokenizer file or directory (tokenizer.json, .tiktoken, vocab.json + merges.txt),
    /// or the built-in byte encoder for `builtin:bytes`.
    /// `pretokenizer` picks the regex for formats that do not store one (.tiktoken, vocab.json).
    static func load(_ spec: String, pretokenizer: Pretokenizer? = nil) throws
        -> any TokenEncoder & TokenDecoder
    {
        if spec == "builtin:bytes" { return ByteTokenEncoder() }
        return try BPEShardEncoder(
            BPETokenizer.load(path: spec, pretokenizer: pretokenizer), path: spec)
    }
}

/// Adapts `BPETokenizer` (its own multi-threaded `encodeBatch`) to `TokenEncoder`.
struct BPEShardEncoder: TokenEncoder, TokenDecoder {
    let tokenizer: BPETokenizer
    let info: TokenizerInfo

    init(_ tokenizer: BPETokenizer, path: String) throws {
        guard let eot = tokenizer.endOfTextID else {
            throw ToolkitError.file(
                path, "tokenizer has no end-of-text token to put between documents")
        }
        self.tokenizer = tokenizer
        info = TokenizerInfo(
            hash: tokenizer.contentHash, vocabSize: tokenizer.vocabSize, eotID: eot)
    }

    func encode(_ text: String) -> [Int] { tokenizer.encode(text) }

    func encodeBatch(_ texts: [String], threads: Int) -> [[Int]] {
        tokenizer.encodeBatch(texts, threads: threads)
    }

    func makeSession() -> any TokenEncodingSession { Session(tokenizer: tokenizer) }

    /// Keeps the tokenizer's pre-token cache for the whole run.
    final class Session: TokenEncodingSession {
        let tokenizer: BPETokenizer
        var state = EncoderState()
        init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

        func encode(utf8: UnsafeBufferPointer<UInt8>, into tokens: inout [UInt32]) {
            // The pipeline validated the bytes (TokenEncodingSession's contract).
            tokenizer.encode(uncheckedUTF8: utf8, allowedSpecial: .all, into: &tokens, state: &state)
        }
    }

    func decode(_ ids: [Int]) -> String {
        (try? tokenizer.decode(ids)) ?? "(ids do not decode with this tokenizer)"
    }
}
