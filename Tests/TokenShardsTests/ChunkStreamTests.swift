import Foundation
import Testing

@testable import TokenShards

@Suite struct ChunkStreamTests {
    /// Pieces of one long document are cut only inside `x\ny` with x, y printable non-space
    /// ASCII, never after a newline that follows whitespace (`\n\nX` must stay whole), and they
    /// concatenate back to the document.
    @Test func cutsOnlyAtPreTokenBoundaries() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        let text = sampleText(42, bytes: 20_000) + " \nA\n\nB\t\nC.\nD"
        try dir.write("doc.txt", text)
        let files = try CorpusFile.expand([dir.file("doc.txt")])
        let stream = try ChunkStream(files: files, separator: [], chunkBytes: 100, start: nil)
        var pieces: [[UInt8]] = []
        while let c = try stream.next() {
            #expect(c.position.atDocumentStart == pieces.isEmpty)
            pieces.append(c.bytes)
        }
        #expect(pieces.count > 100)
        #expect(pieces.joined().elementsEqual(text.utf8))
        func printable(_ b: UInt8) -> Bool { b > 0x20 && b < 0x7F }
        for (a, b) in zip(pieces, pieces.dropFirst()) {
            #expect(a.count >= 2 && a[a.count - 1] == 0x0A && printable(a[a.count - 2]))
            #expect(printable(b[0]))
        }
    }

    /// Restarting at a recorded position yields the same remaining chunks.
    @Test func restartsAtAChunkPosition() throws {
        let dir = try TempDir()
        defer { dir.cleanup() }
        try dir.write("a.txt", sampleText(1, bytes: 3000) + "|SEP|" + sampleText(2, bytes: 900))
        try dir.write("b.txt", sampleText(3, bytes: 2000))
        let files = try CorpusFile.expand([dir.file("a.txt"), dir.file("b.txt")])
        func chunks(from start: CorpusPosition?) throws -> [TextChunk] {
            let s = try ChunkStream(
                files: files, separator: Array("|SEP|".utf8), chunkBytes: 256, start: start)
            var out: [TextChunk] = []
            while let c = try s.next() { out.append(c) }
            return out
        }
        let all = try chunks(from: nil)
        #expect(all.filter(\.position.atDocumentStart).count == 3)
        for k in [1, all.count / 2, all.count - 1] {
            let rest = try chunks(from: all[k].position)
            #expect(rest.map(\.bytes) == all[k...].map(\.bytes))
            #expect(rest.map(\.position) == all[k...].map(\.position))
        }
    }
}
