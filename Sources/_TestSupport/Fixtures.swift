import Foundation
import TensorCore

/// Reads the reference fixtures under `Tests/Fixtures` (F32 and I64 safetensors; test-only).
public enum Fixtures {
    /// `Tests/Fixtures` located from this source file.
    public static var root: URL {
        URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
            .deletingLastPathComponent().appendingPathComponent("Tests/Fixtures")
    }

    public struct Entry {
        public var dtype: String
        public var shape: [Int]
        public var floats: [Float]
        public var ints: [Int]
        public var tensor: Tensor { (try? Tensor(shape: shape, values: floats)) ?? Tensor(zeros: shape) }
    }

    /// All tensors of a safetensors file under `Tests/Fixtures/<relative>`.
    public static func load(_ relative: String) throws -> [String: Entry] {
        let data = try Data(contentsOf: root.appendingPathComponent(relative))
        let n = data.prefix(8).enumerated().reduce(0) { $0 | (Int($1.element) << (8 * $1.offset)) }
        let header = try JSONSerialization.jsonObject(with: data.subdata(in: 8..<(8 + n))) as? [String: Any] ?? [:]
        var out: [String: Entry] = [:]
        for (name, value) in header where name != "__metadata__" {
            guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
                  let shape = info["shape"] as? [Int], let offs = info["data_offsets"] as? [Int] else { continue }
            let bytes = data.subdata(in: (8 + n + offs[0])..<(8 + n + offs[1]))
            var e = Entry(dtype: dtype, shape: shape, floats: [], ints: [])
            bytes.withUnsafeBytes { raw in
                switch dtype {
                case "F32": e.floats = Array(raw.bindMemory(to: Float.self))
                case "I64": e.ints = raw.bindMemory(to: Int64.self).map { Int($0) }
                default: break
                }
            }
            out[name] = e
        }
        return out
    }

    /// Max |a − b| over two equal-length arrays (∞ when lengths differ).
    public static func maxAbsDiff(_ a: [Float], _ b: [Float]) -> Float {
        guard a.count == b.count else { return .infinity }
        return zip(a, b).reduce(0) { max($0, abs($1.0 - $1.1)) }
    }
}
