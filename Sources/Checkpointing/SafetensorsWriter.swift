import Foundation
import ToolkitSupport

/// Builds a `.safetensors` file.
///
/// Layout matches the reference writer (`safetensors` 0.x, as used by `save_pretrained`), so an
/// all-F32 file round-trips byte for byte: `__metadata__` first (keys sorted), then the tensors
/// ordered by element size (largest first, which keeps every tensor naturally aligned) and then by
/// name; compact JSON; the header padded with spaces to a multiple of 8 bytes; data contiguous in
/// header order. Files are written atomically.
public struct SafetensorsWriter: Sendable {
    /// `__metadata__` (omitted from the header when nil). `save_pretrained` writes
    /// `{"format": "pt"}`.
    public var metadata: [String: String]?

    private enum Payload: Sendable {
        case floats([Float])
        case ints([Int])
        case view(FloatView)
    }

    /// F32 values that stay where they are until the file is written (a model's weights, an
    /// optimizer's moments): saving copies nothing. The memory must stay alive (`owner` keeps it)
    /// and unchanged until `write` returns.
    public struct FloatView: @unchecked Sendable {
        public let base: UnsafePointer<Float>
        public let count: Int
        let owner: AnyObject?

        public init(base: UnsafePointer<Float>, count: Int, owner: AnyObject?) {
            self.base = base
            self.count = count
            self.owner = owner
        }
    }

    private struct Entry: Sendable {
        var name: String
        var dtype: SafetensorsDType
        var shape: [Int]
        var payload: Payload
        var count: Int
        var byteCount: Int { count * dtype.size }
    }

    private var entries: [String: Entry] = [:]

    public init(metadata: [String: String]? = ["format": "pt"]) {
        self.metadata = metadata
    }

    /// Adds a float tensor stored as `dtype` (F32, BF16, F16 or F64).
    public mutating func add(
        _ name: String, _ tensor: HostTensor, as dtype: SafetensorsDType = .f32
    ) throws {
        guard dtype.isFloat else {
            throw ToolkitError(
                "safetensors: tensor '\(name)': \(dtype.rawValue) is not a float dtype")
        }
        try insert(
            Entry(
                name: name, dtype: dtype, shape: tensor.shape, payload: .floats(tensor.values),
                count: tensor.values.count))
    }

    /// Adds an F32 tensor read in place when the file is written (see `FloatView`).
    public mutating func add(_ name: String, shape: [Int], view: FloatView) throws {
        guard HostTensor.elementCount(shape) == view.count else {
            throw ToolkitError("safetensors: tensor '\(name)': shape \(shape) does not match \(view.count) values")
        }
        try insert(Entry(name: name, dtype: .f32, shape: shape, payload: .view(view), count: view.count))
    }

    /// Adds an integer tensor stored as `dtype` (I64, I32, …, or BOOL for 0/1 values).
    public mutating func add(
        _ name: String, ints: [Int], shape: [Int], as dtype: SafetensorsDType = .i64
    ) throws {
        guard dtype.isInteger else {
            throw ToolkitError(
                "safetensors: tensor '\(name)': \(dtype.rawValue) is not an integer dtype")
        }
        guard HostTensor.elementCount(shape) == ints.count else {
            throw ToolkitError(
                "safetensors: tensor '\(name)': shape \(shape) does not match \(ints.count) values")
        }
        try insert(
            Entry(name: name, dtype: dtype, shape: shape, payload: .ints(ints), count: ints.count))
    }

    private mutating func insert(_ e: Entry) throws {
        guard !e.name.isEmpty, e.name != "__metadata__" else {
            throw ToolkitError("safetensors: invalid tensor name '\(e.name)'")
        }
        guard entries[e.name] == nil else {
            throw ToolkitError("safetensors: duplicate tensor name '\(e.name)'")
        }
        entries[e.name] = e
    }

    /// Tensor names in file order.
    public var orderedNames: [String] { ordered.map(\.name) }

    private var ordered: [Entry] {
        entries.values.sorted { a, b in
            a.dtype.size != b.dtype.size ? a.dtype.size > b.dtype.size : a.name < b.name
        }
    }

    /// Total size of the data section in bytes.
    public var dataByteCount: Int { entries.values.reduce(0) { $0 + $1.byteCount } }

    /// The 8-byte length field plus the padded JSON header.
    public func headerBytes() -> [UInt8] {
        var json = "{"
        var first = true
        if let metadata {
            json += "\"__metadata__\":{"
            json += metadata.keys.sorted().map {
                JSONText.quoted($0) + ":" + JSONText.quoted(metadata[$0] ?? "")
            }.joined(separator: ",")
            json += "}"
            first = false
        }
        var offset = 0
        for e in ordered {
            if !first { json += "," }
            first = false
            let shape = e.shape.map(String.init).joined(separator: ",")
            json += JSONText.quoted(e.name)
            json += ":{\"dtype\":\"\(e.dtype.rawValue)\",\"shape\":[\(shape)],"
            json += "\"data_offsets\":[\(offset),\(offset + e.byteCount)]}"
            offset += e.byteCount
        }
        json += "}"
        var header = Array(json.utf8)
        header.append(
            contentsOf: repeatElement(UInt8(ascii: " "), count: (8 - header.count % 8) % 8))
        var out: [UInt8] = []
        out.reserveCapacity(8 + header.count)
        withUnsafeBytes(of: UInt64(header.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(contentsOf: header)
        return out
    }

    /// Streams the file: header, then each tensor's bytes (views without a copy; the host is
    /// little-endian, so F32 is the memory itself).
    private func emit(_ sink: (UnsafeRawBufferPointer) throws -> Void) throws {
        try headerBytes().withUnsafeBytes(sink)
        for e in ordered {
            if case .view(let v) = e.payload {
                try sink(UnsafeRawBufferPointer(start: v.base, count: v.count * 4))
                continue
            }
            var bytes: [UInt8] = []
            bytes.reserveCapacity(e.byteCount)
            switch e.payload {
            case .floats(let v):
                DTypeConversion.encode(v, as: e.dtype, into: &bytes)
            case .ints(let v):
                if let bad = DTypeConversion.encode(v, as: e.dtype, into: &bytes) {
                    throw ToolkitError(
                        "safetensors: tensor '\(e.name)': value \(v[bad]) at index \(bad) does not "
                            + "fit \(e.dtype.rawValue)")
                }
            case .view:
                break
            }
            try bytes.withUnsafeBytes(sink)
        }
    }

    /// The complete file image.
    public func serialized() throws -> Data {
        var data = Data()
        try emit { data.append(contentsOf: $0) }
        return data
    }

    /// Writes the file atomically (temporary file + rename).
    public func write(to path: String) throws {
        try AtomicFile.write(to: path) { handle in
            try emit { try handle.write(contentsOf: $0) }
        }
    }

    /// Convenience: writes every tensor of `tensors` as `dtype`.
    public static func write(
        _ tensors: [String: HostTensor], to path: String, as dtype: SafetensorsDType = .f32,
        metadata: [String: String]? = ["format": "pt"]
    ) throws {
        var w = SafetensorsWriter(metadata: metadata)
        for (name, t) in tensors { try w.add(name, t, as: dtype) }
        try w.write(to: path)
    }
}
