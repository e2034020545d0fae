import CZstd
import ToolkitSupport

/// Thin wrappers over libzstd's one-shot API. Every frame carries zstd's own content checksum
/// (`ZSTD_c_checksumFlag`), so corruption inside a frame is caught by zstd before ours.
enum Zstd {
    /// A message for a libzstd return code, or nil when it is not an error.
    static func errorMessage(_ code: Int) -> String? {
        guard ZSTD_isError(code) != 0 else { return nil }
        return String(cString: ZSTD_getErrorName(code))
    }

    /// Compresses `source` into one zstd frame at `level`.
    static func compress(_ source: UnsafeRawBufferPointer, level: Int) throws -> [UInt8] {
        var out: [UInt8] = []
        try ZstdCompressor(level: level).compress(source, appendingTo: &out)
        return out
    }

    /// Decompresses one frame into exactly `destination.count` bytes; returns an error message
    /// when the frame is corrupt or its content size differs.
    static func decompress(
        _ source: UnsafeRawBufferPointer, into destination: UnsafeMutableRawBufferPointer
    ) -> String? {
        let size = ZSTD_getFrameContentSize(source.baseAddress, source.count)
        // ZSTD_CONTENTSIZE_ERROR and ZSTD_CONTENTSIZE_UNKNOWN are macros Swift cannot import.
        if size == UInt64.max - 1 { return "not a zstd frame" }
        if size != UInt64.max && size != UInt64(destination.count) {
            return "frame holds \(size) bytes, expected \(destination.count)"
        }
        let n = ZSTD_decompress(
            destination.baseAddress, destination.count, source.baseAddress, source.count)
        if let message = errorMessage(n) { return "zstd: \(message)" }
        if n != destination.count { return "frame holds \(n) bytes, expected \(destination.count)" }
        return nil
    }
}

/// A zstd compression context kept across frames, so its tables are allocated once per thread
/// instead of once per frame. Not thread-safe: one per thread.
final class ZstdCompressor {
    private let cctx: OpaquePointer

    init(level: Int) throws {
        guard let cctx = ZSTD_createCCtx() else { throw ToolkitError("zstd: out of memory") }
        self.cctx = cctx
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_compressionLevel, Int32(level))
        ZSTD_CCtx_setParameter(cctx, ZSTD_c_checksumFlag, 1)
    }

    deinit { ZSTD_freeCCtx(cctx) }

    /// Compresses `source` into one zstd frame appended to `out` (whose spare capacity is
    /// reused, so a buffer kept across calls costs no new memory).
    func compress(_ source: UnsafeRawBufferPointer, appendingTo out: inout [UInt8]) throws {
        let start = out.count
        let bound = ZSTD_compressBound(source.count)
        out.append(contentsOf: repeatElement(0, count: bound))
        let written = out.withUnsafeMutableBytes { all in
            let dst = UnsafeMutableRawBufferPointer(rebasing: all[start...])
            return ZSTD_compress2(
                cctx, dst.baseAddress, dst.count, source.baseAddress, source.count)
        }
        if let message = Zstd.errorMessage(written) {
            out.removeSubrange(start...)
            throw ToolkitError("zstd: \(message)")
        }
        out.removeSubrange((start + written)...)
    }
}
