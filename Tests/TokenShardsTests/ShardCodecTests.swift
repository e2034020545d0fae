import Foundation
import Testing
import ToolkitSupport

@testable import TokenShards

@Suite struct ShardCodecTests {
    // Lengths around the frame size (8): empty shard, one token, exactly one frame, one frame
    // plus one, several frames with a partial last one, plus random lengths.
    static let lengths = [0, 1, 7, 8, 9, 16, 43] + (0..<4).map { _ in Int.random(in: 0..<200) }

    @Test(arguments: lengths, [TokenDType.uint16, .uint32])
    func roundTrip(length: Int, dtype: TokenDType) throws {
        let maxID = UInt32(dtype == .uint16 ? 65535 : 200_000)
        for layout in [TokenLayout.plain, .shuffled] {
            let tokens = (0..<length).map { _ in UInt32.random(in: 0...maxID) }
            let bytes = try ShardCodec.encode(
                tokens: tokens, dtype: dtype, layout: layout, level: 3, frameTokens: 8,
                tokenizerHash: "abcdef0123456789ffff")
            let (header, decoded) = try ShardCodec.decode(bytes, path: "x.tks")
            #expect(decoded == tokens)
            #expect(header.dtype == dtype && header.layout == layout)
            #expect(header.tokenCount == UInt64(length))
            #expect(header.frameCount == UInt32((length + 7) / 8))
            #expect(header.tokenizerHashPrefix == "abcdef012345")
            let raw = ShardCodec.pack(tokens[...], dtype: dtype)
            #expect(header.checksum == Hashing.crc32(raw))
        }
    }

    @Test func shuffleIsInvertible() {
        let raw = (0..<60).map { UInt8($0) }
        for width in [2, 4] {
            let planes = ShardCodec.shuffle(raw, width: width)
            #expect(planes[1] == raw[width])  // byte 0 of token 1 follows byte 0 of token 0
            #expect(ShardCodec.unshuffle(planes, width: width) == raw)
        }
    }

    func sample() throws -> [UInt8] {
        try ShardCodec.encode(
            tokens: (0..<100).map { UInt32($0 * 7 % 50) }, dtype: .uint16, layout: .shuffled,
            level: 3, frameTokens: 40, tokenizerHash: "h")
    }

    /// Rewrites header bytes and recomputes the header checksum, as a buggy writer would.
    func patchHeader(_ bytes: inout [UInt8], _ patch: (inout [UInt8]) -> Void) {
        patch(&bytes)
        let crc = Hashing.crc32(Array(bytes[0..<60]))
        withUnsafeBytes(of: crc.littleEndian) { bytes.replaceSubrange(60..<64, with: $0) }
    }

    /// Untrusted header sizes (with a valid header checksum) are refused before any arithmetic:
    /// a token count of 2^63 or a payload size near 2^64 must not trap or allocate.
    @Test func absurdHeaderSizesAreRefused() throws {
        for (offset, value, fragment) in [(16, UInt64(1) << 63, "token count"), (32, UInt64.max - 10, "payload size")] {
            var bytes = try sample()
            patchHeader(&bytes) { b in withUnsafeBytes(of: value.littleEndian) { b.replaceSubrange(offset..<(offset + 8), with: $0) } }
            expectError(["a.tks", "offset \(offset)", fragment]) { _ = try ShardCodec.decode(bytes, path: "a.tks") }
        }
    }

    @Test func corruptMagic() throws {
        var bytes = try sample()
        bytes[0] = UInt8(ascii: "X")
        expectError(["a.tks", "offset 0", "wrong magic"]) {
            _ = try ShardCodec.decode(bytes, path: "a.tks")
        }
    }

    @Test func wrongVersion() throws {
        var bytes = try sample()
        patchHeader(&bytes) { $0[8] = 2 }
        expectError(["a.tks", "offset 8", "unsupported shard format version 2"]) {
            _ = try ShardCodec.decode(bytes, path: "a.tks")
        }
    }

    @Test func headerByteFlip() throws {
        var bytes = try sample()
        bytes[20] ^= 1  // token count, without fixing the header checksum
        expectError(["a.tks", "offset 60", "header checksum mismatch"]) {
            _ = try ShardCodec.decode(bytes, path: "a.tks")
        }
    }

    @Test func truncated() throws {
        let bytes = try sample()
        for cut in [10, 64, 70, bytes.count - 1] {
            expectError(["a.tks", "offset \(cut)", "truncated"]) {
                _ = try ShardCodec.decode(Array(bytes[0..<cut]), path: "a.tks")
            }
        }
    }

    @Test func truncatedFrame() throws {
        // The header agrees with the file size, but the last frame's length points past the end.
        var bytes = try sample()
        bytes.removeLast(5)
        patchHeader(&bytes) { b in
            let payload = UInt64(b.count - 64)
            withUnsafeBytes(of: payload.littleEndian) { b.replaceSubrange(32..<40, with: $0) }
        }
        expectError(["a.tks", "truncated frame 2"]) {
            _ = try ShardCodec.decode(bytes, path: "a.tks")
        }
    }

    @Test func payloadByteFlip() throws {
        let clean = try sample()
        for position in stride(from: 64, to: clean.count, by: 7) {
            var bytes = clean
            bytes[position] ^= 0x20
            expectError(["a.tks"]) { _ = try ShardCodec.decode(bytes, path: "a.tks") }
        }
    }

    @Test func checksumMismatch() throws {
        var bytes = try sample()
        patchHeader(&bytes) { $0[24] ^= 0xFF }
        expectError(["a.tks", "offset 24", "checksum mismatch"]) {
            _ = try ShardCodec.decode(bytes, path: "a.tks")
        }
    }

    @Test func dtypeFitsVocabulary() {
        #expect(TokenDType.fitting(vocabSize: 65536) == .uint16)
        #expect(TokenDType.fitting(vocabSize: 65537) == .uint32)
        #expect(TokenDType.fitting(vocabSize: 151_936) == .uint32)
    }
}
