import Foundation
import Testing
@testable import ToolkitSupport

@Suite struct AtomicFileTests {
    /// I/O errors read as the path and the system's reason, not a Foundation dump (F6).
    @Test func ioErrorsNameThePathAndTheReason() {
        let full = NSError(domain: NSCocoaErrorDomain, code: NSFileWriteUnknownError,
                           userInfo: [NSUnderlyingErrorKey: NSError(domain: NSPOSIXErrorDomain, code: Int(ENOSPC))])
        let e = AtomicFile.ioError("/data/run/step-1/model.safetensors", full)
        #expect("\(e)".contains("/data/run/step-1/model.safetensors") && "\(e)".contains("No space left on device"))
        #expect(!"\(e)".contains("NSCocoaErrorDomain"))
    }

    /// A folder is replaced by moving the old one aside first; replacing and removing leave no
    /// aside or deleting names behind; a device or folder is never written over.
    @Test func foldersAreReplacedAndRemovedSafely() throws {
        let base = FileManager.default.temporaryDirectory.appendingPathComponent("atomic-\(UUID())").path
        try FileManager.default.createDirectory(atPath: base + "/new", withIntermediateDirectories: true)
        try FileManager.default.createDirectory(atPath: base + "/final", withIntermediateDirectories: true)
        try "new".write(toFile: base + "/new/a", atomically: true, encoding: .utf8)
        try "old".write(toFile: base + "/final/a", atomically: true, encoding: .utf8)
        try AtomicFile.replaceDirectory(base + "/new", with: base + "/final")
        #expect(try String(contentsOfFile: base + "/final/a", encoding: .utf8) == "new")
        try AtomicFile.removeDirectory(base + "/final")
        #expect(try FileManager.default.contentsOfDirectory(atPath: base).isEmpty)
        #expect(throws: (any Error).self) { try AtomicFile.write("x", to: "/dev/null") }
        #expect(throws: (any Error).self) { try AtomicFile.write("x", to: base) }
    }
}
