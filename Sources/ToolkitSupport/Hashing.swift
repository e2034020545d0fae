import CKernels
/// Non-cryptographic hashes for content identity and checksums.
public enum Hashing {
    /// 64-bit FNV-1a over bytes. Used for content hashes of small files (tokenizers, recipes).
    public static func fnv1a64<S: Sequence>(_ bytes: S, seed: UInt64 = 0xcbf2_9ce4_8422_2325)
        -> UInt64 where S.Element == UInt8
    {
        var h = seed
        for b in bytes {
            h ^= UInt64(b)
            h = h &* 0x0000_0100_0000_01B3
        }
        return h
    }

    /// CRC-32 (IEEE 802.3, reflected, as zlib's `crc32`) over a raw buffer, continuing from `crc`.
    /// Carry-less multiplication (64 bytes per step) where the CPU has it, else slicing-by-8 tables.
    public static func crc32(_ buffer: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        tk_crc32(crc, buffer.baseAddress, buffer.count)
    }

    /// CRC-32 of a byte array.
    public static func crc32(_ bytes: [UInt8], crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { crc32($0, crc: crc) }
    }

    /// Lower-case hexadecimal, zero-padded to 16 digits.
    public static func hex(_ v: UInt64) -> String {
        let s = String(v, radix: 16)
        return String(repeating: "0", count: 16 - s.count) + s
    }
}
