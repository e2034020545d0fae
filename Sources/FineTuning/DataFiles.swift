import Foundation
import ToolkitSupport

/// JSON Lines: one object per non-blank line.
public enum JSONL {
    /// Every record with its location (`FILE:LINE`) for error messages.
    public static func read(_ path: String) throws -> [(object: [String: Any], location: String)] {
        guard let data = FileManager.default.contents(atPath: path) else { throw ToolkitError.file(path, "cannot read") }
        guard let text = String(data: data, encoding: .utf8) else { throw ToolkitError.file(path, "not valid UTF-8") }
        var out: [(object: [String: Any], location: String)] = []
        for (i, line) in text.split(omittingEmptySubsequences: false, whereSeparator: \.isNewline).enumerated() {
            let trimmed = line.trimmingCharacters(in: .whitespacesAndNewlines)
            if trimmed.isEmpty { continue }
            let location = "\(path):\(i + 1)"
            guard let obj = (try? JSONSerialization.jsonObject(with: Data(trimmed.utf8))) as? [String: Any] else {
                throw ToolkitError("\(location): not a JSON object")
            }
            out.append((obj, location))
        }
        guard !out.isEmpty else { throw ToolkitError.file(path, "no records") }
        return out
    }
}

/// Minimal RFC 4180 CSV: comma-separated, double-quoted fields may hold commas, quotes (`""`) and newlines.
public enum CSV {
    public static func parse(_ text: String, path: String) throws -> [[String]] {
        var rows: [[String]] = [], row: [String] = [], field = ""
        var quoted = false, atFieldStart = true, line = 1
        var it = Array(text.unicodeScalars)[...]
        while let c = it.popFirst() {
            if quoted {
                if c == "\"" {
                    if it.first == "\"" { it.removeFirst(); field.unicodeScalars.append("\"") } else { quoted = false }
                } else {
                    if c == "\n" { line += 1 }
                    field.unicodeScalars.append(c)
                }
                continue
            }
            switch c {
            case "\"" where atFieldStart: quoted = true; atFieldStart = false
            case ",": row.append(field); field = ""; atFieldStart = true
            case "\r": continue
            case "\n":
                row.append(field)
                if !(row.count == 1 && row[0].isEmpty) { rows.append(row) }
                row = []; field = ""; atFieldStart = true; line += 1
            default: field.unicodeScalars.append(c); atFieldStart = false
            }
        }
        if quoted { throw ToolkitError("\(path):\(line): unterminated quoted field") }
        if !field.isEmpty || !row.isEmpty { row.append(field); rows.append(row) }
        return rows
    }
}

/// Labelled texts for classification: CSV with a header naming `text` and `label` columns, or JSONL
/// objects with `text` and `label` (string or integer).
public struct LabelledTexts {
    public var texts: [String]
    /// Raw label strings, one per text.
    public var labels: [String]

    public static func load(_ path: String) throws -> LabelledTexts {
        if path.lowercased().hasSuffix(".csv") {
            guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
                throw ToolkitError.file(path, "cannot read as UTF-8 text")
            }
            let rows = try CSV.parse(text, path: path)
            guard let header = rows.first else { throw ToolkitError.file(path, "empty") }
            let names = header.map { $0.trimmingCharacters(in: .whitespaces).lowercased() }
            guard let ti = names.firstIndex(of: "text"), let li = names.firstIndex(of: "label") else {
                throw ToolkitError.file(path, "the header must name a text and a label column, got \(header)")
            }
            var out = LabelledTexts(texts: [], labels: [])
            for (i, r) in rows.dropFirst().enumerated() {
                guard r.count == header.count else {
                    throw ToolkitError("\(path): row \(i + 2) has \(r.count) fields, the header has \(header.count)")
                }
                out.texts.append(r[ti])
                out.labels.append(r[li].trimmingCharacters(in: .whitespaces))
            }
            guard !out.texts.isEmpty else { throw ToolkitError.file(path, "no rows") }
            return out
        }
        var out = LabelledTexts(texts: [], labels: [])
        for (obj, location) in try JSONL.read(path) {
            guard let text = obj["text"] as? String else { throw ToolkitError("\(location): key text missing or not a string") }
            let label: String
            if let s = obj["label"] as? String { label = s }
            else if let n = obj["label"] as? Int { label = String(n) }
            else { throw ToolkitError("\(location): key label missing or not a string/integer") }
            out.texts.append(text)
            out.labels.append(label)
        }
        return out
    }

    /// Class names: `0…max` when every label is a non-negative integer, else the sorted distinct strings.
    public func classNames() -> [String] {
        let ints = labels.compactMap { Int($0) }
        if ints.count == labels.count, let m = ints.max(), ints.allSatisfy({ $0 >= 0 }), m < 10_000 {
            return (0...m).map(String.init)
        }
        return Array(Set(labels)).sorted()
    }
}
