import Foundation
import ToolkitSupport

/// What the shard pipeline needs from a tokenizer. TokenShards does not import Tokenization;
/// the CLI adapts the real tokenizer to this protocol.
///
/// `encode` must be a pure function of its input and must be safe to call from several threads
/// at once. The pipeline cuts long documents into pieces only between `x\n` and `y`, where x and y
/// are printable non-space ASCII characters. Byte-level BPE pre-tokenisers (GPT-2, cl100k, Qwen)
/// always end a pre-token there (a lone newline after a non-space is its own pre-token or ends a
/// punctuation run, and a newline never prefixes a word), so encoding the pieces gives the same
/// ids as the whole. A newline after whitespace is not a safe cut: `\s+(?!\S)` splits
/// `\n\nX` as `\n`,`\n`,`X` but a piece ending in `\n\n` as one `\n\n` pre-token.
public protocol TokenEncoder: Sendable {
    /// Content hash, vocabulary size and end-of-text id.
    var info: TokenizerInfo { get }
    /// Token ids of `text` (no special tokens added).
    func encode(_ text: String) throws -> [Int]
    /// An encoder for one thread that may keep caches between calls (the pipeline keeps one per
    /// worker for the whole run). The default calls `encode`.
    func makeSession() -> any TokenEncodingSession
}

/// A single-threaded encoding context (for example a BPE pre-token cache).
public protocol TokenEncodingSession: AnyObject {
    /// Appends the ids of `utf8` (special-token text maps to its id) to `tokens`. The pipeline
    /// hands over its read buffer directly, so no `String` is built per chunk, and guarantees the
    /// bytes are valid UTF-8 (it checks every chunk first).
    func encode(utf8: UnsafeBufferPointer<UInt8>, into tokens: inout [UInt32]) throws
}

/// Turns ids back into text, for `toolkit shard inspect`.
public protocol TokenDecoder: Sendable {
    func decode(_ ids: [Int]) -> String
}

extension TokenEncoder {
    public func makeSession() -> any TokenEncodingSession { StatelessSession(encoder: self) }

    /// Token ids of several texts on up to `threads` threads, in input order.
    public func encodeBatch(_ texts: [String], threads: Int) throws -> [[Int]] {
        try parallelMap(texts, threads: threads) { try encode($0) }
    }
}

private final class StatelessSession: TokenEncodingSession {
    let encoder: any TokenEncoder
    init(encoder: any TokenEncoder) { self.encoder = encoder }
    func encode(utf8: UnsafeBufferPointer<UInt8>, into tokens: inout [UInt32]) throws {
        let ids = try encoder.encode(String(decoding: utf8, as: UTF8.self))
        tokens.append(contentsOf: ids.lazy.map { UInt32(truncatingIfNeeded: $0) })
    }
}

/// A byte-level encoder: each UTF-8 byte is one token (0…255), end-of-text is 256. A test and
/// bootstrap aid (`toolkit shard --tokenizer builtin:bytes`), not a real tokenizer.
public struct ByteTokenEncoder: TokenEncoder, TokenDecoder {
    /// Ids are `byte * stride`, so a stride > 257 exercises uint32 shards.
    public let stride: Int
    public let info: TokenizerInfo

    public init(stride: Int = 1) {
        self.stride = stride
        let vocab = 255 * stride + 2
        info = TokenizerInfo(hash: "builtin-bytes-x\(stride)", vocabSize: vocab, eotID: vocab - 1)
    }

    public func encode(_ text: String) -> [Int] { text.utf8.map { Int($0) * stride } }

    public func decode(_ ids: [Int]) -> String {
        var bytes = [UInt8]()
        var out = ""
        for id in ids {
            if id == info.eotID {
                out += String(decoding: bytes, as: UTF8.self) + "<|endoftext|>"
                bytes = []
            } else if id % stride == 0, id / stride < 256 {
                bytes.append(UInt8(id / stride))
            }
        }
        return out + String(decoding: bytes, as: UTF8.self)
    }
}

/// Maps `items` through `transform` on up to `threads` threads, keeping order.
func parallelMap<T: Sendable, R>(
    _ items: [T], threads: Int, _ transform: @Sendable (T) throws -> R
) throws -> [R] {
    if items.count <= 1 || threads <= 1 { return try items.map(transform) }
    return try parallelMap(items, workers: threads) { _, item in try transform(item) }
}

/// Like `parallelMap`, passing the worker number (0..<workers) so each worker can use its own
/// state.
func parallelMap<T: Sendable, R>(
    _ items: [T], workers: Int, _ transform: @Sendable (Int, T) throws -> R
) throws -> [R] {
    let results = ResultSlots<R>(count: items.count)
    let next = LockedCounter()
    DispatchQueue.concurrentPerform(iterations: max(1, min(workers, items.count))) { worker in
        while let i = next.take(below: items.count) {
            results.set(i, Result { try transform(worker, items[i]) })
        }
    }
    return try results.values()
}

/// Slots for results written by several threads, each slot once.
private final class ResultSlots<R>: @unchecked Sendable {
    private var slots: [Result<R, any Error>?]
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ r: Result<R, any Error>) {
        lock.lock()
        slots[i] = r
        lock.unlock()
    }
    func values() throws -> [R] { try slots.map { try $0!.get() } }
}

/// A shared counter handing out 0, 1, 2, … below a limit.
final class LockedCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func take(below limit: Int) -> Int? {
        lock.lock()
        defer { lock.unlock() }
        guard value < limit else { return nil }
        value += 1
        return value - 1
    }
}
