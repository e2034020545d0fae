/// NFC for the Qwen HF tokenizer, applied only where it can change something.
///
/// A scalar is "stable" when it has canonical combining class 0, NFC maps it to itself and it
/// cannot compose with the scalar before it (the Unicode NFC_Quick_Check=Maybe set). Text made
/// of stable scalars is already NFC, and NFC of a text equals the concatenation of NFC of its
/// lines, because a line starts after `\n`, a stable scalar. So only lines holding an unstable
/// scalar go through the normaliser: the standard library's (`_nfcCodeUnits`), because
/// Foundation's `precomposedStringWithCanonicalMapping` on Linux corrupts a supplementary-plane
/// starter followed by combining marks (U+10074 U+032D → U+1E71 "ṱ").
enum NFC {
    /// NFC_Quick_Check=Maybe (DerivedNormalizationProps.txt): scalars that may compose with the
    /// preceding one.
    static let maybe: [ClosedRange<UInt32>] = [
        0x0300...0x0304, 0x0306...0x030C, 0x030F...0x030F, 0x0311...0x0311, 0x0313...0x0314,
        0x031B...0x031B, 0x0323...0x0328, 0x032D...0x032E, 0x0330...0x0331, 0x0338...0x0338,
        0x0342...0x0342, 0x0345...0x0345, 0x0653...0x0655, 0x093C...0x093C, 0x09BE...0x09BE,
        0x09D7...0x09D7, 0x0B3E...0x0B3E, 0x0B56...0x0B57, 0x0BBE...0x0BBE, 0x0BD7...0x0BD7,
        0x0C56...0x0C56, 0x0CC2...0x0CC2, 0x0CD5...0x0CD6, 0x0D3E...0x0D3E, 0x0D57...0x0D57,
        0x0DCA...0x0DCA, 0x0DCF...0x0DCF, 0x0DDF...0x0DDF, 0x102E...0x102E, 0x1161...0x1175,
        0x11A8...0x11C2, 0x1B35...0x1B35, 0x3099...0x309A,
    ]

    /// Stability of every BMP scalar, built on first use; read-only afterwards.
    nonisolated(unsafe) static let stableBMP: UnsafePointer<Bool> = {
        let t = UnsafeMutablePointer<Bool>.allocate(capacity: 0x10000)
        for v in 0..<0x10000 {
            t[v] = v < 0x300 || isStable(UInt32(v))
        }
        return UnsafePointer(t)
    }()

    static func isStable(_ v: UInt32) -> Bool {
        guard let s = Unicode.Scalar(v) else { return false }
        if s.properties.canonicalCombiningClass != .notReordered { return false }
        if maybe.contains(where: { $0.contains(v) }) { return false }
        let n = String(decoding: String(s)._nfcCodeUnits, as: UTF8.self).unicodeScalars
        return n.count == 1 && n.first == s
    }

    @inline(__always) static func stable(_ v: UInt32) -> Bool {
        if v < 0x300 { return true }
        if v < 0x10000 { return stableBMP[Int(v)] }
        return (0x1F000...0x1FAFF).contains(v)  // emoji: no decompositions, class 0
    }

    /// Whether `p[0..<n]` (valid UTF-8) is made of stable scalars only.
    static func isQuickYes(_ p: UnsafePointer<UInt8>, _ n: Int) -> Bool {
        var i = 0
        while i < n {
            if p[i] < 0xCC {
                i += p[i] < 0x80 ? 1 : 2
                continue
            }
            let (v, len) = decodeScalar(p, i)
            if !stable(v) { return false }
            i += len
        }
        return true
    }

    /// The NFC form of `p[0..<n]`, normalising only the lines that need it.
    static func normalize(_ p: UnsafePointer<UInt8>, _ n: Int) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(n + n / 8)
        var a = 0
        while a < n {
            var b = a
            while b < n && p[b] != 0x0A { b += 1 }
            if b < n { b += 1 }
            let line = UnsafeBufferPointer(start: p + a, count: b - a)
            if isQuickYes(p + a, b - a) {
                out.append(contentsOf: line)
            } else {
                out.append(contentsOf: String(decoding: line, as: UTF8.self)._nfcCodeUnits)
            }
            a = b
        }
        return out
    }
}
