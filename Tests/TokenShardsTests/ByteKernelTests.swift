import CKernels
import Foundation
import Testing
import ToolkitSupport

@testable import TokenShards

/// CRC-32 (carry-less multiplication and table paths) and the UTF-8 validator, against
/// independent references: a bit-at-a-time CRC and the Swift standard library's validation.
@Suite struct ByteKernelTests {
    /// CRC-32 one bit at a time, straight from the reflected polynomial.
    static func bitwiseCRC(_ bytes: ArraySlice<UInt8>, crc: UInt32 = 0) -> UInt32 {
        var c = ~crc
        for b in bytes {
            c ^= UInt32(b)
            for _ in 0..<8 { c = (c & 1) != 0 ? (c >> 1) ^ 0xEDB8_8320 : c >> 1 }
        }
        return ~c
    }

    static func random(_ n: Int, seed: UInt64) -> [UInt8] {
        var rng = SplitMix64(seed: seed)
        return (0..<n).map { _ in UInt8(truncatingIfNeeded: rng.next()) }
    }

    @Test func crcKnownValues() {
        #expect(Hashing.crc32(Array("".utf8)) == 0)
        #expect(Hashing.crc32(Array("123456789".utf8)) == 0xCBF4_3926)
        let fox = Array("The quick brown fox jumps over the lazy dog".utf8)
        #expect(Hashing.crc32(fox) == 0x414F_A339)
    }

    /// Every length up to 300 (the folding path starts at 64 bytes; 16-byte tails and byte tails
    /// follow) at every misalignment within 16 bytes, both paths, against the bitwise reference.
    @Test func crcMatchesBitwiseReference() {
        let data = Self.random(300 + 16, seed: 7)
        for offset in 0..<16 {
            for length in 0...300 {
                let slice = data[offset..<offset + length]
                let expected = Self.bitwiseCRC(slice)
                let (fast, portable) = slice.withUnsafeBytes {
                    (
                        Hashing.crc32($0),
                        tk_crc32_portable(0, $0.baseAddress, $0.count)
                    )
                }
                #expect(fast == expected, "offset \(offset) length \(length)")
                #expect(portable == expected, "offset \(offset) length \(length)")
            }
        }
    }

    @Test func crcContinuesAcrossPieces() {
        let data = Self.random(1 << 20, seed: 11)
        let whole = Hashing.crc32(data)
        #expect(whole == Self.bitwiseCRC(data[...]))
        for cut in [0, 1, 63, 64, 4095, 500_001, data.count] {
            let first = Hashing.crc32(Array(data[..<cut]))
            #expect(Hashing.crc32(Array(data[cut...]), crc: first) == whole, "cut \(cut)")
        }
    }

    /// The first invalid offset the validator reports, checked against the standard library:
    /// nil exactly when `String(validating:)` accepts the bytes, and the same position as the
    /// first sequence the stdlib's parser rejects.
    static func expectAgreesWithStdlib(_ bytes: [UInt8], _ label: String) {
        let offset = bytes.withUnsafeBufferPointer { tk_utf8_invalid_offset($0.baseAddress, $0.count) }
        let valid = String(validating: bytes, as: UTF8.self) != nil
        #expect((offset < 0) == valid, "\(label): \(bytes.prefix(40))")
        let firstBad = bytes.withUnsafeBufferPointer { utf8Skipping($0).firstBad }
        #expect(offset < 0 ? firstBad == nil : firstBad == offset, "\(label)")
    }

    @Test func utf8EdgeCases() {
        let cases: [(String, [UInt8])] = [
            ("empty", []),
            ("ascii", Array("hello, world".utf8)),
            ("two-byte", [0xC3, 0xA9]),
            ("three-byte", [0xE2, 0x82, 0xAC]),
            ("four-byte", [0xF0, 0x9F, 0x98, 0x80]),
            ("max scalar", [0xF4, 0x8F, 0xBF, 0xBF]),
            ("overlong 2", [0xC0, 0x80]),
            ("overlong C1", [0xC1, 0xBF]),
            ("overlong 3", [0xE0, 0x80, 0x80]),
            ("overlong 4", [0xF0, 0x80, 0x80, 0x80]),
            ("surrogate", [0xED, 0xA0, 0x80]),
            ("last before surrogates", [0xED, 0x9F, 0xBF]),
            ("above max", [0xF4, 0x90, 0x80, 0x80]),
            ("F5", [0xF5, 0x80, 0x80, 0x80]),
            ("FF", [0xFF]),
            ("lone continuation", [0x41, 0x80, 0x41]),
            ("truncated 2", [0x41, 0xC3]),
            ("truncated 3", [0x41, 0xE2, 0x82]),
            ("truncated 4", [0x41, 0xF0, 0x9F, 0x98]),
            ("bad second continuation", [0xE2, 0x82, 0x41]),
            ("bad third continuation", [0xF0, 0x9F, 0x98, 0x41]),
        ]
        for (label, bytes) in cases { Self.expectAgreesWithStdlib(bytes, label) }
    }

    /// A bad byte at every position around the 32-byte ASCII steps, and a valid multi-byte
    /// character straddling them.
    @Test func utf8AroundAsciiSteps() {
        for n in [31, 32, 33, 64, 65, 100] {
            for bad in 0..<n {
                var bytes = [UInt8](repeating: 0x61, count: n)
                bytes[bad] = 0x80
                Self.expectAgreesWithStdlib(bytes, "n \(n) bad \(bad)")
            }
            for at in 0..<(n - 2) {
                var bytes = [UInt8](repeating: 0x61, count: n)
                bytes.replaceSubrange(at..<at + 3, with: [0xE2, 0x82, 0xAC])
                Self.expectAgreesWithStdlib(bytes, "n \(n) euro at \(at)")
            }
        }
    }

    /// Random text mixing ASCII runs, valid scalars of every length and random bytes.
    @Test func utf8RandomMixtures() {
        var rng = SplitMix64(seed: 3)
        let pieces: [[UInt8]] = [
            Array("plain ascii text ".utf8), Array("é".utf8), Array("€".utf8), Array("😀".utf8),
            Array("\u{10FFFF}".utf8), [0x80], [0xC3], [0xED, 0xA0, 0x80], [0xF4, 0x90], [0xFE],
        ]
        for trial in 0..<2000 {
            var bytes: [UInt8] = []
            for _ in 0..<Int(rng.next() % 12) {
                let r = Int(rng.next() % UInt64(pieces.count + 3))
                bytes += r < pieces.count ? pieces[r] : Array("word ".utf8)
            }
            Self.expectAgreesWithStdlib(bytes, "trial \(trial)")
        }
    }
}
