import Foundation
import Synchronization

/// Reuses freed tensor buffers of the same size, so a training step that allocates the same
/// shapes every step stops paying for fresh pages (page faults and kernel zeroing) after the first.
///
/// Buffers are kept per exact element count, up to `capacityBytes` in total (default: an eighth of
/// physical memory, `TOOLKIT_POOL_BYTES` overrides; 0 disables pooling).
enum BufferPool {
    static let capacityBytes: Int = {
        if let v = ProcessInfo.processInfo.environment["TOOLKIT_POOL_BYTES"], let n = Int(v) { return max(0, n) }
        return Int(ProcessInfo.processInfo.physicalMemory / 8)
    }()

    struct State {
        var free: [Int: [UInt]] = [:]  // addresses (plain integers, Sendable)
        var bytes = 0
    }

    static let state = Mutex(State())

    /// A 64-byte-aligned buffer for `count` floats (pooled when possible).
    static func take(count: Int) -> UnsafeMutableRawPointer {
        if capacityBytes > 0, let address = state.withLock({ s -> UInt? in
            guard let a = s.free[count]?.popLast() else { return nil }
            s.bytes -= count * 4
            return a
        }), let p = UnsafeMutableRawPointer(bitPattern: address) {
            return p
        }
        return UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64)
    }

    /// Returns a buffer; frees it when the pool is full.
    static func give(_ p: UnsafeMutableRawPointer, count: Int) {
        let address = UInt(bitPattern: p)
        let kept = capacityBytes > 0 && state.withLock { s -> Bool in
            guard s.bytes + count * 4 <= capacityBytes else { return false }
            s.free[count, default: []].append(address)
            s.bytes += count * 4
            return true
        }
        if !kept { p.deallocate() }
    }
}
