import Foundation

/// A fast 64-bit hash of a byte string (8 bytes at a time, multiply–xorshift mixing).
@inline(__always)
func hashBytes(_ p: UnsafePointer<UInt8>, _ n: Int) -> UInt64 {
    var h: UInt64 = 0x9E37_79B9_7F4A_7C15 ^ UInt64(n)
    var i = 0
    let raw = UnsafeRawPointer(p)
    while i + 8 <= n {
        let w = raw.loadUnaligned(fromByteOffset: i, as: UInt64.self)
        h = (h ^ w) &* 0xBF58_476D_1CE4_E5B9
        h ^= h >> 31
        i += 8
    }
    if i < n {
        var w: UInt64 = 0
        var shift: UInt64 = 0
        while i < n {
            w |= UInt64(p[i]) << shift
            shift += 8
            i += 1
        }
        h = (h ^ w) &* 0x94D0_49BB_1331_11EB
    }
    h ^= h >> 29
    h = h &* 0xBF58_476D_1CE4_E5B9
    return h ^ (h >> 32)
}

/// Whether `n` bytes at `a` and `b` are equal. Pre-tokens are short (~5 bytes): words of 8 and a
/// byte tail inline, where a call to `memcmp` cost ~8 % of encoding; long keys go to `memcmp`.
@inline(__always)
func bytesEqual(_ a: UnsafePointer<UInt8>, _ b: UnsafePointer<UInt8>, _ n: Int) -> Bool {
    if n > 32 { return memcmp(a, b, n) == 0 }
    let ra = UnsafeRawPointer(a), rb = UnsafeRawPointer(b)
    var i = 0
    while i + 8 <= n {
        if ra.loadUnaligned(fromByteOffset: i, as: UInt64.self) != rb.loadUnaligned(fromByteOffset: i, as: UInt64.self) {
            return false
        }
        i += 8
    }
    while i < n {
        if a[i] != b[i] { return false }
        i += 1
    }
    return true
}

/// An insertion-ordered set of byte strings: `index(of:)` or `insert` gives each distinct
/// string a dense index 0, 1, 2, …; keys live in one byte arena (no per-key allocation).
struct ByteStringTable {
    private(set) var arena: [UInt8] = []
    private(set) var starts: [Int] = [0]  // key k occupies arena[starts[k]..<starts[k+1]]
    private var hashes: [UInt64] = []
    private var slots: [Int32]  // -1 empty, else key index
    private var mask: Int

    init(capacity: Int = 1024) {
        var size = 16
        while size < capacity * 2 { size <<= 1 }
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
    }

    var count: Int { hashes.count }

    func key(_ k: Int) -> ArraySlice<UInt8> { arena[starts[k]..<starts[k + 1]] }

    /// Index of the string, or -1. (Unchecked pointer reads: every index read comes from `slots`
    /// or is below `count`, and `starts` has `count + 1` entries.)
    func find(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> Int {
        slots.withUnsafeBufferPointer { sl in
            hashes.withUnsafeBufferPointer { hs in
                starts.withUnsafeBufferPointer { st in
                    arena.withUnsafeBufferPointer { ar in
                        let slot = sl.baseAddress!, hash = hs.baseAddress, start = st.baseAddress!
                        var s = Int(truncatingIfNeeded: h) & mask
                        while true {
                            let k = Int(slot[s])
                            if k < 0 { return -1 }
                            if hash![k] == h {
                                let a = start[k]
                                if start[k + 1] - a == n && (n == 0 || bytesEqual(ar.baseAddress! + a, p, n)) {
                                    return k
                                }
                            }
                            s = (s + 1) & mask
                        }
                    }
                }
            }
        }
    }

    /// Index of the string, inserting it if new.
    mutating func insert(_ p: UnsafePointer<UInt8>, _ n: Int, hash h: UInt64) -> (
        index: Int, inserted: Bool
    ) {
        let found = find(p, n, hash: h)
        if found >= 0 { return (found, false) }
        let k = hashes.count
        hashes.append(h)
        arena.append(contentsOf: UnsafeBufferPointer(start: p, count: n))
        starts.append(arena.count)
        if hashes.count * 2 > slots.count { grow() } else { place(k, h) }
        return (k, true)
    }

    mutating func insert(_ bytes: [UInt8]) -> (index: Int, inserted: Bool) {
        bytes.withUnsafeBufferPointer { b in
            let p = b.baseAddress ?? UnsafePointer(bitPattern: 1)!
            return insert(p, b.count, hash: hashBytes(p, b.count))
        }
    }

    func find(_ bytes: [UInt8]) -> Int {
        bytes.withUnsafeBufferPointer { b in
            let p = b.baseAddress ?? UnsafePointer(bitPattern: 1)!
            return find(p, b.count, hash: hashBytes(p, b.count))
        }
    }

    private mutating func place(_ k: Int, _ h: UInt64) {
        var s = Int(truncatingIfNeeded: h) & mask
        while slots[s] >= 0 { s = (s + 1) & mask }
        slots[s] = Int32(k)
    }

    private mutating func grow() {
        let size = slots.count * 2
        slots = [Int32](repeating: -1, count: size)
        mask = size - 1
        for k in 0..<hashes.count { place(k, hashes[k]) }
    }

    mutating func removeAll() {
        arena.removeAll(keepingCapacity: true)
        starts = [0]
        hashes.removeAll(keepingCapacity: true)
        for i in slots.indices { slots[i] = -1 }
    }
}

/// Merge lookup: (left id, right id) → (rank, merged id), open addressing over packed keys.
struct PairTable: Sendable {
    private var keys: [UInt64]
    private var values: [UInt64]  // rank << 32 | merged id
    private let mask: Int
    static let empty = UInt64.max

    init(_ merges: [(left: UInt32, right: UInt32, result: UInt32)]) {
        var size = 16
        while size < merges.count * 2 { size <<= 1 }
        keys = [UInt64](repeating: Self.empty, count: size)
        values = [UInt64](repeating: 0, count: size)
        mask = size - 1
        for (rank, m) in merges.enumerated() {
            let key = UInt64(m.left) << 32 | UInt64(m.right)
            var s = Self.slot(key, mask)
            while keys[s] != Self.empty && keys[s] != key { s = (s + 1) & mask }
            keys[s] = key  // a repeated merge takes its last rank, as HF tokenizers' map does
            values[s] = UInt64(rank) << 32 | UInt64(m.result)
        }
    }

    @inline(__always) static func slot(_ key: UInt64, _ mask: Int) -> Int {
        Int(truncatingIfNeeded: (key &* 0x9E37_79B9_7F4A_7C15) >> 29) & mask
    }

    /// Raw buffers for the hot loop.
    func withLookup<R>(_ body: (PairLookup) -> R) -> R {
        keys.withUnsafeBufferPointer { k in
            values.withUnsafeBufferPointer { v in
                body(PairLookup(keys: k.baseAddress!, values: v.baseAddress!, mask: mask))
            }
        }
    }
}

/// Unsafe view of a `PairTable` used inside encoding loops.
struct PairLookup {
    let keys: UnsafePointer<UInt64>
    let values: UnsafePointer<UInt64>
    let mask: Int

    /// rank << 32 | merged id, or UInt64.max when the pair does not merge.
    @inline(__always) func get(_ a: UInt32, _ b: UInt32) -> UInt64 {
        let key = UInt64(a) << 32 | UInt64(b)
        var s = PairTable.slot(key, mask)
        while true {
            let k = keys[s]
            if k == key { return values[s] }
            if k == PairTable.empty { return UInt64.max }
            s = (s + 1) & mask
        }
    }
}
