import ToolkitSupport

/// Width of one stored token.
public enum TokenDType: String, Codable, Sendable {
    case uint16
    case uint32

    /// Bytes per token.
    public var width: Int { self == .uint16 ? 2 : 4 }

    /// The narrowest type that holds every id of a vocabulary of `vocabSize` tokens.
    public static func fitting(vocabSize: Int) -> TokenDType {
        vocabSize <= 1 << 16 ? .uint16 : .uint32
    }
}

/// Byte order of the tokens inside each zstd frame.
public enum TokenLayout: String, Codable, Sendable {
    /// Little-endian tokens one after the other.
    case plain
    /// Byte planes: every token's byte 0, then every token's byte 1, … ("shuffle" filter, as in
    /// Blosc/HDF5). The high bytes of a BPE stream are nearly constant, so zstd packs them tightly.
    case shuffled

    var code: UInt8 { self == .plain ? 0 : 1 }
    init?(code: UInt8) {
        switch code {
        case 0: self = .plain
        case 1: self = .shuffled
        default: return nil
        }
    }
}

/// The fixed 64-byte header at the start of every shard file (all integers little-endian).
///
/// ```
/// offset size field
///  0      8   magic "LTKSHARD"
///  8      4   format version (1)
/// 12      1   token width in bytes: 2 (uint16) or 4 (uint32)
/// 13      1   layout: 0 plain, 1 byte-shuffled
/// 14      2   reserved, 0
/// 16      8   token count
/// 24      4   CRC-32 of the uncompressed tokens as plain little-endian bytes
/// 28      4   frame count
/// 32      8   payload bytes (everything after the header)
/// 40      4   tokens per frame (the last frame may hold fewer)
/// 44     12   first 12 bytes of the tokenizer content hash (ASCII, zero padded)
/// 56      4   CRC-32 of the payload bytes (so a flipped byte anywhere is caught)
/// 60      4   CRC-32 of header bytes 0..<60
/// ```
/// The payload is `frame count` frames, each a u32 compressed length followed by one zstd frame.
public struct ShardHeader: Equatable, Sendable {
    /// The most tokens one shard may declare (2^36; shards are written at ~10^8).
    public static let maxTokens: UInt64 = 1 << 36
    /// The largest compressed payload one shard may declare (1 TiB).
    public static let maxPayloadBytes: UInt64 = 1 << 40

    public static let magic: [UInt8] = Array("LTKSHARD".utf8)
    public static let size = 64
    public static let currentVersion: UInt32 = 1

    public var version: UInt32 = ShardHeader.currentVersion
    public var dtype: TokenDType
    public var layout: TokenLayout
    public var tokenCount: UInt64
    public var checksum: UInt32
    public var frameCount: UInt32
    public var payloadBytes: UInt64
    public var frameTokens: UInt32
    public var tokenizerHashPrefix: String
    public var payloadChecksum: UInt32

    /// Bytes of the tokenizer hash kept in the header.
    public static let hashPrefixBytes = 12

    /// The header's 64 bytes.
    public func encoded() -> [UInt8] {
        var b = ShardHeader.magic
        b.appendLE(version)
        b.append(UInt8(dtype.width))
        b.append(layout.code)
        b.append(contentsOf: [0, 0])
        b.appendLE(tokenCount)
        b.appendLE(checksum)
        b.appendLE(frameCount)
        b.appendLE(payloadBytes)
        b.appendLE(frameTokens)
        var hash = Array(tokenizerHashPrefix.utf8.prefix(Self.hashPrefixBytes))
        hash += [UInt8](repeating: 0, count: Self.hashPrefixBytes - hash.count)
        b += hash
        b.appendLE(payloadChecksum)
        b.appendLE(Hashing.crc32(b))
        return b
    }

    /// Parses and checks a header; errors name `path` and the offending byte offset.
    public static func decode(_ bytes: ArraySlice<UInt8>, path: String) throws -> ShardHeader {
        let base = bytes.startIndex
        guard bytes.count >= size else {
            throw ToolkitError.file(
                path, "truncated shard: \(bytes.count) bytes, the header alone needs \(size)",
                offset: bytes.count)
        }
        guard Array(bytes[base..<base + 8]) == magic else {
            throw ToolkitError.file(path, "wrong magic: not a token shard", offset: 0)
        }
        let version: UInt32 = bytes.readLE(at: base + 8)
        guard version == currentVersion else {
            throw ToolkitError.file(
                path,
                "unsupported shard format version \(version) (this build reads "
                    + "\(currentVersion))", offset: 8)
        }
        let stored: UInt32 = bytes.readLE(at: base + 60)
        let computed = Array(bytes[base..<base + 60]).withUnsafeBytes { Hashing.crc32($0) }
        guard stored == computed else {
            throw ToolkitError.file(
                path,
                "header checksum mismatch (stored \(hex32(stored)), computed "
                    + "\(hex32(computed)))", offset: 60)
        }
        let dtype: TokenDType
        switch bytes[base + 12] {
        case 2: dtype = .uint16
        case 4: dtype = .uint32
        case let w: throw ToolkitError.file(path, "invalid token width \(w)", offset: 12)
        }
        guard let layout = TokenLayout(code: bytes[base + 13]) else {
            throw ToolkitError.file(path, "invalid layout \(bytes[base + 13])", offset: 13)
        }
        let hashBytes = bytes[base + 44..<base + 56].prefix { $0 != 0 }
        // Untrusted sizes: bounded before any arithmetic or allocation uses them.
        let limits: [(offset: Int, value: UInt64, max: UInt64, what: String)] = [
            (16, bytes.readLE(at: base + 16), Self.maxTokens, "token count"),
            (32, bytes.readLE(at: base + 32), Self.maxPayloadBytes, "payload size"),
            (40, UInt64(bytes.readLE(at: base + 40) as UInt32), Self.maxTokens, "frame size"),
            (28, UInt64(bytes.readLE(at: base + 28) as UInt32), Self.maxTokens, "frame count"),
        ]
        for l in limits where l.value > l.max {
            throw ToolkitError.file(path, "header \(l.what) \(l.value) is above the largest a shard may hold (\(l.max))", offset: l.offset)
        }
        return ShardHeader(
            version: version, dtype: dtype, layout: layout,
            tokenCount: bytes.readLE(at: base + 16), checksum: bytes.readLE(at: base + 24),
            frameCount: bytes.readLE(at: base + 28), payloadBytes: bytes.readLE(at: base + 32),
            frameTokens: bytes.readLE(at: base + 40),
            tokenizerHashPrefix: String(decoding: hashBytes, as: UTF8.self),
            payloadChecksum: bytes.readLE(at: base + 56))
    }
}

/// Eight lower-case hex digits.
func hex32(_ v: UInt32) -> String {
    let s = String(v, radix: 16)
    return String(repeating: "0", count: 8 - s.count) + s
}

extension Array where Element == UInt8 {
    mutating func appendLE<T: FixedWidthInteger>(_ v: T) {
        Swift.withUnsafeBytes(of: v.littleEndian) { append(contentsOf: $0) }
    }
}

extension Collection where Element == UInt8, Index == Int {
    func readLE<T: FixedWidthInteger>(at offset: Int) -> T {
        var v: T = 0
        for i in 0..<MemoryLayout<T>.size { v |= T(self[offset + i]) << (8 * i) }
        return v
    }
}
