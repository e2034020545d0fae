/// The pre-tokenization regexes of GPT-2, GPT-4 (cl100k) and Qwen2/3, implemented as a
/// hand-written scanner over the UTF-8 bytes of the text (Unicode scalars, never `Character`).
///
/// Each case reproduces the leftmost-first backtracking semantics of its regex exactly; the
/// regexes themselves are in `pattern` and the tests compare the scanner against them.
public enum Pretokenizer: String, Sendable, CaseIterable, Codable {
    case gpt2
    case gpt4
    case qwen

    /// The regex this scanner implements (as written in HF `tokenizer.json` / tiktoken).
    public var pattern: String {
        switch self {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .gpt4:
            // tiktoken's cl100k pattern with `\p{N}{1,3}+` written as `\p{N}{1,3}` (the same
            // thing here): HF tokenizers' Oniguruma reads `{1,3}+` as "one or more runs of 1–3"
            // (unlimited digits), so files we write use the form both engines agree on.
            return
                #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"#
        case .qwen:
            return
                #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// Other spellings of the same regex accepted when reading files.
    var equivalentPatterns: [String] {
        switch self {
        case .gpt2:
            return [
                #"'(?:[sdmt]|ll|ve|re)| ?\p{L}++| ?\p{N}++| ?[^\s\p{L}\p{N}]++|\s++$|\s+(?!\S)|\s"#,
                #"'(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#,
            ]
        case .gpt4:
            return [
                #"'(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}++|\p{N}{1,3}+| ?[^\s\p{L}\p{N}]++[\r\n]*+|\s++$|\s*[\r\n]|\s+(?!\S)|\s"#
            ]
        case .qwen:
            return []
        }
    }

    /// The pre-tokenizer whose regex is `pattern`, if any.
    public static func matching(pattern: String) -> Pretokenizer? {
        allCases.first { $0.pattern == pattern || $0.equivalentPatterns.contains(pattern) }
    }

    /// Splits `text` into pre-tokens (for tests and inspection; encoding uses the scanner directly).
    public func split(_ text: String) -> [String] {
        var copy = text
        return copy.withUTF8 { buf -> [String] in
            guard let base = buf.baseAddress, !buf.isEmpty else { return [] }
            let scanner = PretokenScanner(base, buf.count, self)
            var out: [String] = []
            var i = 0
            while i < buf.count {
                let j = scanner.next(i)
                out.append(
                    String(decoding: UnsafeBufferPointer(rebasing: buf[i..<j]), as: UTF8.self))
                i = j
            }
            return out
        }
    }
}

/// Finds pre-token boundaries in a UTF-8 buffer. `next(i)` returns the end of the piece that
/// starts at byte `i` (always > i for i < count).
struct PretokenScanner {
    let p: UnsafePointer<UInt8>
    let n: Int
    let flavor: Pretokenizer
    let table: UnsafePointer<UInt8>

    init(_ p: UnsafePointer<UInt8>, _ n: Int, _ flavor: Pretokenizer) {
        self.p = p
        self.n = n
        self.flavor = flavor
        self.table = CharClass.bmp
    }

    /// Class and byte length of the scalar at `i`.
    @inline(__always) func cls(_ i: Int) -> (UInt8, Int) {
        let b = p[i]
        if b < 0x80 { return (table[Int(b)], 1) }
        let (v, len) = decodeScalar(p, i)
        return (v < 0x10000 ? table[Int(v)] : CharClass.compute(v), len)
    }

    /// End of the run of scalars from `i` whose class has a bit of `mask`.
    @inline(__always) func run(_ i: Int, _ mask: UInt8) -> Int {
        var j = i
        while j < n {
            let (c, len) = cls(j)
            if c & mask == 0 { break }
            j += len
        }
        return j
    }

    /// End of the run of "other" scalars (`[^\s\p{L}\p{N}]+`) from `i`.
    @inline(__always) func otherRun(_ i: Int) -> Int {
        var j = i
        while j < n {
            let (c, len) = cls(j)
            if c != 0 { break }
            j += len
        }
        return j
    }

    @inline(__always) func lower(_ i: Int) -> UInt8 { i < n ? p[i] | 0x20 : 0 }

    /// Length of a contraction after the apostrophe at `i` (0 if none).
    @inline(__always) func contraction(_ i: Int, caseInsensitive: Bool) -> Int {
        guard i + 1 < n else { return 0 }
        let a = caseInsensitive ? lower(i + 1) : p[i + 1]
        switch a {
        case UInt8(ascii: "s"), UInt8(ascii: "t"), UInt8(ascii: "m"), UInt8(ascii: "d"):
            return 2
        case UInt8(ascii: "r"), UInt8(ascii: "v"), UInt8(ascii: "l"):
            guard i + 2 < n else { return 0 }
            let b = caseInsensitive ? lower(i + 2) : p[i + 2]
            if a == UInt8(ascii: "r") && b == UInt8(ascii: "e") { return 3 }
            if a == UInt8(ascii: "v") && b == UInt8(ascii: "e") { return 3 }
            if a == UInt8(ascii: "l") && b == UInt8(ascii: "l") { return 3 }
            return 0
        case 0xC5:
            // U+017F LATIN SMALL LETTER LONG S case-folds to "s" under (?i).
            return caseInsensitive && i + 2 < n && p[i + 2] == 0xBF ? 3 : 0
        default:
            return 0
        }
    }

    @inline(__always) func next(_ i: Int) -> Int {
        switch flavor {
        case .gpt2: return nextGPT2(i)
        case .gpt4: return nextCL100K(i, maxDigits: 3, spaceRunToEnd: true)
        case .qwen: return nextCL100K(i, maxDigits: 1, spaceRunToEnd: false)
        }
    }

    /// `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    func nextGPT2(_ i: Int) -> Int {
        let b = p[i]
        if b == UInt8(ascii: "'") {
            let k = contraction(i, caseInsensitive: false)
            if k > 0 { return i + k }
        }
        var start = i
        var (c, len) = cls(i)
        if b == 0x20 && i + 1 < n {
            let (c2, len2) = cls(i + 1)
            if c2 & CharClass.space == 0 {
                start = i + 1
                c = c2
                len = len2
            }
        }
        if c & CharClass.letter != 0 { return run(start + len, CharClass.letter) }
        if c & CharClass.number != 0 { return run(start + len, CharClass.number) }
        if c == 0 { return otherRun(start + len) }
        return spaceTail(i, allowEndRun: true)
    }

    /// The whitespace alternatives common to all flavors, at a whitespace scalar `i`:
    /// `\s+(?!\S)|\s+` (plus, for cl100k/Qwen, `\s*[\r\n]+` first, and `\s++$` for cl100k).
    @inline(__always) func spaceTail(
        _ i: Int, allowEndRun: Bool, newlines: Bool = false, spaceRunToEnd: Bool = false
    ) -> Int {
        var j = i
        var lastNewlineEnd = -1
        var count = 0
        var lastStart = i
        while j < n {
            let (c, len) = cls(j)
            if c & CharClass.space == 0 { break }
            if c & CharClass.newline != 0 { lastNewlineEnd = j + len }
            lastStart = j
            j += len
            count += 1
        }
        if spaceRunToEnd && j == n { return j }
        if newlines && lastNewlineEnd >= 0 { return lastNewlineEnd }
        if j == n || count == 1 { return j }
        return lastStart  // \s+(?!\S): leave the last whitespace scalar for the next piece
    }

    /// cl100k / Qwen:
    /// `(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,maxDigits}|`
    /// ` ?[^\s\p{L}\p{N}]+[\r\n]*|(\s++$)|\s*[\r\n]+|\s+(?!\S)|\s+`
    func nextCL100K(_ i: Int, maxDigits: Int, spaceRunToEnd: Bool) -> Int {
        let b = p[i]
        if b == UInt8(ascii: "'") {
            let k = contraction(i, caseInsensitive: true)
            if k > 0 { return i + k }
        }
        let (c, len) = cls(i)
        if c & CharClass.letter != 0 { return run(i + len, CharClass.letter) }
        if c & (CharClass.newline | CharClass.number) == 0 && i + len < n {
            // one optional non-letter, non-digit, non-newline prefix glued to letters
            let (c2, len2) = cls(i + len)
            if c2 & CharClass.letter != 0 { return run(i + len + len2, CharClass.letter) }
        }
        if c & CharClass.number != 0 {
            var j = i + len
            var k = 1
            while k < maxDigits && j < n {
                let (c2, len2) = cls(j)
                if c2 & CharClass.number == 0 { break }
                j += len2
                k += 1
            }
            return j
        }
        var start = -1
        if c == 0 {
            start = i
        } else if b == 0x20 && i + 1 < n && cls(i + 1).0 == 0 {
            start = i + 1
        }
        if start >= 0 {
            var j = otherRun(start)
            while j < n && (p[j] == 0x0A || p[j] == 0x0D) { j += 1 }
            return j
        }
        return spaceTail(i, allowEndRun: true, newlines: true, spaceRunToEnd: spaceRunToEnd)
    }
}
