/// Incremental decoding for streaming generation: `push(id)` returns the text that is complete
/// so far and holds back the bytes of a UTF-8 character that is not finished yet, so a
/// character is never split across two outputs. Bytes that can never become valid UTF-8 are
/// emitted as U+FFFD.
public struct StreamingDecoder {
    public let tokenizer: BPETokenizer
    private var pending: [UInt8] = []

    public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    /// Adds one token; returns the newly completed text (possibly empty).
    public mutating func push(_ id: Int) throws -> String {
        pending.append(contentsOf: try tokenizer.decodeBytes([id]))
        let keep = Self.incompleteSuffixLength(pending)
        let ready = pending.count - keep
        guard ready > 0 else { return "" }
        let text = String(decoding: pending[0..<ready], as: UTF8.self)
        pending.removeFirst(ready)
        return text
    }

    /// Adds several tokens.
    public mutating func push<C: Collection>(_ ids: C) throws -> String where C.Element == Int {
        var out = ""
        for id in ids { out += try push(id) }
        return out
    }

    /// Flushes held-back bytes at the end of the stream (an unfinished character becomes U+FFFD).
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        return String(decoding: pending, as: UTF8.self)
    }

    /// The number of trailing bytes that begin a UTF-8 character that could still be completed.
    static func incompleteSuffixLength(_ b: [UInt8]) -> Int {
        let n = b.count
        var k = 1
        while k <= min(3, n) {
            let c = b[n - k]
            if c & 0xC0 == 0x80 {  // continuation byte: keep looking back for the lead
                k += 1
                continue
            }
            let need: Int
            if c >= 0xF0 && c <= 0xF4 {
                need = 4
            } else if c >= 0xE0 && c < 0xF0 {
                need = 3
            } else if c >= 0xC2 && c < 0xE0 {
                need = 2
            } else {
                return 0
            }
            return k < need ? k : 0
        }
        return 0
    }
}
