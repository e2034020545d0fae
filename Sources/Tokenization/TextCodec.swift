/// Text ↔ ids with Int32 ids, as the models take them: what commands and the server that take a
/// tokenizer use.
public struct TextCodec: Sendable {
    public let tokenizer: BPETokenizer

    public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

    public var endOfText: Int32? { tokenizer.endOfTextID.map { Int32($0) } }

    public func encode(_ text: String) throws -> [Int32] { tokenizer.encode(text).map { Int32($0) } }

    public func decode(_ ids: [Int32]) -> String { (try? tokenizer.decode(ids)) ?? "" }

    /// The id of a special token written as `content` (e.g. `<|im_end|>`), if the tokenizer has one.
    public func specialID(_ content: String) -> Int32? {
        tokenizer.specialTokens.first { $0.content == content }.map { Int32($0.id) }
    }

    /// The ids of those of `contents` that are special tokens (a chat template's end-of-turn markers).
    public func specialIDs(_ contents: [String]) -> Set<Int32> { Set(contents.compactMap(specialID)) }

    /// Incremental decoding that never splits a UTF-8 character.
    public struct Streamer {
        var decoder: StreamingDecoder
        public mutating func push(_ id: Int32) -> String { (try? decoder.push(Int(id))) ?? "\u{FFFD}" }
        public mutating func flush() -> String { decoder.finish() }
    }

    public func streamer() -> Streamer { Streamer(decoder: StreamingDecoder(tokenizer: tokenizer)) }

    public static func load(_ path: String?) throws -> TextCodec? {
        guard let path else { return nil }
        return TextCodec(tokenizer: try BPETokenizer.load(path: path))
    }
}
