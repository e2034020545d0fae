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

    /// Buffers of at least this many bytes are mapped straight from the kernel: they arrive as
    /// zero pages that cost no memory until written, so a zero tensor that is never written (the
    /// weights of `build --no-save`) is never committed.
    static let mappedBytes = 1 << 20

    /// A 64-byte-aligned buffer for `count` floats (pooled when possible); `zeroed` when it is
    /// known to hold zeros (fresh pages from the kernel).
    static func take(count: Int) -> (pointer: UnsafeMutableRawPointer, zeroed: Bool) {
        if capacityBytes > 0, let address = state.withLock({ s -> UInt? in
            guard let a = s.free[count]?.popLast() else { return nil }
            s.bytes -= count * 4
            return a
        }), let p = UnsafeMutableRawPointer(bitPattern: address) {
            return (p, false)
        }
        guard count * 4 >= mappedBytes else {
            return (UnsafeMutableRawPointer.allocate(byteCount: count * 4, alignment: 64), false)
        }
        // Sizes are checked against the memory limit before a model is built; failing here means
        // the machine is out of address space, which no caller can handle.
        guard let p = mmap(nil, count * 4, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0),
              p != UnsafeMutableRawPointer(bitPattern: -1) else {
            fatalError("cannot map \(count * 4) bytes: \(String(cString: strerror(errno)))")
        }
        return (p, true)
    }

    private static func release(_ p: UnsafeMutableRawPointer, count: Int) {
        if count * 4 >= mappedBytes { munmap(p, count * 4) } else { p.deallocate() }
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
        if !kept { release(p, count: count) }
    }
}
