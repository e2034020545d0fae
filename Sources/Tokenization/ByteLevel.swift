/// GPT-2's reversible byte → Unicode map (`bytes_to_unicode` in `openai/gpt-2` `encoder.py`),
/// used to write token bytes as printable strings in `vocab.json`, `merges.txt` and
/// `tokenizer.json`.
public enum ByteLevel {
    /// The scalar that stands for each byte.
    public static let scalarForByte: [UInt32] = {
        var map = [UInt32](repeating: 0, count: 256)
        var extra: UInt32 = 0
        for b in 0..<256 {
            if (33...126).contains(b) || (161...172).contains(b) || (174...255).contains(b) {
                map[b] = UInt32(b)
            } else {
                map[b] = 256 + extra
                extra += 1
            }
        }
        return map
    }()

    /// The inverse map, indexed by scalar value (0..<324); -1 where no byte maps.
    static let byteForScalar: [Int16] = {
        var inv = [Int16](repeating: -1, count: 324)
        for (b, s) in scalarForByte.enumerated() { inv[Int(s)] = Int16(b) }
        return inv
    }()

    /// The 256 bytes in the order of their byte-level scalars (HF trainer's alphabet order).
    public static let bytesInScalarOrder: [UInt8] = (0..<256).map { UInt8($0) }.sorted {
        scalarForByte[Int($0)] < scalarForByte[Int($1)]
    }

    /// The byte-level string of raw bytes.
    public static func encode<S: Sequence>(_ bytes: S) -> String where S.Element == UInt8 {
        var s = String.UnicodeScalarView()
        for b in bytes { s.append(Unicode.Scalar(scalarForByte[Int(b)])!) }
        return String(s)
    }

    /// The raw bytes of a byte-level string, or nil if it has a scalar outside the map.
    public static func decode(_ string: String) -> [UInt8]? {
        var out: [UInt8] = []
        out.reserveCapacity(string.utf8.count)
        for s in string.unicodeScalars {
            let v = Int(s.value)
            guard v < byteForScalar.count, byteForScalar[v] >= 0 else { return nil }
            out.append(UInt8(byteForScalar[v]))
        }
        return out
    }
}
