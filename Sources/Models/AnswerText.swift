/// An answer's text as it grows piece by piece (each piece whole characters): what can be sent now,
/// and where a stop string cuts it. Kept as UTF-8 bytes, not characters: a piece may extend the
/// last character (a combining mark, a ZWJ sequence, "\r" then "\n"), which a character count
/// would not see grow, and the work per piece stays proportional to the piece, not to the answer.
/// `chat`, `generate --stop` and `serve` all stream their answers through it.
public struct AnswerText: Sendable {
    public private(set) var bytes: [UInt8] = []
    /// Bytes already handed out.
    public private(set) var sent = 0
    public private(set) var stopped = false
    public let stops: [[UInt8]]

    public init(stops: [String]) { self.stops = stops.map { Array($0.utf8) }.filter { !$0.isEmpty } }

    /// Appends `piece`; returns the text that can be sent now (all but a tail that could still
    /// begin a stop string) and whether a stop string appeared, in which case the text before it
    /// is all that is returned and the answer ends.
    public mutating func add(_ piece: String) -> (text: String, stopped: Bool) {
        guard !stopped else { return ("", true) }
        let before = bytes.count
        bytes += piece.utf8
        if let cut = firstStop(endingFrom: before) {
            stopped = true
            return (take(upTo: cut), true)
        }
        return (take(upTo: bytes.count - heldBack), false)
    }

    /// What is left at the end of the answer (the held-back tail: no stop string completed it).
    public mutating func rest() -> String { stopped ? "" : take(upTo: bytes.count) }

    /// The text handed out so far (after `rest()`, the whole answer, cut before a stop string).
    public var text: String { String(decoding: bytes[..<sent], as: UTF8.self) }

    private mutating func take(upTo end: Int) -> String {
        defer { sent = max(sent, end) }
        return end > sent ? String(decoding: bytes[sent..<end], as: UTF8.self) : ""
    }

    /// Where the first stop string starts, among matches that end at or after byte `from`.
    private func firstStop(endingFrom from: Int) -> Int? {
        var best: Int?
        for stop in stops {
            var start = max(0, from - stop.count + 1)
            while start + stop.count <= bytes.count, start < (best ?? Int.max) {
                if bytes[start..<(start + stop.count)].elementsEqual(stop) {
                    best = start
                    break
                }
                start += 1
            }
        }
        return best
    }

    /// Bytes at the end that could still begin a stop string. They start with a stop's first byte,
    /// never a UTF-8 continuation byte, so the text before them ends on a character boundary.
    private var heldBack: Int {
        var hold = 0
        for stop in stops {
            for k in stride(from: min(stop.count - 1, bytes.count), to: hold, by: -1)
            where bytes[(bytes.count - k)...].elementsEqual(stop[..<k]) {
                hold = k
                break
            }
        }
        return hold
    }
}
