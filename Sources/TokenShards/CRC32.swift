/// CRC-32 (IEEE, reflected; the same values as `Hashing.crc32` and zlib) with slicing-by-8
/// tables: eight bytes per step instead of one, for checksumming whole shards.
enum CRC32 {
    /// Eight 256-entry tables, flattened: table k at k * 256.
    private static let table: [UInt32] = {
        var t = [[UInt32]](repeating: [UInt32](repeating: 0, count: 256), count: 8)
        for i in 0..<256 {
            var c = UInt32(i)
            for _ in 0..<8 { c = (c & 1) != 0 ? 0xEDB8_8320 ^ (c >> 1) : c >> 1 }
            t[0][i] = c
        }
        for i in 0..<256 {
            for k in 1..<8 { t[k][i] = (t[k - 1][i] >> 8) ^ t[0][Int(t[k - 1][i] & 0xFF)] }
        }
        return t.flatMap { $0 }
    }()

    /// CRC-32 of `buffer`, continuing from `crc`.
    static func checksum(_ buffer: UnsafeRawBufferPointer, crc: UInt32 = 0) -> UInt32 {
        table.withUnsafeBufferPointer { t in
            var c = ~crc
            var i = 0
            let n = buffer.count
            while i + 8 <= n {
                let lo = c ^ buffer.loadUnaligned(fromByteOffset: i, as: UInt32.self).littleEndian
                let hi = buffer.loadUnaligned(fromByteOffset: i + 4, as: UInt32.self).littleEndian
                c =
                    t[7 * 256 + Int(lo & 0xFF)] ^ t[6 * 256 + Int((lo >> 8) & 0xFF)]
                    ^ t[5 * 256 + Int((lo >> 16) & 0xFF)] ^ t[4 * 256 + Int(lo >> 24)]
                    ^ t[3 * 256 + Int(hi & 0xFF)] ^ t[2 * 256 + Int((hi >> 8) & 0xFF)]
                    ^ t[1 * 256 + Int((hi >> 16) & 0xFF)] ^ t[Int(hi >> 24)]
                i += 8
            }
            while i < n {
                c = t[Int((c ^ UInt32(buffer[i])) & 0xFF)] ^ (c >> 8)
                i += 1
            }
            return ~c
        }
    }

    static func checksum(_ bytes: [UInt8], crc: UInt32 = 0) -> UInt32 {
        bytes.withUnsafeBytes { checksum($0, crc: crc) }
    }
}
