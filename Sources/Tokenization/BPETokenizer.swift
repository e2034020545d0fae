import Foundation
import ToolkitSupport

/// A token that is matched in the text before pre-tokenization (`<|endoftext|>`, `<|im_start|>`).
public struct SpecialToken: Sendable, Equatable, Codable {
    public var content: String
    public var id: Int
    /// HF's `special` flag (false for Qwen's added-but-not-special tokens such as `<think>`).
    public var special: Bool

    public init(content: String, id: Int, special: Bool = true) {
        self.content = content
        self.id = id
        self.special = special
    }
}

/// Which special tokens `encode` recognises in the text; the others are encoded as plain text.
public enum AllowedSpecial: Sendable, Equatable {
    case all
    case none
    case some(Set<String>)
}

/// A byte-level BPE tokenizer (GPT-2, GPT-4/cl100k-style, Qwen2/3), immutable and thread-safe.
///
/// Ids: every byte has a token; merges combine two tokens into one; special tokens are matched
/// in the text before pre-tokenization. Load with `BPETokenizer.load(path:)`, train with
/// `BPETrainer`.
public final class BPETokenizer: Sendable {
    /// The pre-tokenization regex.
    public let pretokenizer: Pretokenizer
    /// Whether text is NFC-normalised before pre-tokenization (Qwen's HF tokenizer).
    public let normalizesNFC: Bool
    /// Special and added tokens, by id.
    public let specialTokens: [SpecialToken]
    /// Merges in priority order (left id, right id, merged id).
    public let merges: [Merge]
    /// One more than the largest id.
    public let vocabSize: Int
    /// The id of `<|endoftext|>` if the tokenizer has one.
    public let endOfTextID: Int?
    /// Content hash (fnv1a64 hex over a canonical serialisation of ids, bytes, merges,
    /// specials, pre-tokenizer and normaliser): equal iff the tokenizers encode identically.
    public let contentHash: String

    public struct Merge: Sendable, Equatable {
        public var left: UInt32
        public var right: UInt32
        public var result: UInt32
    }

    let arena: [UInt8]  // token bytes, id k at arena[offsets[k]..<offsets[k+1]]
    let offsets: [Int]
    let hasToken: [Bool]  // false for ids that are unused gaps
    let isSpecialID: [Bool]
    let byteIDs: [UInt32]
    let pairs: PairTable
    let specialsByLength: [(bytes: [UInt8], id: UInt32, content: String)]
    let specialFirstByte: [Bool]
    /// The first byte of every special token when they all share one (`<` for `<|…|>` tokens):
    /// the scan for specials then jumps between occurrences with `memchr`.
    let specialSharedFirstByte: UInt8?

    /// `tokens[id]` = the bytes of a regular token (nil for unused ids and special tokens);
    /// `mergePairs` in priority order. Throws if a byte has no token or a merge's result is
    /// not in the vocabulary.
    public init(
        tokens: [[UInt8]?], mergePairs: [(UInt32, UInt32)], specialTokens: [SpecialToken],
        pretokenizer: Pretokenizer, normalizesNFC: Bool = false, source: String = "tokenizer"
    ) throws {
        self.pretokenizer = pretokenizer
        self.normalizesNFC = normalizesNFC
        let specials = specialTokens.sorted { $0.id < $1.id }
        self.specialTokens = specials
        var size = tokens.count
        for s in specials {
            guard s.id >= 0 else {
                throw ToolkitError.file(source, "special token \(s.content) has a negative id")
            }
            size = max(size, s.id + 1)
        }
        vocabSize = size
        var table = ByteStringTable(capacity: tokens.count)
        var tokenIDs: [Int] = []
        var arena: [UInt8] = []
        var offsets = [0]
        var present = [Bool](repeating: false, count: size)
        var specialAt = [String?](repeating: nil, count: size)
        for s in specials {
            guard specialAt[s.id] == nil else {
                throw ToolkitError.file(source, "two special tokens share id \(s.id)")
            }
            specialAt[s.id] = s.content
        }
        for id in 0..<size {
            if id < tokens.count, let t = tokens[id], specialAt[id] == nil {
                arena.append(contentsOf: t)
                present[id] = true
                let (k, inserted) = table.insert(t)
                if inserted {
                    tokenIDs.append(id)
                } else if k >= 0 && tokenIDs[k] > id {
                    tokenIDs[k] = id
                }
            } else if let content = specialAt[id] {
                arena.append(contentsOf: Array(content.utf8))
                present[id] = true
            }
            offsets.append(arena.count)
        }
        self.arena = arena
        self.offsets = offsets
        self.hasToken = present
        self.isSpecialID = specialAt.map { $0 != nil }
        var byteIDs = [UInt32](repeating: 0, count: 256)
        for b in 0..<256 {
            let k = table.find([UInt8(b)])
            guard k >= 0 else {
                throw ToolkitError.file(
                    source,
                    "byte 0x\(String(b, radix: 16)) has no token (byte-level BPE needs all 256)")
            }
            byteIDs[b] = UInt32(tokenIDs[k])
        }
        self.byteIDs = byteIDs
        var merges: [Merge] = []
        merges.reserveCapacity(mergePairs.count)
        for (n, (a, b)) in mergePairs.enumerated() {
            guard Int(a) < size, Int(b) < size, present[Int(a)], present[Int(b)],
                specialAt[Int(a)] == nil, specialAt[Int(b)] == nil
            else {
                throw ToolkitError.file(
                    source, "merge \(n + 1) refers to an unknown token id (\(a), \(b))")
            }
            let joined =
                Array(arena[offsets[Int(a)]..<offsets[Int(a) + 1]])
                + arena[offsets[Int(b)]..<offsets[Int(b) + 1]]
            let k = table.find(joined)
            guard k >= 0 else {
                throw ToolkitError.file(
                    source,
                    "merge \(n + 1) (\(ByteLevel.encode(joined))) produces a token that is not in the vocabulary"
                )
            }
            merges.append(Merge(left: a, right: b, result: UInt32(tokenIDs[k])))
        }
        self.merges = merges
        pairs = PairTable(merges.map { ($0.left, $0.right, $0.result) })
        specialsByLength = specials.map { (Array($0.content.utf8), UInt32($0.id), $0.content) }
            .filter { !$0.0.isEmpty }
            .sorted { $0.0.count > $1.0.count || ($0.0.count == $1.0.count && $0.1 < $1.1) }
        var first = [Bool](repeating: false, count: 256)
        for s in specialsByLength { first[Int(s.bytes[0])] = true }
        specialFirstByte = first
        let firsts = Set(specialsByLength.map { $0.bytes[0] })
        specialSharedFirstByte = firsts.count == 1 ? firsts.first : nil
        endOfTextID = specials.first { $0.content == "<|endoftext|>" }?.id
        contentHash = Self.hash(
            arena: arena, offsets: offsets, present: present, merges: merges, specials: specials,
            pretokenizer: pretokenizer, nfc: normalizesNFC)
    }

    private static func hash(
        arena: [UInt8], offsets: [Int], present: [Bool], merges: [Merge], specials: [SpecialToken],
        pretokenizer: Pretokenizer, nfc: Bool
    ) -> String {
        var buf: [UInt8] = Array(
            "bpe1 \(pretokenizer.rawValue) nfc=\(nfc) n=\(present.count)\n".utf8)
        func u32(_ v: Int) {
            for k in 0..<4 { buf.append(UInt8(truncatingIfNeeded: v >> (8 * k))) }
        }
        for id in 0..<present.count {
            guard present[id] else {
                u32(-1)
                continue
            }
            u32(offsets[id + 1] - offsets[id])
            buf.append(contentsOf: arena[offsets[id]..<offsets[id + 1]])
        }
        for m in merges {
            u32(Int(m.left))
            u32(Int(m.right))
        }
        for s in specials {
            u32(s.id)
            buf.append(s.special ? 1 : 0)
            buf.append(contentsOf: Array(s.content.utf8))
            buf.append(0)
        }
        return Hashing.hex(Hashing.fnv1a64(buf))
    }

    // MARK: - Token bytes and decoding

    /// The bytes of token `id` (the UTF-8 text of a special token), or nil for an unknown id.
    public func tokenBytes(_ id: Int) -> [UInt8]? {
        guard id >= 0 && id < vocabSize && hasToken[id] else { return nil }
        return Array(arena[offsets[id]..<offsets[id + 1]])
    }

    /// Whether `id` is a special/added token.
    public func isSpecial(_ id: Int) -> Bool { id >= 0 && id < vocabSize && isSpecialID[id] }

    /// The concatenated bytes of `ids`. Throws on an id that is not in the vocabulary.
    /// `skipSpecial` leaves out special/added tokens (HF `skip_special_tokens`).
    public func decodeBytes<C: Collection>(_ ids: C, skipSpecial: Bool = false) throws -> [UInt8]
    where C.Element: BinaryInteger {
        var out: [UInt8] = []
        out.reserveCapacity(ids.count * 4)
        try arena.withUnsafeBufferPointer { ar in
            for raw in ids {
                let id = Int(raw)
                guard id >= 0 && id < vocabSize && hasToken[id] else {
                    throw ToolkitError(
                        "token id \(id) is not in the vocabulary (size \(vocabSize))")
                }
                if skipSpecial && isSpecialID[id] { continue }
                out.append(
                    contentsOf: UnsafeBufferPointer(rebasing: ar[offsets[id]..<offsets[id + 1]]))
            }
        }
        return out
    }

    /// The text of `ids`. Byte sequences that are not valid UTF-8 (possible when ids are cut in
    /// the middle of a character) become U+FFFD, as in HF's `decode` and tiktoken's
    /// `errors="replace"`.
    public func decode<C: Collection>(_ ids: C, skipSpecial: Bool = false) throws -> String
    where C.Element: BinaryInteger {
        String(decoding: try decodeBytes(ids, skipSpecial: skipSpecial), as: UTF8.self)
    }

    // MARK: - Encoding

    /// Encodes `text`; special tokens in `allowedSpecial` become their ids, all other text
    /// (including the text of other special tokens) is encoded as ordinary text.
    public func encode(_ text: String, allowedSpecial: AllowedSpecial = .all) -> [Int] {
        var state = EncoderState()
        var out: [UInt32] = []
        encode(text, allowedSpecial: allowedSpecial, into: &out, state: &state)
        return out.map { Int($0) }
    }

    /// Encodes `text` as 32-bit ids (the form shards store).
    public func encodeUInt32(_ text: String, allowedSpecial: AllowedSpecial = .all) -> [UInt32] {
        var state = EncoderState()
        var out: [UInt32] = []
        encode(text, allowedSpecial: allowedSpecial, into: &out, state: &state)
        return out
    }

    /// Encodes many texts on `threads` threads (each with its own pre-token cache); results are
    /// in input order.
    public func encodeBatch(
        _ texts: [String], allowedSpecial: AllowedSpecial = .all,
        threads: Int = ProcessInfo.processInfo.activeProcessorCount
    ) -> [[Int]] {
        let n = texts.count
        let workers = max(1, min(threads, n))
        let results = ResultSlots<[Int]>(count: n)
        let next = AtomicCounter()
        DispatchQueue.concurrentPerform(iterations: workers) { _ in
            var state = EncoderState()
            var buf: [UInt32] = []
            while true {
                let i = next.increment()
                if i >= n { break }
                buf.removeAll(keepingCapacity: true)
                encode(texts[i], allowedSpecial: allowedSpecial, into: &buf, state: &state)
                results.set(i, buf.map { Int($0) })
            }
        }
        return results.values()
    }

    /// Encodes, appending to `out`, reusing `state`'s cache across calls.
    public func encode(
        _ text: String, allowedSpecial: AllowedSpecial, into out: inout [UInt32],
        state: inout EncoderState
    ) {
        var text = text
        text.withUTF8 {
            encode(uncheckedUTF8: $0, allowedSpecial: allowedSpecial, into: &out, state: &state)
        }
    }

    /// Encodes UTF-8 bytes, appending to `out`, reusing `state`'s cache across calls; this spares
    /// the copy into a `String` when the text already sits in a byte buffer. Precondition: the
    /// bytes are valid UTF-8, already checked by the caller (the pre-tokenizer decodes multi-byte
    /// sequences without bounds checks); use `encode(bytes:)` for unchecked input.
    public func encode(
        uncheckedUTF8 buf: UnsafeBufferPointer<UInt8>, allowedSpecial: AllowedSpecial,
        into out: inout [UInt32], state: inout EncoderState
    ) {
        guard let p = buf.baseAddress else { return }
        let n = buf.count
        guard !specialsByLength.isEmpty && allowedSpecial != .none else {
            encodeSegment(p, n, into: &out, state: &state)
            return
        }
        var segmentStart = 0
        var i = 0
        while i < n {
            if let byte = specialSharedFirstByte {
                // Jump to the next possible start of a special token.
                guard let hit = memchr(p + i, Int32(byte), n - i) else { break }
                i = UnsafeRawPointer(hit) - UnsafeRawPointer(p)
            }
            if specialFirstByte[Int(p[i])], let (id, len) = matchSpecial(p + i, n - i, allowedSpecial) {
                encodeSegment(p + segmentStart, i - segmentStart, into: &out, state: &state)
                out.append(id)
                i += len
                segmentStart = i
            } else {
                i += 1
            }
        }
        encodeSegment(p + segmentStart, n - segmentStart, into: &out, state: &state)
    }

    /// Encodes raw bytes of a text file. Invalid UTF-8 is replaced by U+FFFD first (as
    /// `String(decoding:as:)` does), so the ids always decode back to valid text.
    public func encode(bytes: [UInt8], allowedSpecial: AllowedSpecial = .all) -> [Int] {
        encode(String(decoding: bytes, as: UTF8.self), allowedSpecial: allowedSpecial)
    }

    private func matchSpecial(_ p: UnsafePointer<UInt8>, _ n: Int, _ allowed: AllowedSpecial) -> (
        UInt32, Int
    )? {
        for s in specialsByLength where s.bytes.count <= n {
            let equal = s.bytes.withUnsafeBufferPointer {
                memcmp($0.baseAddress!, p, s.bytes.count) == 0
            }
            guard equal else { continue }
            switch allowed {
            case .all: return (s.id, s.bytes.count)
            case .none: return nil
            case .some(let set): if set.contains(s.content) { return (s.id, s.bytes.count) }
            }
        }
        return nil
    }

    private func encodeSegment(
        _ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt32], state: inout EncoderState
    ) {
        guard n > 0 else { return }
        if normalizesNFC && !NFC.isQuickYes(p, n) {
            let normalized = NFC.normalize(p, n)
            normalized.withUnsafeBufferPointer { buf in
                if let q = buf.baseAddress {
                    encodeOrdinary(q, buf.count, into: &out, state: &state)
                }
            }
        } else {
            encodeOrdinary(p, n, into: &out, state: &state)
        }
    }

    private func encodeOrdinary(
        _ p: UnsafePointer<UInt8>, _ n: Int, into out: inout [UInt32], state: inout EncoderState
    ) {
        let scanner = PretokenScanner(p, n, pretokenizer)
        byteIDs.withUnsafeBufferPointer { bid in
            pairs.withLookup { lookup in
                var i = 0
                while i < n {
                    let j = scanner.next(i)
                    let len = j - i
                    if len == 1 {
                        out.append(bid[Int(p[i])])
                    } else {
                        state.encodePiece(p + i, len, bid.baseAddress!, lookup, into: &out)
                    }
                    i = j
                }
            }
        }
    }
}

/// Mutable per-thread encoding state: the pre-token cache and scratch buffers. Not shared
/// between threads; reuse one across calls to keep the cache warm.
public struct EncoderState {
    var cache = ByteStringTable(capacity: 1 << 14)
    var cacheStarts: [Int] = [0]
    var cacheIDs: [UInt32] = []
    var scratch = BPEScratch()
    /// Pre-tokens longer than this are not cached.
    static let maxCachedLength = 64
    /// The cache is cleared when it holds this many pre-tokens.
    static let maxCacheEntries = 1 << 18

    public init() {}

    @inline(__always)
    mutating func encodePiece(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ byteIDs: UnsafePointer<UInt32>, _ lookup: PairLookup,
        into out: inout [UInt32]
    ) {
        guard n <= Self.maxCachedLength else {
            scratch.bpe(p, n, byteIDs, lookup, into: &out)
            return
        }
        let h = hashBytes(p, n)
        let k = cache.find(p, n, hash: h)
        if k >= 0 {
            let a = cacheStarts[k]
            let b = cacheStarts[k + 1]
            if b - a == 1 {
                out.append(cacheIDs[a])
            } else {
                out.append(contentsOf: cacheIDs[a..<b])
            }
            return
        }
        if cache.count >= Self.maxCacheEntries {
            cache.removeAll()
            cacheStarts = [0]
            cacheIDs.removeAll(keepingCapacity: true)
        }
        let before = out.count
        scratch.bpe(p, n, byteIDs, lookup, into: &out)
        _ = cache.insert(p, n, hash: h)
        cacheIDs.append(contentsOf: out[before...])
        cacheStarts.append(cacheIDs.count)
    }
}

/// Scratch space and the BPE merge loop for one pre-token.
struct BPEScratch {
    var ids: [UInt32] = []
    var ranks: [UInt64] = []

    /// Appends the BPE of bytes `p[0..<n]` to `out`: repeatedly merge the adjacent pair of lowest
    /// rank (leftmost on ties) until none merges.
    mutating func bpe(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ byteIDs: UnsafePointer<UInt32>, _ lookup: PairLookup,
        into out: inout [UInt32]
    ) {
        if n > 256 {
            bpeHeap(p, n, byteIDs, lookup, into: &out)
        } else {
            bpeQuadratic(p, n, byteIDs, lookup, into: &out)
        }
    }

    /// O(n²) loop over a rank array: fastest for the short pieces of ordinary text.
    mutating func bpeQuadratic(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ byteIDs: UnsafePointer<UInt32>, _ lookup: PairLookup,
        into out: inout [UInt32]
    ) {
        if ids.count < n {
            ids = [UInt32](repeating: 0, count: max(n, 64))
            ranks = [UInt64](repeating: 0, count: max(n, 64))
        }
        ids.withUnsafeMutableBufferPointer { idb in
            ranks.withUnsafeMutableBufferPointer { rb in
                let id = idb.baseAddress!
                let r = rb.baseAddress!
                for k in 0..<n { id[k] = byteIDs[Int(p[k])] }
                for k in 0..<(n - 1) { r[k] = lookup.get(id[k], id[k + 1]) }
                var m = n
                while m > 1 {
                    var best = UInt64.max
                    var bi = -1
                    for k in 0..<(m - 1) where r[k] < best {
                        best = r[k]
                        bi = k
                    }
                    if bi < 0 { break }
                    id[bi] = UInt32(truncatingIfNeeded: best)
                    var k = bi + 1
                    while k < m - 1 {
                        id[k] = id[k + 1]
                        r[k] = r[k + 1]
                        k += 1
                    }
                    m -= 1
                    if bi > 0 { r[bi - 1] = lookup.get(id[bi - 1], id[bi]) }
                    if bi < m - 1 { r[bi] = lookup.get(id[bi], id[bi + 1]) }
                }
                out.append(contentsOf: UnsafeBufferPointer(start: id, count: m))
            }
        }
    }

    /// O(n log n) variant for long pre-tokens: a linked list of parts and a min-heap of
    /// (rank, position) candidates, validated lazily when popped.
    mutating func bpeHeap(
        _ p: UnsafePointer<UInt8>, _ n: Int, _ byteIDs: UnsafePointer<UInt32>, _ lookup: PairLookup,
        into out: inout [UInt32]
    ) {
        let dead = UInt32.max
        var id = (0..<n).map { byteIDs[Int(p[$0])] }
        var next = (0..<n).map { Int32($0 + 1) }
        var prev = (0..<n).map { Int32($0 - 1) }
        next[n - 1] = -1
        var heap = BinaryHeap<UInt64>()
        for k in 0..<(n - 1) {
            let v = lookup.get(id[k], id[k + 1])
            if v != UInt64.max { heap.push((v >> 32) << 32 | UInt64(k)) }
        }
        while let top = heap.pop() {
            let pos = Int(top & 0xFFFF_FFFF)
            let rank = top >> 32
            guard id[pos] != dead else { continue }
            let j = Int(next[pos])
            guard j >= 0 else { continue }
            let v = lookup.get(id[pos], id[j])
            guard v != UInt64.max, v >> 32 == rank else { continue }
            id[pos] = UInt32(truncatingIfNeeded: v)
            id[j] = dead
            let after = Int(next[j])
            next[pos] = Int32(after)
            if after >= 0 { prev[after] = Int32(pos) }
            let before = Int(prev[pos])
            if before >= 0 {
                let w = lookup.get(id[before], id[pos])
                if w != UInt64.max { heap.push((w >> 32) << 32 | UInt64(before)) }
            }
            if after >= 0 {
                let w = lookup.get(id[pos], id[after])
                if w != UInt64.max { heap.push((w >> 32) << 32 | UInt64(pos)) }
            }
        }
        var k = 0
        while k >= 0 {
            out.append(id[k])
            k = Int(next[k])
        }
    }
}

/// Elements ordered for `BinaryHeap`: `before(a, b)` means a pops first.
protocol HeapOrdered {
    static func before(_ a: Self, _ b: Self) -> Bool
}

extension UInt64: HeapOrdered {
    @inline(__always) static func before(_ a: UInt64, _ b: UInt64) -> Bool { a < b }
}

/// A binary heap; the first element by `HeapOrdered.before` pops first.
struct BinaryHeap<Element: HeapOrdered> {
    var items: [Element] = []

    mutating func push(_ v: Element) {
        items.append(v)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if !Element.before(items[i], items[parent]) { break }
            items.swapAt(parent, i)
            i = parent
        }
    }

    mutating func pop() -> Element? {
        guard let last = items.popLast() else { return nil }
        guard !items.isEmpty else { return last }
        let top = items[0]
        items[0] = last
        var i = 0
        let n = items.count
        while true {
            let l = 2 * i + 1
            let r = l + 1
            var m = i
            if l < n && Element.before(items[l], items[m]) { m = l }
            if r < n && Element.before(items[r], items[m]) { m = r }
            if m == i { break }
            items.swapAt(i, m)
            i = m
        }
        return top
    }
}

/// Thread-safe result slots for parallel loops.
final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [T?]
    private let lock = NSLock()
    init(count: Int) { slots = [T?](repeating: nil, count: count) }
    func set(_ i: Int, _ v: T) {
        lock.lock()
        slots[i] = v
        lock.unlock()
    }
    func values() -> [T] { slots.map { $0! } }
}

/// A shared counter for handing out work items.
final class AtomicCounter: @unchecked Sendable {
    private var value = 0
    private let lock = NSLock()
    func increment() -> Int {
        lock.lock()
        defer { lock.unlock() }
        let v = value
        value += 1
        return v
    }
}
