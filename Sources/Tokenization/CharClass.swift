/// Character classes used by the pre-tokenizer regexes, computed once per Unicode scalar.
///
/// Bits: `letter` = general category L*, `number` = N*, `space` = the White_Space property
/// (what `\s` means in the Rust `regex`/Oniguruma engines used by tiktoken and HF tokenizers),
/// `newline` = `\r` or `\n` (also `space`). A scalar with no bit is "other" (`[^\s\p{L}\p{N}]`).
enum CharClass {
    static let letter: UInt8 = 1
    static let number: UInt8 = 2
    static let space: UInt8 = 4
    static let newline: UInt8 = 8

    /// Class of one scalar from the Swift standard library's Unicode tables.
    static func compute(_ v: UInt32) -> UInt8 {
        guard let s = Unicode.Scalar(v) else { return 0 }
        if v == 0x0A || v == 0x0D { return space | newline }
        let p = s.properties
        if p.isWhitespace { return space }
        switch p.generalCategory {
        case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter:
            return letter
        case .decimalNumber, .letterNumber, .otherNumber:
            return number
        default:
            return 0
        }
    }

    /// Classes of the Basic Multilingual Plane, built on first use (65,536 lookups, a few ms)
    /// and never freed; read-only after initialisation.
    nonisolated(unsafe) static let bmp: UnsafePointer<UInt8> = {
        let t = UnsafeMutablePointer<UInt8>.allocate(capacity: 0x10000)
        for v in 0..<0x10000 { t[v] = compute(UInt32(v)) }
        return UnsafePointer(t)
    }()
}

/// Decodes the scalar starting at `p[i]` (valid UTF-8 is assumed: Swift strings always are, and
/// `BPETokenizer.encode(uncheckedUTF8:)`'s callers validate their bytes first)
/// and returns its value and byte length.
@inline(__always)
func decodeScalar(_ p: UnsafePointer<UInt8>, _ i: Int) -> (value: UInt32, length: Int) {
    let b0 = UInt32(p[i])
    if b0 < 0x80 { return (b0, 1) }
    if b0 < 0xE0 { return ((b0 & 0x1F) << 6 | UInt32(p[i + 1] & 0x3F), 2) }
    if b0 < 0xF0 {
        return ((b0 & 0x0F) << 12 | UInt32(p[i + 1] & 0x3F) << 6 | UInt32(p[i + 2] & 0x3F), 3)
    }
    return (
        (b0 & 0x07) << 18 | UInt32(p[i + 1] & 0x3F) << 12 | UInt32(p[i + 2] & 0x3F) << 6
            | UInt32(p[i + 3] & 0x3F), 4
    )
}
