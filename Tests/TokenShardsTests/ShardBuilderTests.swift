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

    /// Validation by documents: the chosen documents are whole, come from all over the corpus and
    /// form the tail (after the training documents, in corpus order), so training never sees them;
    /// the choice depends only on the corpus and the seed; a fraction below 1 takes round(f · D).
    @Test func validationDocumentsAreWholeAndHeldOut() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = (0..<40).map { "document \($0): " + sampleText(UInt64(100 + $0), bytes: 150 + 37 * ($0 % 5)) }
        let file = docs.joined(separator: "<|sep|>")
        let report = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 500) { $0.valDocuments = 6; $0.valSeed = 3 }
        let chosen = ValidationDocuments.smallestHashes(6, of: 40, seed: 3).sorted()
        #expect(chosen.count == 6 && chosen.last! - chosen.first! > 10, "\(chosen)")  // spread, not a block
        let kept = docs.indices.filter { !chosen.contains($0) }.map { docs[$0] }
        let encoder = ByteTokenEncoder(), eot = UInt32(encoder.info.eotID)
        // Training documents first, then each chosen document after an end-of-text.
        let want = expectedTokens(kept, encoder) + chosen.flatMap { [eot] + encoder.encode(docs[$0]).map { UInt32($0) } }
        let tokens = try allTokens(dir.file("out"))
        #expect(tokens == want)
        let m = report.manifest
        #expect(m.split.valDocuments == 6 && m.documents == 40)
        #expect(m.split.valStart == expectedTokens(kept, encoder).count && m.split.valTokens == tokens.count - m.split.valStart)
        #expect(try ShardVerifier.verify(directory: dir.file("out")).ok)
        #expect(!FileManager.default.fileExists(atPath: dir.file("out/" + ShardBuilder.heldName)))
        // Deterministic; another seed chooses others; a fraction takes round(f · D) documents.
        let again = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 500, out: "again") {
            $0.valDocuments = 6; $0.valSeed = 3
        }
        #expect(again.manifest == report.manifest)
        #expect(ValidationDocuments.smallestHashes(6, of: 40, seed: 4).sorted() != chosen)
        let fraction = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 500, out: "fraction") {
            $0.valDocuments = 0.1
        }
        #expect(fraction.manifest.split.valDocuments == 4)
        // Holding out none, or all, of the documents is refused.
        for bad in [40.0, 0.001, 2.5] {
            expectError(["--val-documents"]) {
                _ = try buildShards(dir, files: [file], separator: "<|sep|>", out: "bad") { $0.valDocuments = bad }
            }
        }
    }

    /// The smallest-hash choice equals sorting every document's hash.
    @Test func validationChoiceEqualsAFullSort() {
        for (n, total, seed) in [(1, 1000, 0 as UInt64), (17, 1000, 5), (999, 1000, 9), (50, 50_000, 2)] {
            let full = (0..<total).sorted { ValidationDocuments.hash($0, seed: seed) < ValidationDocuments.hash($1, seed: seed) }
            #expect(ValidationDocuments.smallestHashes(n, of: total, seed: seed) == Set(full.prefix(n)), "\(n) of \(total)")
        }
    }

    /// Interrupted after some shards (with documents already held), resumed: the same shards and
    /// manifest as a run that was never interrupted.
    @Test func interruptedRunWithValidationDocumentsResumes() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let docs = (0..<30).map { "doc \($0) " + sampleText(UInt64(200 + $0), bytes: 400) }
        let file = docs.joined(separator: "<|sep|>")
        let configure: (inout ShardBuildOptions) -> Void = { $0.valDocuments = 8; $0.valSeed = 1 }
        let clean = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 700, out: "clean", configure: configure)
        expectError(["interrupted after"]) {
            _ = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 700, out: "resumed") {
                configure(&$0)
                $0.stopAfterJournaledShards = 4
            }
        }
        #expect(FileManager.default.fileExists(atPath: dir.file("resumed/" + ShardBuilder.heldName)))
        let journal = try JSONDecoder().decode(ShardJournal.self, from: Data(contentsOf: URL(fileURLWithPath: dir.file("resumed/journal.json"))))
        let heldAtJournal = try #require(journal.resume.heldTokens)
        #expect(heldAtJournal > 0, "the interruption comes after some documents were held")
        // A held file shorter than the journal names is refused (it would be padded with zeros).
        try FileManager.default.copyItem(atPath: dir.file("resumed"), toPath: dir.file("short"))
        let short = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("short/" + ShardBuilder.heldName)))
        try short.truncate(atOffset: 4)
        try short.close()
        expectError(["fewer than"]) {
            _ = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 700, out: "short", configure: configure)
        }
        // Held tokens written after the journal's point (as a kill would leave them) are cut back.
        let held = try FileHandle(forWritingTo: URL(fileURLWithPath: dir.file("resumed/" + ShardBuilder.heldName)))
        try held.seekToEnd()
        try held.write(contentsOf: Data(repeating: 7, count: 40))
        try held.close()
        let resumed = try buildShards(dir, files: [file], separator: "<|sep|>", shardTokens: 700, out: "resumed", configure: configure)
        #expect(resumed.resumedShards >= 4)
        #expect(resumed.manifest == clean.manifest)
        #expect(try allTokens(dir.file("resumed")) == allTokens(dir.file("clean")))
    }
}
