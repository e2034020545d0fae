import Foundation
import Testing
import _TestSupport
@testable import ToolkitSupport

@Suite struct SupportTests {
    @Test func crc32MatchesZlibCheckValue() {
        #expect(Hashing.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
    }

    @Test func atomicWriteReplacesWholeFile() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID())")
        let path = dir.appendingPathComponent("a/b.txt").path
        try AtomicFile.write("first", to: path)
        try AtomicFile.write("second", to: path)
        #expect(try String(contentsOfFile: path, encoding: .utf8) == "second")
        let leftovers = try FileManager.default.contentsOfDirectory(atPath: dir.appendingPathComponent("a").path)
        #expect(leftovers == ["b.txt"])
    }

    @Test func medianAndSpread() {
        #expect(Stats.median([3, 1, 2]) == 2)
        #expect(Stats.median([4, 1, 2, 3]) == 2.5)
        let (m, s) = Stats.meanStd([1, 2, 3])
        #expect(m == 2 && abs(s - 1) < Tolerance.double)
    }
}
