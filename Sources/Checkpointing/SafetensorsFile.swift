import Foundation
import ToolkitSupport

/// One tensor's entry in a safetensors header.
public struct SafetensorsTensorInfo: Sendable, Equatable {
    public var name: String
    public var dtype: SafetensorsDType
    public var shape: [Int]
    /// Byte range relative to the start of the data section (the byte after the header).
    public var dataOffsets: Range<Int>
    /// Number of elements (product of `shape`).
    public var count: Int
}

/// A read-only view of a `.safetensors` file: 8-byte little-endian header length N, N bytes of
/// JSON header (`name → {dtype, shape, data_offsets}` plus optional `__metadata__`), then the
/// raw little-endian row-major data.
///
/// Files are memory-mapped (or a `Data` buffer is used as is); the header is validated strictly
/// on open, so that every later access is in bounds:
/// - header length at most 100 MB and within the file;
/// - the header is a UTF-8 JSON object; `__metadata__`, if present, maps strings to strings;
/// - every dtype is known, dims are non-negative, `data_offsets` are `[begin, end]` with
///   `end - begin == count × dtype size`;
/// - the tensors tile the data section exactly (no gaps, no overlaps, no trailing bytes), as the
///   reference implementation requires.
/// Errors are `ToolkitError`s naming the file, tensor and offset.
public final class SafetensorsFile: @unchecked Sendable {
    /// Upper bound on the header length, as in the reference implementation.
    public static let maxHeaderBytes = 100_000_000

    public let path: String
    /// `__metadata__` (empty when absent).
    public let metadata: [String: String]
    /// Entries by name.
    public let tensors: [String: SafetensorsTensorInfo]
    /// Byte offset of the data section in the file (8 + header length).
    public let dataStart: Int

    private let storage: Storage
    private var bytes: UnsafeRawBufferPointer { storage.bytes }

    /// Tensor names, sorted.
    public var names: [String] { tensors.keys.sorted() }

    /// Size of the data section in bytes (the sum of all tensors' sizes).
    public var dataByteCount: Int { storage.bytes.count - dataStart }

    /// Opens and validates `path` (memory-mapped).
    public convenience init(path: String) throws {
        try self.init(storage: try Storage(mapping: path), path: path)
    }

    /// Parses an in-memory file image; `path` is used in error messages only.
    public convenience init(data: Data, path: String = "<memory>") throws {
        try self.init(storage: Storage(copying: data), path: path)
    }

    private init(storage: Storage, path: String) throws {
        self.storage = storage
        self.path = path
        let parsed = try Self.parseHeader(storage.bytes, path: path)
        self.metadata = parsed.metadata
        self.tensors = parsed.tensors
        self.dataStart = parsed.dataStart
    }

    /// The entry for `name`, or an error naming the file and the tensor.
    public func info(_ name: String) throws -> SafetensorsTensorInfo {
        guard let info = tensors[name] else {
            throw ToolkitError.file(path, "no tensor named '\(name)'")
        }
        return info
    }

    /// The raw little-endian bytes of `name`.
    public func withRawBytes<R>(
        _ name: String, _ body: (UnsafeRawBufferPointer, SafetensorsTensorInfo) throws -> R
    ) throws -> R {
        let info = try info(name)
        let lo = dataStart + info.dataOffsets.lowerBound
        let slice = UnsafeRawBufferPointer(rebasing: bytes[lo..<(lo + info.dataOffsets.count)])
        return try body(slice, info)
    }

    /// The values of a float tensor (F32, F16, BF16 or F64), widened/narrowed to `Float`.
    public func floats(_ name: String) throws -> [Float] {
        try withRawBytes(name) { raw, info in
            guard info.dtype.isFloat else {
                throw ToolkitError.file(
                    path, "tensor '\(name)' has dtype \(info.dtype.rawValue), expected a float type"
                )
            }
            return DTypeConversion.floats(raw, dtype: info.dtype, count: info.count)
        }
    }

    /// A float tensor with its shape.
    public func tensor(_ name: String) throws -> HostTensor {
        let values = try floats(name)
        return HostTensor(shape: try info(name).shape, values: values)
    }

    /// The values of an integer (or BOOL) tensor as `Int`. U64 values above `Int.max` are errors.
    public func ints(_ name: String) throws -> [Int] {
        try withRawBytes(name) { raw, info in
            guard info.dtype.isInteger else {
                throw ToolkitError.file(
                    path,
                    "tensor '\(name)' has dtype \(info.dtype.rawValue), expected an integer type")
            }
            guard let values = DTypeConversion.ints(raw, dtype: info.dtype, count: info.count)
            else {
                throw ToolkitError.file(path, "tensor '\(name)' has a U64 value above Int.max")
            }
            return values
        }
    }

    /// Every float tensor in the file by name (integer tensors are an error).
    public func loadAll() throws -> [String: HostTensor] {
        var out: [String: HostTensor] = [:]
        out.reserveCapacity(tensors.count)
        for name in tensors.keys { out[name] = try tensor(name) }
        return out
    }

    // MARK: - Header validation

    private struct ParsedHeader {
        var metadata: [String: String]
        var tensors: [String: SafetensorsTensorInfo]
        var dataStart: Int
    }

    private static func parseHeader(_ bytes: UnsafeRawBufferPointer, path: String) throws
        -> ParsedHeader
    {
        guard bytes.count >= 8 else {
            throw ToolkitError.file(
                path, "file is \(bytes.count) bytes, too short for the 8-byte header length")
        }
        let n = UInt64(littleEndian: bytes.loadUnaligned(as: UInt64.self))
        guard n <= UInt64(maxHeaderBytes) else {
            throw ToolkitError.file(
                path, "header length \(n) exceeds the limit of \(maxHeaderBytes) bytes", offset: 0)
        }
        let headerLength = Int(n)
        guard headerLength <= bytes.count - 8 else {
            throw ToolkitError.file(
                path,
                "header length \(headerLength) exceeds the \(bytes.count - 8) bytes after the "
                    + "length field", offset: 0)
        }
        guard headerLength >= 2 else {
            throw ToolkitError.file(path, "header length \(headerLength) is too small", offset: 0)
        }
        let headerBytes = UnsafeRawBufferPointer(rebasing: bytes[8..<(8 + headerLength)])
        guard headerBytes.first == UInt8(ascii: "{") else {
            throw ToolkitError.file(path, "header does not start with '{'", offset: 8)
        }
        let header = try JSONValue.parse(Data(headerBytes), path: path, what: "JSON header")
        guard let object = header.objectValue else {
            throw ToolkitError.file(path, "header is \(header.typeName), expected a JSON object")
        }
        let dataStart = 8 + headerLength
        let dataSize = bytes.count - dataStart

        var metadata: [String: String] = [:]
        var tensors: [String: SafetensorsTensorInfo] = [:]
        tensors.reserveCapacity(object.count)
        for (name, value) in object {
            if name == "__metadata__" {
                // `null` means no metadata, as in the reference implementation.
                if !value.isNull { metadata = try parseMetadata(value, path: path) }
            } else {
                tensors[name] = try parseEntry(name, value, dataSize: dataSize, path: path)
            }
        }
        // The tensors must tile [0, dataSize) exactly.
        var end = 0
        for info in tensors.values.sorted(by: Self.byOffsets) {
            if info.dataOffsets.lowerBound != end {
                let what =
                    info.dataOffsets.lowerBound < end
                    ? "overlaps the previous tensor (which ends at \(end))"
                    : "leaves a gap after the previous tensor (which ends at \(end))"
                throw ToolkitError.file(
                    path,
                    "tensor '\(info.name)' data_offsets [\(info.dataOffsets.lowerBound), "
                        + "\(info.dataOffsets.upperBound)] \(what)",
                    offset: dataStart + info.dataOffsets.lowerBound)
            }
            end = info.dataOffsets.upperBound
        }
        if end != dataSize {
            throw ToolkitError.file(
                path,
                "tensors cover \(end) bytes of data but the data section has \(dataSize) bytes",
                offset: dataStart + end)
        }
        return ParsedHeader(metadata: metadata, tensors: tensors, dataStart: dataStart)
    }

    private static func byOffsets(_ a: SafetensorsTensorInfo, _ b: SafetensorsTensorInfo) -> Bool {
        (a.dataOffsets.lowerBound, a.dataOffsets.upperBound, a.name)
            < (b.dataOffsets.lowerBound, b.dataOffsets.upperBound, b.name)
    }

    private static func parseMetadata(_ value: JSONValue, path: String) throws -> [String: String] {
        guard let object = value.objectValue else {
            throw ToolkitError.file(
                path, "__metadata__ is \(value.typeName), expected an object of strings")
        }
        var out: [String: String] = [:]
        for (k, v) in object {
            guard let s = v.stringValue else {
                throw ToolkitError.file(
                    path, "__metadata__ key '\(k)' is \(v.typeName), expected a string")
            }
            out[k] = s
        }
        return out
    }

    private static func parseEntry(
        _ name: String, _ value: JSONValue, dataSize: Int, path: String
    ) throws -> SafetensorsTensorInfo {
        func fail(_ what: String) -> ToolkitError {
            ToolkitError.file(path, "tensor '\(name)': \(what)")
        }
        guard let entry = value.objectValue else {
            throw fail("entry is \(value.typeName), expected an object")
        }
        for key in entry.keys where !["dtype", "shape", "data_offsets"].contains(key) {
            throw fail("unknown key '\(key)'")
        }
        guard let dtypeName = entry["dtype"]?.stringValue else {
            throw fail("missing or non-string 'dtype'")
        }
        guard let dtype = SafetensorsDType(rawValue: dtypeName) else {
            throw fail("unknown dtype '\(dtypeName)'")
        }
        guard let shapeArray = entry["shape"]?.arrayValue else {
            throw fail("missing or non-array 'shape'")
        }
        var shape: [Int] = []
        shape.reserveCapacity(shapeArray.count)
        for (i, d) in shapeArray.enumerated() {
            guard let dim = d.intValue else { throw fail("shape[\(i)] is not an integer") }
            guard dim >= 0 else { throw fail("shape[\(i)] is negative (\(dim))") }
            shape.append(dim)
        }
        guard let count = HostTensor.elementCount(shape) else {
            throw fail("shape \(shape) overflows")
        }
        guard let offsets = entry["data_offsets"]?.arrayValue, offsets.count == 2,
            let begin = offsets[0].intValue, let end = offsets[1].intValue
        else {
            throw fail("'data_offsets' must be an array of two integers")
        }
        guard begin >= 0, begin <= end, end <= dataSize else {
            throw fail(
                "data_offsets [\(begin), \(end)] lie outside the data section of \(dataSize) bytes")
        }
        let (bytes, overflow) = count.multipliedReportingOverflow(by: dtype.size)
        guard !overflow, bytes == end - begin else {
            throw fail(
                "data_offsets [\(begin), \(end)] span \(end - begin) bytes but shape \(shape) × "
                    + "\(dtype.rawValue) needs \(overflow ? "more than Int.max" : String(bytes))")
        }
        return SafetensorsTensorInfo(
            name: name, dtype: dtype, shape: shape, dataOffsets: begin..<end, count: count)
    }
}

// MARK: - Backing storage

extension SafetensorsFile {
    /// Owns the file image: an `mmap`ed region or a heap copy.
    final class Storage: @unchecked Sendable {
        let bytes: UnsafeRawBufferPointer
        private let owned: UnsafeMutableRawPointer?
        private let mapped: Bool

        init(copying data: Data) {
            let p = UnsafeMutableRawPointer.allocate(byteCount: max(data.count, 1), alignment: 16)
            data.copyBytes(to: p.assumingMemoryBound(to: UInt8.self), count: data.count)
            owned = p
            mapped = false
            bytes = UnsafeRawBufferPointer(start: p, count: data.count)
        }

        init(mapping path: String) throws {
            let fd = open(path, O_RDONLY)
            guard fd >= 0 else {
                throw ToolkitError.file(path, "cannot open: \(String(cString: strerror(errno)))")
            }
            defer { close(fd) }
            var st = stat()
            guard fstat(fd, &st) == 0 else {
                throw ToolkitError.file(path, "cannot stat: \(String(cString: strerror(errno)))")
            }
            guard (st.st_mode & S_IFMT) == S_IFREG else {
                throw ToolkitError.file(path, "not a regular file")
            }
            let size = Int(st.st_size)
            guard size > 0 else {
                // mmap rejects zero-length mappings; an empty buffer fails validation cleanly.
                owned = nil
                mapped = false
                bytes = UnsafeRawBufferPointer(start: nil, count: 0)
                return
            }
            guard let base = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), base != MAP_FAILED
            else {
                throw ToolkitError.file(path, "cannot map: \(String(cString: strerror(errno)))")
            }
            owned = base
            mapped = true
            bytes = UnsafeRawBufferPointer(start: base, count: size)
        }

        deinit {
            if mapped {
                munmap(owned, bytes.count)
            } else {
                owned?.deallocate()
            }
        }
    }
}
