import Foundation
import Testing
import ToolkitSupport

@testable import TokenShards

/// A fresh temporary directory, removed by `cleanup`.
struct TempDir {
    let path: String
    init() throws {
        path =
            FileManager.default.temporaryDirectory
            .appendingPathComponent("tokenshards-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    }
    func file(_ name: String) -> String { (path as NSString).appendingPathComponent(name) }
    func write(_ name: String, _ text: String) throws {
        try Data(text.utf8).write(to: URL(fileURLWithPath: file(name)))
    }
    func cleanup() { try? FileManager.default.removeItem(atPath: path) }
}

/// Deterministic pseudo-random text with newlines, so long documents get cut into chunks.
func sampleText(_ seed: UInt64, bytes: Int) -> String {
    var g = SplitMix64(seed: seed)
    let words = ["the", "quick", "brown", "fox", "jumps", "über", "lazy", "dog", "naïve", "ç"]
    var s = ""
    while s.utf8.count < bytes {
        let r = g.next()
        s += words[Int(r % UInt64(words.count))]
        s += r % 7 == 0 ? "\n" : (r % 13 == 0 ? "\n\n  " : " ")
    }
    return s
}

/// Every token of a shard directory, in order.
func allTokens(_ dir: String) throws -> [UInt32] {
    let dataset = try ShardDataset(directory: dir, prefetch: false)
    return try (0..<dataset.manifest.shards.count).flatMap { try dataset.shardTokens($0) }
}

/// Expected stream: documents encoded, end-of-text between them.
func expectedTokens(_ docs: [String], _ encoder: ByteTokenEncoder) -> [UInt32] {
    var out: [UInt32] = []
    for (i, d) in docs.enumerated() {
        if i > 0 { out.append(UInt32(encoder.info.eotID)) }
        out += encoder.encode(d).map { UInt32($0) }
    }
    return out
}

/// Writes docs into files of `dir` and shards them into `dir/out`.
func buildShards(
    _ dir: TempDir, files: [String], separator: String? = nil, shardTokens: Int = 1000,
    frameTokens: Int = 300, valFraction: Double = 0.1, chunkBytes: Int = 200,
    encoder: any TokenEncoder = ByteTokenEncoder(), out: String = "out",
    configure: (inout ShardBuildOptions) -> Void = { _ in }
) throws -> ShardBuildReport {
    var inputs: [String] = []
    for (i, text) in files.enumerated() {
        let name = "input-\(i).txt"
        if !FileManager.default.fileExists(atPath: dir.file(name)) { try dir.write(name, text) }
        inputs.append(dir.file(name))
    }
    var options = ShardBuildOptions(inputs: inputs, outputDirectory: dir.file(out))
    options.writer.shardTokens = shardTokens
    options.writer.frameTokens = frameTokens
    options.writer.threads = 2
    options.threads = 2
    options.valFraction = valFraction
    options.separator = separator
    options.chunkBytes = chunkBytes
    configure(&options)
    return try ShardBuilder.build(options, encoder: encoder)
}

/// Expects `body` to throw a ToolkitError whose message contains every fragment.
func expectError(
    _ fragments: [String], sourceLocation: SourceLocation = #_sourceLocation,
    _ body: () throws -> Void
) {
    do {
        try body()
        Issue.record("expected an error containing \(fragments)", sourceLocation: sourceLocation)
    } catch {
        let message = "\(error)"
        for f in fragments {
            #expect(message.contains(f), "\(message) lacks \(f)", sourceLocation: sourceLocation)
        }
    }
}
