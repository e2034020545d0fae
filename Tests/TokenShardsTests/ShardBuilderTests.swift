import Foundation
import Testing
import ToolkitSupport

@testable import TokenShards

@Suite struct ShardBuilderTests {
    @Test func wholeFilesAreDocuments() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = [sampleText(1, bytes: 3000), "short", sampleText(2, bytes: 1700)]
        let report = try buildShards(dir, files: docs)
        let m = report.manifest
        #expect(try allTokens(dir.file("out")) == expectedTokens(docs, ByteTokenEncoder()))
        #expect(m.documents == 3)
        #expect(m.shards.dropLast().allSatisfy { $0.tokens == 1000 })
        #expect(m.dtype == .uint16)
        #expect(m.split.valTokens == Int((Double(m.totalTokens) * 0.1).rounded()))
        #expect(try ShardVerifier.verify(directory: dir.file("out")).ok)
    }

    @Test func separatorSplitsDocuments() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = [sampleText(3, bytes: 900), "two", sampleText(4, bytes: 2500), "four"]
        // Empty documents (adjacent and trailing separators) are dropped.
        let file = docs.joined(separator: "<|sep|>") + "<|sep|><|sep|>"
        let report = try buildShards(dir, files: [file, "last"], separator: "<|sep|>")
        #expect(report.manifest.documents == 5)
        #expect(
            try allTokens(dir.file("out")) == expectedTokens(docs + ["last"], ByteTokenEncoder()))
    }

    @Test func uint32ForLargeVocabularies() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let encoder = ByteTokenEncoder(stride: 300)
        let docs = [sampleText(5, bytes: 2000), sampleText(6, bytes: 500)]
        let report = try buildShards(dir, files: docs, encoder: encoder)
        #expect(report.manifest.dtype == .uint32)
        #expect(try allTokens(dir.file("out")) == expectedTokens(docs, encoder))
    }

    @Test func invalidUTF8IsSkippedAndCounted() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        var bytes = Array("good text\n".utf8)
        bytes += [0xFF, 0xC3]  // a stray byte and a truncated two-byte sequence
        bytes += Array("more\n".utf8)
        try Data(bytes).write(to: URL(fileURLWithPath: dir.file("input-0.txt")))
        let report = try buildShards(dir, files: [""])
        #expect(report.manifest.invalidUTF8BytesSkipped == 2)
        #expect(report.firstInvalidUTF8 == "\(dir.file("input-0.txt")) at byte offset 10")
        #expect(
            try allTokens(dir.file("out"))
                == expectedTokens(["good text\nmore\n"], ByteTokenEncoder()))
    }

    @Test func emptyAndUnreadableInput() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        expectError(["empty input"]) { _ = try buildShards(dir, files: ["", ""]) }
        let dir2 = try TempDir()
        defer { dir2.cleanup() }
        expectError(["no tokens"]) { _ = try buildShards(dir2, files: ["<s>"], separator: "<s>") }
        var options = ShardBuildOptions(
            inputs: [dir.file("nope.txt")], outputDirectory: dir.file("o"))
        options.threads = 1
        expectError(["nope.txt", "does not exist"]) {
            _ = try ShardBuilder.build(options, encoder: ByteTokenEncoder())
        }
    }

    @Test func directoriesAreWalkedInOrder() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try FileManager.default.createDirectory(
            atPath: dir.file("corpus/sub"), withIntermediateDirectories: true)
        try dir.write("corpus/b.txt", "bee")
        try dir.write("corpus/a.txt", "ay")
        try dir.write("corpus/sub/c.txt", "sea")
        try dir.write("corpus/.hidden", "no")
        // The output directory inside the input directory is not read back as text.
        var options = ShardBuildOptions(
            inputs: [dir.file("corpus")], outputDirectory: dir.file("corpus/shards"))
        options.threads = 2
        for _ in 0..<2 {
            _ = try ShardBuilder.build(options, encoder: ByteTokenEncoder())
            #expect(
                try allTokens(dir.file("corpus/shards"))
                    == expectedTokens(["ay", "bee", "sea"], ByteTokenEncoder()))
        }
    }

    @Test func interruptedRunResumesToTheSameShards() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = (0..<6).map { sampleText(UInt64(10 + $0), bytes: 1500) }
        let clean = try buildShards(dir, files: docs, out: "clean")
        expectError(["interrupted after"]) {
            _ = try buildShards(dir, files: docs, out: "resumed") {
                $0.stopAfterJournaledShards = 3
            }
        }
        let partial = dir.file("resumed")
        #expect(!FileManager.default.fileExists(atPath: partial + "/manifest.json"))
        // A half-written temporary file and a stray later shard, as a kill would leave them.
        try dir.write("resumed/.shard-000003.tks.123.tmp", "partial")
        try dir.write("resumed/shard-000007.tks", "garbage")
        let resumed = try buildShards(dir, files: docs, out: "resumed")
        #expect(resumed.resumedShards >= 3)
        #expect(resumed.bytesProcessed < resumed.inputBytes)
        #expect(resumed.manifest == clean.manifest)
        #expect(try allTokens(partial) == allTokens(dir.file("clean")))
        let left = try FileManager.default.contentsOfDirectory(atPath: partial)
        #expect(Set(left) == Set(clean.manifest.shards.map(\.file) + ["manifest.json"]))
    }

    @Test func changedSettingsRestartCleanly() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = (0..<4).map { sampleText(UInt64(20 + $0), bytes: 1500) }
        expectError(["interrupted"]) {
            _ = try buildShards(dir, files: docs) { $0.stopAfterJournaledShards = 2 }
        }
        let report = try buildShards(dir, files: docs, shardTokens: 700)
        #expect(report.resumedShards == 0)
        #expect(try allTokens(dir.file("out")) == expectedTokens(docs, ByteTokenEncoder()))
        #expect(try ShardVerifier.verify(directory: dir.file("out")).ok)
    }

    @Test func longLinesWithoutCutPointsStillEncode() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = [
            String(repeating: "x", count: 5000) + "\nA" + String(repeating: "y", count: 300)
        ]
        _ = try buildShards(dir, files: docs, chunkBytes: 64)
        #expect(try allTokens(dir.file("out")) == expectedTokens(docs, ByteTokenEncoder()))
    }
}

/// JSON Lines input: one document per line, the text under a field.
@Suite struct JSONLInputTests {
    static func jsonl(_ docs: [String], field: String = "text") throws -> String {
        var lines: [String] = []
        for (i, d) in docs.enumerated() {
            let record: [String: Any] = [field: d, "id": i, "meta": ["source": "test"]]
            lines.append(String(decoding: try JSONSerialization.data(withJSONObject: record), as: UTF8.self))
        }
        return lines.joined(separator: "\n")
    }

    /// Lines are documents (blank lines and empty texts skipped, CRLF accepted, other fields
    /// ignored, texts longer than a chunk kept whole); *.jsonl files beside plain text files.
    @Test func linesAreDocuments() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = [sampleText(1, bytes: 700), "Ünïcödé — 東京 👩‍💻", "short", sampleText(2, bytes: 450)]
        var text = try Self.jsonl(Array(docs[0..<2])) + "\r\n\n   \n" + #"{"text": ""}"# + "\n" + Self.jsonl(Array(docs[2...]))
        text += "\n"
        try dir.write("corpus.jsonl", text)
        let report = try buildShards(dir, files: ["a plain text file"]) { $0.inputs = [dir.file("corpus.jsonl"), dir.file("input-0.txt")] }
        #expect(report.manifest.documents == 5)
        #expect(try allTokens(dir.file("out")) == expectedTokens(docs + ["a plain text file"], ByteTokenEncoder()))
        // --input-format jsonl reads any name; another field.
        try dir.write("records.txt", try Self.jsonl(docs, field: "body"))
        let other = try buildShards(dir, files: [], out: "out2") {
            $0.inputs = [dir.file("records.txt")]
            $0.jsonl = JSONLInput(files: .all, field: "body")
        }
        #expect(other.manifest.documents == 4)
        #expect(try allTokens(dir.file("out2")) == expectedTokens(docs, ByteTokenEncoder()))
    }

    @Test func interruptedJSONLRunResumesToTheSameShards() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try dir.write("c.jsonl", try Self.jsonl((0..<8).map { sampleText(UInt64(30 + $0), bytes: 900) }))
        let clean = try buildShards(dir, files: [], out: "clean") { $0.inputs = [dir.file("c.jsonl")] }
        expectError(["interrupted after"]) {
            _ = try buildShards(dir, files: [], out: "resumed") {
                $0.inputs = [dir.file("c.jsonl")]
                $0.stopAfterJournaledShards = 3
            }
        }
        let resumed = try buildShards(dir, files: [], out: "resumed") { $0.inputs = [dir.file("c.jsonl")] }
        #expect(resumed.resumedShards >= 3)
        #expect(resumed.manifest == clean.manifest)
        #expect(try allTokens(dir.file("resumed")) == allTokens(dir.file("clean")))
    }

    /// A bad line names the file and the line's byte offset.
    @Test func badLinesNameFileAndOffset() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let good = #"{"text": "fine"}"#
        let cases: [(String, [String])] = [
            (good + "\n{\"text\": \"unterminated", ["bad.jsonl", "offset 17", "not valid JSON"]),
            (good + "\n[1, 2]", ["offset 17", "not a JSON object"]),
            (good + "\n{\"content\": \"x\"}", ["offset 17", "no string field 'text'"]),
            (good + "\n{\"text\": 5}", ["offset 17", "no string field 'text'"]),
        ]
        for (i, (text, fragments)) in cases.enumerated() {
            try dir.write("bad.jsonl", text)
            expectError(fragments) { _ = try buildShards(dir, files: [], out: "o\(i)") { $0.inputs = [dir.file("bad.jsonl")] } }
        }
    }
}
