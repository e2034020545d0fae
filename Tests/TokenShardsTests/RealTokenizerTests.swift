import Foundation
import Testing
import ToolkitSupport
import Tokenization

@testable import TokenShards

/// `BPETokenizer` seen as a `TokenEncoder` (the CLI has the same adapter).
struct BPEEncoder: TokenEncoder {
    let tokenizer: BPETokenizer
    var info: TokenizerInfo {
        TokenizerInfo(
            hash: tokenizer.contentHash, vocabSize: tokenizer.vocabSize,
            eotID: tokenizer.endOfTextID ?? 0)
    }
    func encode(_ text: String) -> [Int] { tokenizer.encode(text) }
}

@Suite struct RealTokenizerTests {
    /// Text full of whitespace runs, newlines after spaces and punctuation, digits, contractions
    /// and non-ASCII, sharded in 48-byte pieces: the ids must equal encoding each document whole.
    @Test func chunkedShardingEqualsDirectEncoding() throws {
        var g = SplitMix64(seed: 77)
        let parts = [
            "Hello", " world", ".", "\n", "\n\n", " \n", "\t", "  ", "it's", " 1234", "567",
            "naïve", " café", "!!", "\r\n", "—", "A", "x", "\n  ", "(", ")", "?\n", "don't",
        ]
        var docs: [String] = []
        for _ in 0..<3 {
            var s = ""
            while s.utf8.count < 6000 { s += parts[Int(g.next() % UInt64(parts.count))] }
            docs.append(s)
        }
        // Tokenizers trained on these very documents, so runs like "\n\n", " \n" and "  " are
        // merged tokens and a cut inside a whitespace run would change the ids.
        let tokenizers = try Pretokenizer.allCases.map { pretokenizer in
            var options = BPETrainerOptions(vocabSize: 600)
            options.pretokenizer = pretokenizer
            options.threads = 1
            return try BPETrainer.train(texts: docs, options: options)
        }
        for tokenizer in tokenizers {
            let dir = try TempDir()
            defer { dir.cleanup() }
            let encoder = BPEEncoder(tokenizer: tokenizer)
            _ = try buildShards(
                dir, files: docs, shardTokens: 500, frameTokens: 128, chunkBytes: 48,
                encoder: encoder)
            var expected: [UInt32] = []
            for (i, d) in docs.enumerated() {
                if i > 0 { expected.append(UInt32(encoder.info.eotID)) }
                expected += tokenizer.encode(d).map { UInt32($0) }
            }
            #expect(try allTokens(dir.file("out")) == expected, "\(tokenizer.pretokenizer)")
        }
    }
}
