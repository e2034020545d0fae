import Foundation
import ToolkitSupport

/// Result of checking a shard directory against its manifest.
public struct VerifyReport: Codable, Sendable {
    public struct ShardCheck: Codable, Sendable {
        public var file: String
        public var tokens: Int
        /// nil when the shard is intact; otherwise the message naming the file and offset.
        public var problem: String?
    }

    public var directory: String
    public var shards: [ShardCheck]
    /// Problems not tied to one listed shard (shard files the manifest does not list).
    public var otherProblems: [String]

    public var ok: Bool { otherProblems.isEmpty && shards.allSatisfy { $0.problem == nil } }
    public var problems: [String] { shards.compactMap(\.problem) + otherProblems }

    enum CodingKeys: String, CodingKey {
        case directory, shards
        case otherProblems = "other_problems"
    }
}

/// `toolkit shard verify`: every shard fully decoded and checked against the manifest.
public enum ShardVerifier {
    /// Checks each listed shard (presence, size, header, frames, CRC-32, manifest agreement) and
    /// that no `shard-*.tks` file in the directory is missing from the manifest. Manifest errors
    /// throw; shard problems are collected.
    public static func verify(directory: String, threads: Int = 1) throws -> VerifyReport {
        let manifest = try ShardManifest.load(directory: directory)
        let checks = try parallelMap(manifest.shards, threads: threads) { entry in
            VerifyReport.ShardCheck(
                file: entry.file, tokens: entry.tokens,
                problem: problem {
                    try ShardDataset.checkPresent(entry, directory: directory)
                    _ = try ShardDataset.decode(entry, manifest: manifest, directory: directory)
                })
        }
        let listed = Set(manifest.shards.map(\.file))
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        let unlisted = names.filter { ShardBuilder.isShardFileName($0) && !listed.contains($0) }
            .sorted().map {
                ToolkitError.file(
                    (directory as NSString).appendingPathComponent($0),
                    "shard file is missing from the manifest (left by an interrupted run?)"
                ).message
            }
        return VerifyReport(directory: directory, shards: checks, otherProblems: unlisted)
    }

    private static func problem(_ body: () throws -> Void) -> String? {
        do {
            try body()
            return nil
        } catch {
            return "\(error)"
        }
    }
}
