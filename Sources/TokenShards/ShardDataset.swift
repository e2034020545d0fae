import Foundation
import ToolkitSupport

/// Which part of the token stream.
public enum DataSplit: String, Codable, Sendable, CaseIterable {
    case train
    case val
}

/// Order in which windows are visited.
public enum BatchOrder: String, Codable, Sendable, CaseIterable {
    /// Shards shuffled per epoch, windows shuffled inside each shard (seeded).
    case random
    /// Shards and windows in stream order.
    case sequential
}

/// A shard directory opened for training and evaluation.
///
/// Opening checks the manifest, the tokenizer hash and every shard file's presence and size;
/// each shard is fully verified (header, zstd frames, CRC-32 against header and manifest) when
/// it is decoded. The next shard a batch sequence needs is decoded on a background thread.
public final class ShardDataset: Sendable {
    public let directory: String
    public let manifest: ShardManifest
    let cache: ShardCache
    private let splits: [DataSplit: ShardSplit]

    /// - Parameters:
    ///   - expectedTokenizerHash: the model's tokenizer hash; a different manifest hash is an
    ///     error unless `allowMismatch`. nil skips the check.
    ///   - prefetch: decode the next shard in the background.
    ///   - cachedShards: decoded shards kept in memory (at least 2).
    public init(
        directory: String, expectedTokenizerHash: String? = nil, allowMismatch: Bool = false,
        prefetch: Bool = true, cachedShards: Int = 3
    ) throws {
        let manifest = try ShardManifest.load(directory: directory)
        if let expected = expectedTokenizerHash, expected != manifest.tokenizer.hash,
            !allowMismatch
        {
            throw ToolkitError.file(
                (directory as NSString).appendingPathComponent(ShardManifest.fileName),
                "shards were made with tokenizer \(manifest.tokenizer.hash), expected \(expected) "
                    + "(re-shard with that tokenizer, or override the check if intended)")
        }
        for entry in manifest.shards {
            try Self.checkPresent(entry, directory: directory)
        }
        self.directory = directory
        self.manifest = manifest
        let shards = manifest.shards
        let cache = ShardCache(capacity: cachedShards) { index in
            try Self.decode(shards[index], manifest: manifest, directory: directory)
        }
        self.cache = cache
        splits = Dictionary(
            uniqueKeysWithValues: DataSplit.allCases.map {
                (
                    $0,
                    ShardSplit(
                        manifest: manifest, directory: directory, cache: cache,
                        prefetch: prefetch, split: $0)
                )
            })
    }

    /// Tokens in all shards.
    public var totalTokens: Int { manifest.totalTokens }

    /// The verified tokens of shard `index`.
    public func shardTokens(_ index: Int) throws -> [UInt32] { try cache.tokens(index) }

    /// The train or validation tokens (the same object on every call).
    public func split(_ split: DataSplit) -> ShardSplit { splits[split]! }

    /// Whether the file of `entry` exists with the size the manifest records.
    static func checkPresent(_ entry: ShardEntry, directory: String) throws {
        let path = (directory as NSString).appendingPathComponent(entry.file)
        guard let attrs = try? FileManager.default.attributesOfItem(atPath: path),
            let size = (attrs[.size] as? NSNumber)?.intValue
        else { throw ToolkitError.file(path, "shard listed in the manifest is missing") }
        if size < entry.compressedBytes {
            throw ToolkitError.file(
                path,
                "truncated shard: manifest says \(entry.compressedBytes) bytes, file has "
                    + "\(size)", offset: size)
        }
        if size > entry.compressedBytes {
            throw ToolkitError.file(
                path, "shard is \(size) bytes, manifest says \(entry.compressedBytes)",
                offset: entry.compressedBytes)
        }
    }

    /// Reads, verifies and decodes one shard, checking it against its manifest entry.
    static func decode(_ entry: ShardEntry, manifest: ShardManifest, directory: String) throws
        -> [UInt32]
    {
        let path = (directory as NSString).appendingPathComponent(entry.file)
        let bytes = try ShardCodec.readBytes(path)
        if bytes.count != entry.compressedBytes {
            try checkPresent(entry, directory: directory)
        }
        let (header, tokens) = try ShardCodec.decode(bytes, path: path)
        let problems = [
            (
                hex32(header.checksum) != entry.crc32,
                "checksum \(hex32(header.checksum)) differs from the manifest's \(entry.crc32)"
            ),
            (
                tokens.count != entry.tokens,
                "holds \(tokens.count) tokens, the manifest says \(entry.tokens)"
            ),
            (
                header.layout != manifest.layout,
                "layout \(header.layout) differs from the manifest's \(manifest.layout)"
            ),
            (
                header.dtype != manifest.dtype,
                "dtype \(header.dtype.rawValue) differs from the manifest's "
                    + manifest.dtype.rawValue
            ),
            (
                !manifest.tokenizer.hash.hasPrefix(header.tokenizerHashPrefix)
                    || header.tokenizerHashPrefix.isEmpty != manifest.tokenizer.hash.isEmpty,
                "was made with another tokenizer (\(header.tokenizerHashPrefix)…)"
            ),
        ]
        if let (_, what) = problems.first(where: { $0.0 }) {
            throw ToolkitError.file(path, what)
        }
        if let bad = tokens.firstIndex(where: { Int($0) >= manifest.tokenizer.vocabSize }) {
            throw ToolkitError.file(
                path, "token \(tokens[bad]) at index \(bad) is outside the vocabulary")
        }
        return tokens
    }
}
