import Foundation
import Testing
import ToolkitSupport

@testable import Checkpointing

/// The shared fixture folder `Tests/Fixtures` (found from this file's path, so every test
/// target can use the same copy without bundling it).
enum Fixtures {
    static let root: URL = {
        var url = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        while url.path != "/" {
            let candidate = url.appendingPathComponent("Fixtures")
            if url.lastPathComponent == "Tests",
                FileManager.default.fileExists(atPath: candidate.path)
            {
                return candidate
            }
            url.deleteLastPathComponent()
        }
        return URL(fileURLWithPath: #filePath).deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Fixtures")
    }()

    static func path(_ relative: String) -> String {
        root.appendingPathComponent(relative).path
    }

    static let models = ["gpt2-tiny", "qwen3-tiny", "qwen3-yarn-tiny", "qwen3-moe-tiny", "llama3-tiny"]

    static func meta(_ model: String) throws -> [String: Any] {
        let data = try Data(contentsOf: URL(fileURLWithPath: path("\(model)/meta.json")))
        return try JSONSerialization.jsonObject(with: data) as? [String: Any] ?? [:]
    }
}

/// A fresh temporary directory, removed by the caller with `cleanup()`.
struct TempDir {
    let url: URL
    init() throws {
        url = FileManager.default.temporaryDirectory
            .appendingPathComponent("ckpt-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    }
    func path(_ name: String) -> String { url.appendingPathComponent(name).path }
    func cleanup() { try? FileManager.default.removeItem(at: url) }
}

/// Builds a safetensors image from a raw header string and data bytes (for corrupt-input tests).
func rawSafetensors(header: String, data: [UInt8], declaredLength: UInt64? = nil) -> Data {
    var out = Data()
    let h = Array(header.utf8)
    withUnsafeBytes(of: (declaredLength ?? UInt64(h.count)).littleEndian) {
        out.append(contentsOf: $0)
    }
    out.append(contentsOf: h)
    out.append(contentsOf: data)
    return out
}

/// Asserts that `body` throws a `ToolkitError` whose message contains every string in `parts`.
func expectError(
    _ parts: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error containing \(parts)", sourceLocation: sourceLocation)
    } catch let e as ToolkitError {
        for p in parts where !e.message.contains(p) {
            Issue.record(
                "error '\(e.message)' does not contain '\(p)'", sourceLocation: sourceLocation)
        }
    } catch {
        Issue.record("unexpected error type: \(error)", sourceLocation: sourceLocation)
    }
}
