import Foundation
import ToolkitSupport

/// A parsed JSON document, used for safetensors headers, index files and HF `config.json`,
/// where the structure is dynamic and every key needs its own error message.
///
/// Parsing goes through `JSONDecoder` (which limits nesting depth, so hostile input cannot
/// overflow the stack). Integers that fit `Int64` decode as `.int`, even when written `1.0` or
/// `1e3`; other numbers are `.double`.
package indirect enum JSONValue: Codable, Equatable, Sendable {
    case null
    case bool(Bool)
    case int(Int64)
    case double(Double)
    case string(String)
    case array([JSONValue])
    case object([String: JSONValue])

    package init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() {
            self = .null
        } else if let b = try? c.decode(Bool.self) {
            self = .bool(b)
        } else if let i = try? c.decode(Int64.self) {
            self = .int(i)
        } else if let d = try? c.decode(Double.self) {
            self = .double(d)
        } else if let s = try? c.decode(String.self) {
            self = .string(s)
        } else if let a = try? c.decode([JSONValue].self) {
            self = .array(a)
        } else {
            self = .object(try c.decode([String: JSONValue].self))
        }
    }

    package func encode(to encoder: Encoder) throws {
        var c = encoder.singleValueContainer()
        switch self {
        case .null: try c.encodeNil()
        case .bool(let b): try c.encode(b)
        case .int(let i): try c.encode(i)
        case .double(let d): try c.encode(d)
        case .string(let s): try c.encode(s)
        case .array(let a): try c.encode(a)
        case .object(let o): try c.encode(o)
        }
    }

    /// Parses `data`, turning any decoding failure into a `ToolkitError` naming `path`.
    package static func parse(_ data: Data, path: String, what: String = "JSON") throws
        -> JSONValue
    {
        let value: JSONValue
        do {
            value = try JSONDecoder().decode(JSONValue.self, from: data)
        } catch {
            throw ToolkitError.file(path, "invalid \(what): \(Self.describe(error))")
        }
        // JSONDecoder keeps one of two equal keys silently; a second tensor or setting of the
        // same name is ambiguous, so it is an error.
        if let (key, offset) = duplicateKey(in: data) {
            throw ToolkitError.file(path, "invalid \(what): key '\(key)' appears twice in one object", offset: offset)
        }
        return value
    }

    /// The first key that appears twice in one object of already valid JSON `data`, with its byte
    /// offset: a linear scan over strings and brackets.
    static func duplicateKey(in data: Data) -> (String, Int)? {
        let bytes = [UInt8](data)
        var objects: [Set<[UInt8]>?] = []  // per open bracket: the keys seen (nil for arrays)
        var i = 0
        while i < bytes.count {
            switch bytes[i] {
            case UInt8(ascii: "{"): objects.append([])
            case UInt8(ascii: "["): objects.append(nil)
            case UInt8(ascii: "}"), UInt8(ascii: "]"): if !objects.isEmpty { objects.removeLast() }
            case UInt8(ascii: "\""):
                let start = i
                i += 1
                while i < bytes.count, bytes[i] != UInt8(ascii: "\"") { i += bytes[i] == UInt8(ascii: "\\") ? 2 : 1 }
                let raw = Array(bytes[(start + 1)..<min(i, bytes.count)])
                var j = i + 1
                while j < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[j]) { j += 1 }
                if j < bytes.count, bytes[j] == UInt8(ascii: ":"), let last = objects.last, var keys = last {
                    if keys.contains(raw) { return (String(decoding: raw, as: UTF8.self), start) }
                    keys.insert(raw)
                    objects[objects.count - 1] = keys
                }
            default: break
            }
            i += 1
        }
        return nil
    }

    private static func describe(_ error: Error) -> String {
        if case DecodingError.dataCorrupted(let ctx) = error {
            if let u = ctx.underlyingError as NSError?,
                let d = u.userInfo[NSDebugDescriptionErrorKey] as? String
            {
                return d
            }
            return ctx.debugDescription
        }
        return "\(error)"
    }

    package var objectValue: [String: JSONValue]? {
        if case .object(let o) = self { return o }
        return nil
    }

    package var arrayValue: [JSONValue]? {
        if case .array(let a) = self { return a }
        return nil
    }

    package var stringValue: String? {
        if case .string(let s) = self { return s }
        return nil
    }

    package var intValue: Int? {
        if case .int(let i) = self { return Int(exactly: i) }
        return nil
    }

    package var doubleValue: Double? {
        switch self {
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    package var boolValue: Bool? {
        if case .bool(let b) = self { return b }
        return nil
    }

    package var isNull: Bool { self == .null }

    /// A short description of the value's type for error messages.
    package var typeName: String {
        switch self {
        case .null: "null"
        case .bool: "a boolean"
        case .int: "an integer"
        case .double: "a number"
        case .string: "a string"
        case .array: "an array"
        case .object: "an object"
        }
    }
}

/// Minimal JSON text writing with the same escaping rules as serde_json / Python's `json`
/// (`ensure_ascii=False`): quotes, backslashes and control characters are escaped.
package enum JSONText {
    package static func quoted(_ s: String) -> String { JSONString.quoted(s) }
}

extension JSONValue {
    /// Pretty JSON text as Python's `json.dumps(value, indent: 2, sort_keys=True)` writes it
    /// (the format of `config.json` files from `save_pretrained`).
    package func rendered(indent: Int = 2) -> String {
        var out = ""
        render(into: &out, level: 0, indent: indent)
        return out
    }

    private func render(into out: inout String, level: Int, indent: Int) {
        let pad = String(repeating: " ", count: (level + 1) * indent)
        let closePad = String(repeating: " ", count: level * indent)
        switch self {
        case .null: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            // Python's repr: shortest round-trip digits; non-finite values are not JSON.
            out += d.isFinite ? "\(d)" : "null"
        case .string(let s): out += JSONText.quoted(s)
        case .array(let a):
            if a.isEmpty {
                out += "[]"
                return
            }
            out += "[\n"
            for (i, e) in a.enumerated() {
                out += pad
                e.render(into: &out, level: level + 1, indent: indent)
                out += i + 1 < a.count ? ",\n" : "\n"
            }
            out += closePad + "]"
        case .object(let o):
            if o.isEmpty {
                out += "{}"
                return
            }
            out += "{\n"
            let keys = o.keys.sorted()
            for (i, k) in keys.enumerated() {
                out += pad + JSONText.quoted(k) + ": "
                o[k]?.render(into: &out, level: level + 1, indent: indent)
                out += i + 1 < keys.count ? ",\n" : "\n"
            }
            out += closePad + "}"
        }
    }
}
