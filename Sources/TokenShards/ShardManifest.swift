import Foundation
import ToolkitSupport

/// What the shards were encoded with; recorded in the manifest and checked by readers.
public struct TokenizerInfo: Codable, Sendable, Equatable {
    /// The tokenizer's content hash (readers refuse shards made with another tokenizer).
    public var hash: String
    public var vocabSize: Int
    /// The end-of-text id written between documents.
    public var eotID: Int

    public init(hash: String, vocabSize: Int, eotID: Int) {
        self.hash = hash
        self.vocabSize = vocabSize
        self.eotID = eotID
    }

    enum CodingKeys: String, CodingKey {
        case hash
        case vocabSize = "vocab_size"
        case eotID = "eot_id"
    }
}

/// One shard file as listed in the manifest.
public struct ShardEntry: Codable, Sendable, Equatable {
    /// File name inside the shard directory.
    public var file: String
    public var tokens: Int
    /// Size of the whole file in bytes (header included).
    public var compressedBytes: Int
    /// CRC-32 of the uncompressed tokens (8 hex digits), as in the shard header.
    public var crc32: String
    /// Position of the shard's first token in the whole token stream.
    public var firstToken: Int

    enum CodingKeys: String, CodingKey {
        case file, tokens, crc32
        case compressedBytes = "compressed_bytes"
        case firstToken = "first_token"
    }
}

/// The train/validation split: validation is the token range `valStart..<totalTokens`. With
/// `valDocuments`, that tail holds whole documents chosen from the whole corpus (`shard
/// --val-documents`), and `valFraction` is the share of tokens they came to.
public struct SplitInfo: Codable, Sendable, Equatable {
    public var valFraction: Double
    public var trainTokens: Int
    public var valTokens: Int
    public var valStart: Int
    public var valDocuments: Int?

    public init(valFraction: Double, trainTokens: Int, valTokens: Int, valStart: Int, valDocuments: Int? = nil) {
        self.valFraction = valFraction
        self.trainTokens = trainTokens
        self.valTokens = valTokens
        self.valStart = valStart
        self.valDocuments = valDocuments
    }

    enum CodingKeys: String, CodingKey {
        case valFraction = "val_fraction"
        case trainTokens = "train_tokens"
        case valTokens = "val_tokens"
        case valStart = "val_start"
        case valDocuments = "val_documents"
    }
}

/// `manifest.json` of a shard directory.
public struct ShardManifest: Codable, Sendable, Equatable {
    public static let fileName = "manifest.json"
    public static let formatName = "llmtoolkit-token-shards"

    public var format = ShardManifest.formatName
    public var formatVersion = Int(ShardHeader.currentVersion)
    public var tokenizer: TokenizerInfo
    public var dtype: TokenDType
    public var layout: TokenLayout
    public var zstdLevel: Int
    public var shardTokens: Int
    public var frameTokens: Int
    public var totalTokens: Int
    public var documents: Int
    public var invalidUTF8BytesSkipped: Int
    public var shards: [ShardEntry]
    public var split: SplitInfo

    enum CodingKeys: String, CodingKey {
        case format, tokenizer, dtype, layout, documents, shards, split
        case formatVersion = "format_version"
        case zstdLevel = "zstd_level"
        case shardTokens = "shard_tokens"
        case frameTokens = "frame_tokens"
        case totalTokens = "total_tokens"
        case invalidUTF8BytesSkipped = "invalid_utf8_bytes_skipped"
    }

    /// Sum of the shard files' sizes.
    public var compressedBytes: Int { shards.reduce(0) { $0 + $1.compressedBytes } }

    /// Loads and validates `DIR/manifest.json`.
    public static func load(directory: String) throws -> ShardManifest {
        let path = (directory as NSString).appendingPathComponent(fileName)
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolkitError.file(
                path,
                "cannot read the shard manifest (is \(directory) a "
                    + "directory written by `toolkit shard`?)")
        }
        let manifest: ShardManifest
        do {
            manifest = try JSONDecoder().decode(ShardManifest.self, from: data)
        } catch let DecodingError.keyNotFound(key, context) {
            throw ToolkitError.file(path, "missing key \(keyPath(context.codingPath + [key]))")
        } catch let DecodingError.typeMismatch(_, context) {
            throw ToolkitError.file(path, "wrong type at \(keyPath(context.codingPath))")
        } catch let DecodingError.dataCorrupted(context) {
            throw ToolkitError.file(
                path, "invalid value at \(keyPath(context.codingPath)): \(context.debugDescription)"
            )
        } catch {
            throw ToolkitError.file(path, "invalid manifest: \(error)")
        }
        try manifest.validate(path: path)
        return manifest
    }

    private static func keyPath(_ keys: [any CodingKey]) -> String {
        keys.isEmpty
            ? "(root)"
            : keys.map { $0.intValue.map { "[\($0)]" } ?? $0.stringValue }
                .joined(separator: ".")
    }

    /// Checks internal consistency; errors name `path` and the key.
    public func validate(path: String) throws {
        func fail(_ key: String, _ what: String) -> ToolkitError {
            ToolkitError.file(path, "\(key): \(what)")
        }
        guard format == Self.formatName else { throw fail("format", "expected \(Self.formatName)") }
        guard formatVersion == Int(ShardHeader.currentVersion) else {
            throw fail("format_version", "unsupported version \(formatVersion)")
        }
        guard tokenizer.vocabSize > 0, (0..<tokenizer.vocabSize).contains(tokenizer.eotID) else {
            throw fail("tokenizer", "vocab_size \(tokenizer.vocabSize) / eot_id \(tokenizer.eotID)")
        }
        guard dtype == TokenDType.fitting(vocabSize: tokenizer.vocabSize) else {
            throw fail(
                "dtype", "\(dtype.rawValue) does not match vocab_size \(tokenizer.vocabSize)")
        }
        guard shardTokens > 0, frameTokens > 0 else {
            throw fail("shard_tokens", "shard_tokens and frame_tokens must be positive")
        }
        guard !shards.isEmpty else { throw fail("shards", "the manifest lists no shards") }
        var position = 0
        var names = Set<String>()
        for (i, s) in shards.enumerated() {
            let key = "shards[\(i)]"
            guard !s.file.isEmpty, !s.file.contains("/"), !s.file.hasPrefix("."),
                names.insert(s.file).inserted
            else { throw fail("\(key).file", "invalid or repeated file name \"\(s.file)\"") }
            guard s.tokens >= 0, s.tokens <= shardTokens else {
                throw fail("\(key).tokens", "\(s.tokens) is outside 0...\(shardTokens)")
            }
            guard s.firstToken == position else {
                throw fail("\(key).first_token", "\(s.firstToken), expected \(position)")
            }
            guard s.compressedBytes >= ShardHeader.size, UInt32(s.crc32, radix: 16) != nil else {
                throw fail(key, "invalid compressed_bytes or crc32")
            }
            position += s.tokens
        }
        guard position == totalTokens else {
            throw fail("total_tokens", "\(totalTokens), but the shards hold \(position)")
        }
        guard split.valFraction >= 0, split.valFraction < 1 else {
            throw fail("split.val_fraction", "\(split.valFraction) is outside [0, 1)")
        }
        guard split.valStart >= 0, split.valStart <= totalTokens,
            split.trainTokens == split.valStart, split.valTokens == totalTokens - split.valStart
        else { throw fail("split", "inconsistent with total_tokens \(totalTokens)") }
    }
}
