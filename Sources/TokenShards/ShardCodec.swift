import Foundation
import ToolkitSupport

/// Encodes token arrays to shard files and decodes them back, verifying everything.
public enum ShardCodec {
    /// Default tokens per zstd frame (one frame per default-sized shard: long frames give zstd more
    /// repeated token sequences to match).
    public static let defaultFrameTokens = 1 << 20

    /// The bytes of a complete shard file holding `tokens`.
    ///
    /// - Parameters:
    ///   - tokens: token ids; each must fit `dtype`.
    ///   - frameTokens: tokens per zstd frame (> 0).
    ///   - level: zstd compression level.
    ///   - tokenizerHash: the tokenizer's content hash; its first 16 bytes go into the header.
    public static func encode(
        tokens: [UInt32], dtype: TokenDType, layout: TokenLayout, level: Int,
        frameTokens: Int = defaultFrameTokens, tokenizerHash: String
    ) throws -> [UInt8] {
        let encoder = try ShardEncoder(level: level)
        try encoder.encode(
            tokens[...], dtype: dtype, layout: layout, frameTokens: frameTokens,
            tokenizerHash: tokenizerHash)
        return encoder.file
    }

    /// Decodes a shard file's bytes, checking header, frame structure, every zstd frame and the
    /// token checksum. Errors name `path` and the byte offset of the problem.
    public static func decode(_ bytes: [UInt8], path: String) throws -> (ShardHeader, [UInt32]) {
        let header = try ShardHeader.decode(bytes[...], path: path)
        let width = header.dtype.width
        let expectedSize = UInt64(ShardHeader.size) + header.payloadBytes
        if UInt64(bytes.count) < expectedSize {
            throw ToolkitError.file(
                path,
                "truncated shard: header promises \(expectedSize) bytes, file has "
                    + "\(bytes.count)", offset: bytes.count)
        }
        if UInt64(bytes.count) > expectedSize {
            throw ToolkitError.file(
                path, "\(UInt64(bytes.count) - expectedSize) unexpected bytes after the payload",
                offset: Int(expectedSize))
        }
        let count = Int(header.tokenCount)
        let frameTokens = Int(header.frameTokens)
        let frameCount = count == 0 ? 0 : (count + max(frameTokens, 1) - 1) / max(frameTokens, 1)
        guard frameTokens > 0 || count == 0, frameCount == Int(header.frameCount) else {
            throw ToolkitError.file(
                path,
                "header is inconsistent: \(count) tokens in \(header.frameCount) frames "
                    + "of \(frameTokens)", offset: 28)
        }
        var tokens = [UInt32](repeating: 0, count: count)
        var offset = ShardHeader.size
        var crc: UInt32 = 0
        var raw = [UInt8]()
        for f in 0..<frameCount {
            guard offset + 4 <= bytes.count else {
                throw ToolkitError.file(path, "truncated frame \(f) length", offset: offset)
            }
            let length = Int(bytes.readLE(at: offset) as UInt32)
            guard offset + 4 + length <= bytes.count else {
                throw ToolkitError.file(
                    path, "truncated frame \(f): needs \(length) bytes", offset: offset)
            }
            let first = f * frameTokens
            let n = min(frameTokens, count - first)
            raw = [UInt8](repeating: 0, count: n * width)
            let problem = bytes.withUnsafeBytes { all in
                raw.withUnsafeMutableBytes { dst in
                    Zstd.decompress(
                        UnsafeRawBufferPointer(rebasing: all[offset + 4..<offset + 4 + length]),
                        into: dst)
                }
            }
            if let problem {
                throw ToolkitError.file(path, "corrupt frame \(f): \(problem)", offset: offset)
            }
            if header.layout == .shuffled { raw = unshuffle(raw, width: width) }
            crc = raw.withUnsafeBytes { Hashing.crc32($0, crc: crc) }
            unpack(raw, dtype: header.dtype, into: &tokens, at: first)
            offset += 4 + length
        }
        guard offset == bytes.count else {
            throw ToolkitError.file(
                path, "payload has \(bytes.count - offset) bytes beyond its frames",
                offset: offset)
        }
        guard crc == header.checksum else {
            throw ToolkitError.file(
                path,
                "checksum mismatch: header says crc32 \(hex32(header.checksum)), tokens "
                    + "have \(hex32(crc))", offset: 24)
        }
        let payloadCRC = bytes.withUnsafeBytes {
            Hashing.crc32(UnsafeRawBufferPointer(rebasing: $0[ShardHeader.size...]))
        }
        guard payloadCRC == header.payloadChecksum else {
            throw ToolkitError.file(
                path,
                "payload checksum mismatch: header says crc32 "
                    + "\(hex32(header.payloadChecksum)), bytes \(ShardHeader.size)..<\(bytes.count) "
                    + "have \(hex32(payloadCRC)) (a changed byte that still decodes)",
                offset: ShardHeader.size)
        }
        return (header, tokens)
    }

    /// Reads and decodes the shard file at `path`.
    public static func read(path: String) throws -> (ShardHeader, [UInt32]) {
        try decode(readBytes(path), path: path)
    }

    /// The whole file as bytes, with a file-naming error when it cannot be read.
    static func readBytes(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ToolkitError.file(path, "cannot read file")
        }
        return [UInt8](data)
    }

    static func pack(_ tokens: ArraySlice<UInt32>, dtype: TokenDType) -> [UInt8] {
        var out: [UInt8] = []
        pack(tokens, dtype: dtype, into: &out)
        return out
    }

    /// Replaces the contents of `out` with the little-endian bytes of `tokens` (reusing its
    /// capacity).
    static func pack(_ tokens: ArraySlice<UInt32>, dtype: TokenDType, into out: inout [UInt8]) {
        let count = tokens.count * dtype.width
        if out.count > count {
            out.removeSubrange(count...)
        } else {
            out.append(contentsOf: repeatElement(0, count: count - out.count))
        }
        out.withUnsafeMutableBytes { dst in
            tokens.withUnsafeBufferPointer { src in
                if dtype == .uint16 {
                    let p = dst.bindMemory(to: UInt16.self)
                    for i in 0..<src.count {
                        p[i] = UInt16(truncatingIfNeeded: src[i]).littleEndian
                    }
                } else {
                    let p = dst.bindMemory(to: UInt32.self)
                    for i in 0..<src.count { p[i] = src[i].littleEndian }
                }
            }
        }
    }

    static func unpack(
        _ raw: [UInt8], dtype: TokenDType, into tokens: inout [UInt32], at start: Int
    ) {
        raw.withUnsafeBytes { src in
            tokens.withUnsafeMutableBufferPointer { dst in
                if dtype == .uint16 {
                    let p = src.bindMemory(to: UInt16.self)
                    for i in 0..<p.count { dst[start + i] = UInt32(UInt16(littleEndian: p[i])) }
                } else {
                    let p = src.bindMemory(to: UInt32.self)
                    for i in 0..<p.count { dst[start + i] = UInt32(littleEndian: p[i]) }
                }
            }
        }
    }

    /// Byte planes: out[plane * n + i] = raw[i * width + plane].
    static func shuffle(_ raw: [UInt8], width: Int) -> [UInt8] {
        let n = raw.count / width
        var out = [UInt8](repeating: 0, count: raw.count)
        raw.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    for plane in 0..<width { dst[plane * n + i] = src[i * width + plane] }
                }
            }
        }
        return out
    }

    /// Inverse of `shuffle`.
    static func unshuffle(_ planes: [UInt8], width: Int) -> [UInt8] {
        let n = planes.count / width
        var out = [UInt8](repeating: 0, count: planes.count)
        planes.withUnsafeBufferPointer { src in
            out.withUnsafeMutableBufferPointer { dst in
                for i in 0..<n {
                    for plane in 0..<width { dst[i * width + plane] = src[plane * n + i] }
                }
            }
        }
        return out
    }
}

/// Encodes shard files on one thread, keeping the zstd context and every buffer across shards
/// (no per-shard allocation: fresh memory costs page faults comparable to compressing it).
final class ShardEncoder {
    private let compressor: ZstdCompressor
    private var raw: [UInt8] = []
    /// The complete shard file written by the last `encode`.
    private(set) var file: [UInt8] = []

    init(level: Int) throws { compressor = try ZstdCompressor(level: level) }

    /// Encodes `tokens` (each must fit `dtype`) into `file`.
    func encode(
        _ tokens: ArraySlice<UInt32>, dtype: TokenDType, layout: TokenLayout, frameTokens: Int,
        tokenizerHash: String
    ) throws {
        precondition(frameTokens > 0, "frameTokens must be positive")
        file.removeAll(keepingCapacity: true)
        file.append(contentsOf: repeatElement(0, count: ShardHeader.size))
        var crc: UInt32 = 0
        var frames: UInt32 = 0
        var start = tokens.startIndex
        while start < tokens.endIndex {
            let end = min(start + frameTokens, tokens.endIndex)
            ShardCodec.pack(tokens[start..<end], dtype: dtype, into: &raw)
            crc = raw.withUnsafeBytes { Hashing.crc32($0, crc: crc) }
            if layout == .shuffled { raw = ShardCodec.shuffle(raw, width: dtype.width) }
            let lengthAt = file.count
            file.appendLE(UInt32(0))
            try raw.withUnsafeBytes { try compressor.compress($0, appendingTo: &file) }
            let length = UInt32(file.count - lengthAt - 4)
            file.withUnsafeMutableBytes {
                $0.storeBytes(of: length.littleEndian, toByteOffset: lengthAt, as: UInt32.self)
            }
            frames += 1
            start = end
        }
        let payloadChecksum = file.withUnsafeBytes {
            Hashing.crc32(UnsafeRawBufferPointer(rebasing: $0[ShardHeader.size...]))
        }
        let header = ShardHeader(
            dtype: dtype, layout: layout, tokenCount: UInt64(tokens.count), checksum: crc,
            frameCount: frames, payloadBytes: UInt64(file.count - ShardHeader.size),
            frameTokens: UInt32(frameTokens),
            tokenizerHashPrefix: String(tokenizerHash.utf8.prefix(ShardHeader.hashPrefixBytes))
                ?? "",
            payloadChecksum: payloadChecksum)
        file.replaceSubrange(0..<ShardHeader.size, with: header.encoded())
    }
}
