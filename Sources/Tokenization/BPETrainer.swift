import Foundation
import ToolkitSupport

/// Settings for `BPETrainer`.
public struct BPETrainerOptions: Sendable {
    /// Final vocabulary size: special tokens + 256 bytes + merges.
    public var vocabSize: Int
    public var pretokenizer: Pretokenizer = .gpt2
    /// Special tokens, given ids 0, 1, … in this order.
    public var specialTokens: [String] = ["<|endoftext|>"]
    /// Pairs seen fewer times than this are not merged (HF `min_frequency`).
    public var minFrequency: Int = 0
    public var threads: Int = ProcessInfo.processInfo.activeProcessorCount

    public init(vocabSize: Int) { self.vocabSize = vocabSize }
}

/// Trains a byte-level BPE exactly as HF tokenizers' `BpeTrainer` with
/// `initial_alphabet=ByteLevel.alphabet()` does.
///
/// Ids: the special tokens first, then the 256 byte symbols sorted by their byte-level code point,
/// then one id per new token. Each file is pre-tokenized as one string (HF `train_from_iterator`
/// over whole texts); only the unique pre-tokens and their counts are kept in memory. Merging
/// uses incremental pair counts and a max-heap of (count, pair) with lazy refresh; ties go to the
/// smallest (left id, right id). Deterministic for any thread count.
public enum BPETrainer {
    /// Training statistics.
    public struct Report: Sendable, Codable {
        public var bytes: Int
        public var uniqueWords: Int
        public var merges: Int
        public var countSeconds: Double
        public var mergeSeconds: Double
    }

    /// Trains on files; each file is read in blocks and split at safe pre-token boundaries.
    public static func train(
        files: [String], options: BPETrainerOptions, progress: Bool = false
    ) throws -> (BPETokenizer, Report) {
        let t0 = monotonicSeconds()
        var counter = WordCounter(pretokenizer: options.pretokenizer, threads: options.threads)
        var total = 0
        for f in files {
            let size =
                ((try? FileManager.default.attributesOfItem(atPath: f))?[.size] as? NSNumber)?
                .intValue
            guard size != nil, let handle = FileHandle(forReadingAtPath: f) else {
                throw ToolkitError.file(f, "cannot open for reading")
            }
            defer { try? handle.close() }
            let bar = ProgressBar(
                total: Double(size ?? 0) / 1e6,
                label: "counting \(URL(fileURLWithPath: f).lastPathComponent)", unit: "MB",
                enabled: progress)
            var carry: [UInt8] = []
            var done = 0
            while true {
                let block: Data
                do {
                    block = try handle.read(upToCount: 32 << 20) ?? Data()
                } catch {
                    throw ToolkitError.file(f, "read failed: \(error.localizedDescription)")
                }
                let atEnd = block.isEmpty
                carry.append(contentsOf: block)
                let cut =
                    atEnd ? carry.count : WordCounter.lastSafeSplit(carry, before: carry.count)
                if cut > 0 {
                    counter.count(carry[0..<cut])
                    done += cut
                    total += cut
                    carry.removeFirst(cut)
                    bar.update(Double(done) / 1e6)
                }
                if atEnd { break }
            }
            bar.finish()
        }
        let t1 = monotonicSeconds()
        let (tok, merges) = try train(counter: counter, options: options, progress: progress)
        let t2 = monotonicSeconds()
        return (
            tok,
            Report(
                bytes: total, uniqueWords: counter.words.count, merges: merges,
                countSeconds: t1 - t0, mergeSeconds: t2 - t1)
        )
    }

    /// Trains on in-memory texts (each pre-tokenized as one string).
    public static func train(texts: [String], options: BPETrainerOptions) throws -> BPETokenizer {
        var counter = WordCounter(pretokenizer: options.pretokenizer, threads: options.threads)
        for t in texts { counter.count(ArraySlice(Array(t.utf8))) }
        return try train(counter: counter, options: options, progress: false).0
    }

    // MARK: - Merging

    /// A heap entry: max count first, then the smallest (left id, right id); `pos` indexes the
    /// word list the entry was pushed with (HF's `Merge.pos`).
    struct Entry: HeapOrdered {
        var count: Int
        var pair: UInt64
        var pos: Int

        @inline(__always) static func before(_ a: Entry, _ b: Entry) -> Bool {
            a.count > b.count || (a.count == b.count && a.pair < b.pair)
        }
    }

    static func train(counter: WordCounter, options: BPETrainerOptions, progress: Bool) throws -> (
        BPETokenizer, Int
    ) {
        let specials = options.specialTokens
        guard Set(specials).count == specials.count else {
            throw ToolkitError("special tokens must be distinct")
        }
        guard !specials.contains(where: \.isEmpty) else {
            throw ToolkitError("a special token is empty")
        }
        let s = specials.count
        // byte → initial id
        var byteID = [UInt32](repeating: 0, count: 256)
        for (k, b) in ByteLevel.bytesInScalarOrder.enumerated() { byteID[Int(b)] = UInt32(s + k) }
        var tokenBytes: [[UInt8]] = specials.map { Array($0.utf8) }
        for b in ByteLevel.bytesInScalarOrder { tokenBytes.append([b]) }
        var known = ByteStringTable(capacity: options.vocabSize)
        var knownID: [Int] = []
        for (id, t) in tokenBytes.enumerated() where id >= s {
            _ = known.insert(t)
            knownID.append(id)
        }
        var vocabCount = s + 256  // HF counts specials + alphabet + distinct new tokens

        // Words as flat symbol storage.
        let words = counter.words
        let wordCount = counter.counts
        var start = [Int](repeating: 0, count: words.count + 1)
        var length = [Int](repeating: 0, count: words.count)
        var syms: [UInt32] = []
        syms.reserveCapacity(words.arena.count)
        for w in 0..<words.count {
            start[w] = syms.count
            for b in words.key(w) { syms.append(byteID[Int(b)]) }
            length[w] = syms.count - start[w]
        }
        start[words.count] = syms.count

        // Pair statistics.
        var pairIndex: [UInt64: Int] = [:]
        var pairCount: [Int] = []
        var wherePairs: [[Int32]] = []  // where_to_update for the current round, per pair index
        var touched: [Int] = []
        @inline(__always) func index(_ key: UInt64) -> Int {
            if let k = pairIndex[key] { return k }
            let k = pairCount.count
            pairIndex[key] = k
            pairCount.append(0)
            wherePairs.append([])
            return k
        }
        for w in 0..<words.count where length[w] > 1 {
            let c = wordCount[w]
            for i in start[w]..<(start[w] + length[w] - 1) {
                let k = index(UInt64(syms[i]) << 32 | UInt64(syms[i + 1]))
                pairCount[k] += c
                if wherePairs[k].last != Int32(w) {
                    if wherePairs[k].isEmpty { touched.append(k) }
                    wherePairs[k].append(Int32(w))
                }
            }
        }
        var positions: [[Int32]] = []
        var heap = BinaryHeap<Entry>()
        var pairOfIndex = [UInt64](repeating: 0, count: pairCount.count)
        for (key, k) in pairIndex { pairOfIndex[k] = key }
        func flush() {
            for k in touched {
                let list = wherePairs[k]
                wherePairs[k] = []
                if pairCount[k] > 0 {
                    positions.append(list)
                    heap.push(
                        Entry(count: pairCount[k], pair: pairOfIndex[k], pos: positions.count - 1))
                }
            }
            touched.removeAll(keepingCapacity: true)
        }
        flush()

        let target = max(0, options.vocabSize - vocabCount)
        let bar = ProgressBar(
            total: Double(target), label: "merges", unit: "merges", enabled: progress)
        var merges: [(UInt32, UInt32)] = []
        var stamp = [Int](repeating: -1, count: words.count)
        var round = 0
        while vocabCount < options.vocabSize, var top = heap.pop() {
            let k = pairIndex[top.pair] ?? 0
            if top.count != pairCount[k] {
                top.count = pairCount[k]
                heap.push(top)
                continue
            }
            if top.count < 1 || options.minFrequency > top.count { break }
            let a = UInt32(truncatingIfNeeded: top.pair >> 32)
            let b = UInt32(truncatingIfNeeded: top.pair)
            let joined = tokenBytes[Int(a)] + tokenBytes[Int(b)]
            let (key, inserted) = known.insert(joined)
            let z: UInt32
            if inserted {
                z = UInt32(tokenBytes.count)
                knownID.append(Int(z))
                tokenBytes.append(joined)
                vocabCount += 1
            } else {
                z = UInt32(knownID[key])
            }
            merges.append((a, b))
            round += 1
            func change(_ x: UInt32, _ y: UInt32, _ delta: Int, _ w: Int) {
                let pk = UInt64(x) << 32 | UInt64(y)
                let idx: Int
                if let found = pairIndex[pk] {
                    idx = found
                } else {
                    idx = pairCount.count
                    pairIndex[pk] = idx
                    pairCount.append(0)
                    wherePairs.append([])
                    pairOfIndex.append(pk)
                }
                pairCount[idx] += delta
                if delta > 0 && wherePairs[idx].last != Int32(w) {
                    if wherePairs[idx].isEmpty { touched.append(idx) }
                    wherePairs[idx].append(Int32(w))
                }
            }
            for w32 in positions[top.pos] {
                let w = Int(w32)
                if stamp[w] == round { continue }
                stamp[w] = round
                let s0 = start[w]
                let n = length[w]
                let c = wordCount[w]
                var i = 0
                var o = 0
                while i < n {
                    if i + 1 < n && syms[s0 + i] == a && syms[s0 + i + 1] == b {
                        if o > 0 {
                            let prev = syms[s0 + o - 1]
                            change(prev, a, -c, w)
                            change(prev, z, c, w)
                        }
                        if i + 2 < n {
                            let next = syms[s0 + i + 2]
                            change(b, next, -c, w)
                            change(z, next, c, w)
                        }
                        syms[s0 + o] = z
                        o += 1
                        i += 2
                    } else {
                        syms[s0 + o] = syms[s0 + i]
                        o += 1
                        i += 1
                    }
                }
                length[w] = o
            }
            positions[top.pos] = []
            flush()
            bar.update(Double(vocabCount - s - 256))
        }
        bar.finish()
        var tokens: [[UInt8]?] = tokenBytes.map { $0 }
        for i in 0..<s { tokens[i] = nil }
        let tok = try BPETokenizer(
            tokens: tokens, mergePairs: merges.map { ($0.0, $0.1) },
            specialTokens: specials.enumerated().map { SpecialToken(content: $1, id: $0) },
            pretokenizer: options.pretokenizer, source: "trainer")
        return (tok, merges.count)
    }
}

/// Counts unique pre-tokens of texts in parallel.
struct WordCounter {
    let pretokenizer: Pretokenizer
    let threads: Int
    var words = ByteStringTable(capacity: 1 << 16)
    var counts: [Int] = []

    init(pretokenizer: Pretokenizer, threads: Int) {
        self.pretokenizer = pretokenizer
        self.threads = max(1, threads)
    }

    /// The largest split point ≤ `before` at which pre-tokenization of the whole text and of
    /// the two halves agree: after a lone `\n` that follows an ASCII non-space and precedes an
    /// ASCII non-space. 0 if none.
    static func lastSafeSplit<C: RandomAccessCollection>(_ bytes: C, before: Int) -> Int
    where C.Element == UInt8, C.Index == Int {
        var i = min(before, bytes.endIndex - 1)
        let stop = max(bytes.startIndex + 2, i - (1 << 20))
        while i >= stop {
            if bytes[i - 1] == 0x0A && isPlain(bytes[i]) && isPlain(bytes[i - 2]) { return i }
            i -= 1
        }
        return 0
    }

    @inline(__always) static func isPlain(_ b: UInt8) -> Bool {
        b < 0x80 && b != 0x20 && !(0x09...0x0D).contains(b)
    }

    /// Counts the pre-tokens of `bytes` (one text, or a piece cut at a safe split point).
    mutating func count(_ bytes: ArraySlice<UInt8>) {
        let text = String(decoding: bytes, as: UTF8.self)  // invalid UTF-8 → U+FFFD
        var utf8 = Array(text.utf8)
        let n = utf8.count
        // Split into per-thread parts at safe points.
        var cuts = [0]
        let parts = n < 1 << 20 ? 1 : threads * 4
        for k in 1..<max(parts, 1) {
            let want = n * k / parts
            let c = Self.lastSafeSplit(utf8, before: want)
            if c > cuts.last! { cuts.append(c) }
        }
        cuts.append(n)
        let pieces = cuts.count - 1
        let locals = ResultSlots<(ByteStringTable, [Int])>(count: pieces)
        let pre = pretokenizer
        let cutPoints = cuts
        utf8.withUnsafeMutableBufferPointer { buf in
            let shared = SendablePointer(UnsafePointer(buf.baseAddress!))
            let next = AtomicCounter()
            DispatchQueue.concurrentPerform(iterations: min(threads, pieces)) { _ in
                while true {
                    let k = next.increment()
                    if k >= pieces { break }
                    let base = shared.pointer
                    let lo = cutPoints[k]
                    let hi = cutPoints[k + 1]
                    var table = ByteStringTable(capacity: 1 << 14)
                    var c: [Int] = []
                    let scanner = PretokenScanner(base + lo, hi - lo, pre)
                    var i = 0
                    while i < hi - lo {
                        let j = scanner.next(i)
                        let p = base + lo + i
                        let (idx, inserted) = table.insert(p, j - i, hash: hashBytes(p, j - i))
                        if inserted { c.append(1) } else { c[idx] += 1 }
                        i = j
                    }
                    locals.set(k, (table, c))
                }
            }
        }
        for (table, c) in locals.values() {
            table.arena.withUnsafeBufferPointer { ar in
                for k in 0..<table.count {
                    let a = table.starts[k]
                    let len = table.starts[k + 1] - a
                    let p = ar.baseAddress! + a
                    let (idx, inserted) = words.insert(p, len, hash: hashBytes(p, len))
                    if inserted { counts.append(c[k]) } else { counts[idx] += c[k] }
                }
            }
        }
    }
}

/// A read-only pointer handed to worker threads that only read through it while its owner
/// keeps the memory alive.
struct SendablePointer: @unchecked Sendable {
    let pointer: UnsafePointer<UInt8>
    init(_ p: UnsafePointer<UInt8>) { pointer = p }
}
