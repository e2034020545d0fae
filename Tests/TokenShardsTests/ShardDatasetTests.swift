import Foundation
import Testing
import ToolkitSupport

@testable import TokenShards

@Suite struct ShardDatasetTests {
    /// A directory of 7 shards of 1000 tokens (last one shorter), 20% validation.
    func fixture() throws -> (TempDir, [UInt32]) {
        let dir = try TempDir()
        let docs = (0..<4).map { sampleText(UInt64(30 + $0), bytes: 1600) }
        _ = try buildShards(dir, files: docs, valFraction: 0.2)
        return (dir, expectedTokens(docs, ByteTokenEncoder()))
    }

    @Test func batchesAreAFunctionOfSeedAndStep() throws {
        let (dir, _) = try fixture()
        defer { dir.cleanup() }
        let a = try ShardDataset(directory: dir.file("out")).split(.train)
        let b = try ShardDataset(directory: dir.file("out")).split(.train)
        for order in BatchOrder.allCases {
            // b sees the steps in another order, as a resumed run would.
            let steps = Array(0..<40)
            let fromA = try steps.map {
                try a.batch(step: $0, batchSize: 4, seqLen: 16, seed: 7, order: order)
            }
            for s in steps.reversed() {
                #expect(
                    try b.batch(step: s, batchSize: 4, seqLen: 16, seed: 7, order: order)
                        == fromA[s])
            }
            #expect(fromA.allSatisfy { $0.count == 4 * 17 })
        }
        let s1 = try a.batch(step: 3, batchSize: 4, seqLen: 16, seed: 1, order: .random)
        let s2 = try a.batch(step: 3, batchSize: 4, seqLen: 16, seed: 2, order: .random)
        #expect(s1 != s2)
    }

    @Test func windowsComeFromTheStream() throws {
        let (dir, stream) = try fixture()
        defer { dir.cleanup() }
        let dataset = try ShardDataset(directory: dir.file("out"))
        let train = dataset.split(.train)
        let seqLen = 10
        let first = try train.batch(
            step: 0, batchSize: 2, seqLen: seqLen, seed: 0, order: .sequential)
        #expect(
            first == stream[0...(2 * seqLen)].map { Int32($0) }.prefix(seqLen + 1)
                + stream[seqLen...(2 * seqLen)].map { Int32($0) })
        // One random epoch visits every window of the split exactly once.
        let windows = train.windowCount(seqLen: seqLen)
        var seen: [[Int32]] = []
        for step in 0..<windows {
            seen.append(
                try train.batch(step: step, batchSize: 1, seqLen: seqLen, seed: 9, order: .random))
        }
        var sequential: [[Int32]] = []
        for step in 0..<windows {
            sequential.append(
                try train.batch(
                    step: step, batchSize: 1, seqLen: seqLen, seed: 0, order: .sequential))
        }
        #expect(seen != sequential)
        #expect(
            seen.sorted { $0.lexicographicallyPrecedes($1) }
                == sequential.sorted { $0.lexicographicallyPrecedes($1) })
        // Every train window lies before the validation start, every val window after it.
        let valStart = dataset.manifest.split.valStart
        let trainText = stream[0..<valStart].map { Int32($0) }
        for w in sequential.prefix(20) {
            #expect(trainText.windows(ofCount: w.count).contains(w))
        }
    }

    @Test func evaluationBatchesAreFixed() throws {
        let (dir, stream) = try fixture()
        defer { dir.cleanup() }
        let dataset = try ShardDataset(directory: dir.file("out"))
        let val = dataset.split(.val)
        #expect(val.tokenCount == dataset.manifest.split.valTokens)
        var it = try val.evaluationBatches(batchSize: 3, seqLen: 8, maxBatches: 5)
        var batches: [[Int32]] = []
        while let b = try it.next() { batches.append(b) }
        #expect(batches.count == min(5, val.evaluationBatchCount(batchSize: 3, seqLen: 8)))
        let valStart = dataset.manifest.split.valStart
        #expect(batches[0].prefix(9).map { UInt32($0) } == Array(stream[valStart..<valStart + 9]))
        var again = try val.evaluationBatches(batchSize: 3, seqLen: 8, maxBatches: 5)
        _ = try val.batch(step: 11, batchSize: 2, seqLen: 8, seed: 3, order: .random)
        #expect(try again.next() == batches[0])
        expectError(["val split", "not enough"]) {
            _ = try val.evaluationBatches(batchSize: 1000, seqLen: 100)
        }
    }

    @Test func prefetchGivesTheSameBatches() throws {
        let (dir, _) = try fixture()
        defer { dir.cleanup() }
        let with = try ShardDataset(directory: dir.file("out"), prefetch: true, cachedShards: 2)
        let without = try ShardDataset(directory: dir.file("out"), prefetch: false, cachedShards: 2)
        for order in BatchOrder.allCases {
            for step in 0..<60 {
                let a = try with.split(.train).batch(
                    step: step, batchSize: 8, seqLen: 32, seed: 5, order: order)
                let b = try without.split(.train).batch(
                    step: step, batchSize: 8, seqLen: 32, seed: 5, order: order)
                #expect(a == b)
            }
        }
        with.cache.waitIdle()
        #expect(with.cache.prefetchedLoads > 0)
        #expect(without.cache.prefetchedLoads == 0)
    }

    @Test func tokenizerMismatchIsRefusedUnlessAllowed() throws {
        let (dir, _) = try fixture()
        defer { dir.cleanup() }
        let out = dir.file("out")
        expectError(["manifest.json", "builtin-bytes-x1", "other-hash"]) {
            _ = try ShardDataset(directory: out, expectedTokenizerHash: "other-hash")
        }
        _ = try ShardDataset(
            directory: out, expectedTokenizerHash: "other-hash", allowMismatch: true)
        _ = try ShardDataset(directory: out, expectedTokenizerHash: "builtin-bytes-x1")
    }

    @Test func damagedDirectoriesAreReported() throws {
        let (dir, _) = try fixture()
        defer { dir.cleanup() }
        let out = dir.file("out")
        let shard2 = out + "/shard-000002.tks"
        var bytes = try ShardCodec.readBytes(shard2)
        // A flipped byte: verify and the loader both name the file.
        bytes[bytes.count / 2] ^= 0x01
        try Data(bytes).write(to: URL(fileURLWithPath: shard2))
        let report = try ShardVerifier.verify(directory: out)
        #expect(!report.ok)
        #expect(report.problems.count == 1 && report.problems[0].contains("shard-000002.tks"))
        let dataset = try ShardDataset(directory: out, prefetch: false)
        expectError(["shard-000002.tks"]) { _ = try dataset.shardTokens(2) }
        // Truncated: refused when the dataset is opened.
        try Data(bytes.prefix(100)).write(to: URL(fileURLWithPath: shard2))
        expectError(["shard-000002.tks", "offset 100", "truncated"]) {
            _ = try ShardDataset(directory: out)
        }
        // Missing from the manifest / missing on disk.
        try FileManager.default.removeItem(atPath: shard2)
        expectError(["shard-000002.tks", "missing"]) { _ = try ShardDataset(directory: out) }
        try dir.write("out/shard-000002.tks", "")
        try dir.write("out/shard-000099.tks", "")
        let problems = try ShardVerifier.verify(directory: out).problems
        #expect(
            problems.contains {
                $0.contains("shard-000099.tks") && $0.contains("missing from the manifest")
            })
    }

    @Test func manifestValidation() throws {
        let (dir, _) = try fixture()
        defer { dir.cleanup() }
        let path = dir.file("out/manifest.json")
        let original = try String(contentsOfFile: path, encoding: .utf8)
        let cases: [(String, String, [String])] = [
            ("\"first_token\" : 1000", "\"first_token\" : 1001", ["shards[1].first_token"]),
            ("\"format_version\" : 1", "\"format_version\" : 2", ["format_version"]),
            ("\"dtype\" : \"uint16\"", "\"dtype\" : \"uint32\"", ["dtype"]),
            ("\"dtype\" : \"uint16\"", "\"dtype\" : \"int8\"", ["dtype"]),
            ("\"file\" : \"shard-000001.tks\"", "\"file\" : \"../x.tks\"", ["shards[1].file"]),
            ("\"total_tokens\"", "\"total_tokenz\"", ["total_tokens"]),
        ]
        for (old, new, fragments) in cases {
            #expect(original.contains(old))
            try original.replacingOccurrences(of: old, with: new).write(
                toFile: path, atomically: true, encoding: .utf8)
            expectError(["manifest.json"] + fragments) {
                _ = try ShardDataset(directory: dir.file("out"))
            }
        }
        try "{".write(toFile: path, atomically: true, encoding: .utf8)
        expectError(["manifest.json"]) { _ = try ShardDataset(directory: dir.file("out")) }
    }
}

extension Array {
    /// All contiguous sub-arrays of length `n`.
    func windows(ofCount n: Int) -> [[Element]] {
        count < n ? [] : (0...(count - n)).map { Array(self[$0..<$0 + n]) }
    }
}
