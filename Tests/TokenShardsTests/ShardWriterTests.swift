import Foundation
import Testing

@testable import TokenShards

@Suite struct ShardWriterTests {
    /// Pre-encoded documents of random lengths (some empty) go in; the same stream, with
    /// end-of-text between documents, comes out of the dataset, in fixed-size shards.
    @Test(arguments: [100, 65536 + 5000])
    func documentsRoundTrip(vocabSize: Int) throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let info = TokenizerInfo(hash: "test-hash", vocabSize: vocabSize, eotID: vocabSize - 1)
        var options = ShardWriterOptions()
        options.shardTokens = 997
        options.frameTokens = 250
        options.threads = 3
        let writer = try ShardWriter(directory: dir.path, tokenizer: info, options: options)
        var expected: [UInt32] = []
        for d in 0..<40 {
            let doc = (0..<Int.random(in: 0..<300)).map { _ in
                UInt32.random(in: 0..<UInt32(vocabSize - 1))
            }
            if d > 0 { expected.append(UInt32(vocabSize - 1)) }
            expected += doc
            try writer.appendDocument(doc)
        }
        let manifest = try writer.finish(valFraction: 0.25)
        #expect(manifest.documents == 40)
        #expect(manifest.dtype == TokenDType.fitting(vocabSize: vocabSize))
        #expect(manifest.shards.count == (expected.count + 996) / 997)
        #expect(try allTokens(dir.path) == expected)
        #expect(manifest.split.valTokens + manifest.split.trainTokens == expected.count)
    }

    @Test func outOfRangeIdsAreRejected() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let info = TokenizerInfo(hash: "h", vocabSize: 10, eotID: 9)
        let writer = try ShardWriter(
            directory: dir.path, tokenizer: info, options: ShardWriterOptions())
        expectError(["token id 10", "size 10"]) { try writer.append([10] as [UInt32]) }
        expectError(["token id -1"]) { try writer.append([-1] as [Int]) }
        expectError(["no tokens", "empty"]) { _ = try writer.finish(valFraction: 0) }
    }
}
