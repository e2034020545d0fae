import ToolkitSupport

/// Checks a recipe's text (or a `--set` value) before the YAML parser sees it, so that no input can
/// exhaust the parser: a size limit, a nesting-depth limit (flow brackets and block indentation
/// counted by a linear scan), and no anchors or aliases (their expansion is unbounded, and recipes
/// compose with `extends:` instead). Errors name the file and the byte offset.
enum RecipeText {
    static let maxBytes = 1 << 20
    static let maxDepth = 64

    static func screen(_ text: String, path: String) throws {
        let bytes = Array(text.utf8)
        guard bytes.count <= maxBytes else {
            throw ToolkitError.file(path, "is \(bytes.count) bytes; a recipe is limited to \(maxBytes) bytes")
        }
        var flow = 0, indents: [Int] = [], quote: UInt8? = nil, comment = false
        var lineStart = true, indent = 0, sequenceDashes = 0
        // True where a scalar may start (after indentation, "- ", ": ", "[", "{", ","): only there
        // do quotes open and '&'/'*' mean an anchor or alias; inside a plain scalar they are text
        // ("GPT-2's shape", "uses *tied* embeddings").
        var scalarStart = true
        var i = 0
        func fail(_ what: String) -> ToolkitError { ToolkitError.file(path, what, offset: i) }
        func tokenBoundary(_ j: Int) -> Bool {
            j < 0 || [UInt8(ascii: " "), UInt8(ascii: "\t"), UInt8(ascii: "\n"), UInt8(ascii: "["), UInt8(ascii: "{"),
                      UInt8(ascii: ","), UInt8(ascii: ":")].contains(bytes[j])
        }
        while i < bytes.count {
            let c = bytes[i]
            if c == UInt8(ascii: "\n") {
                comment = false  // a quoted scalar may go on over lines: `quote` stays set
                lineStart = true
                scalarStart = true
                indent = 0
                sequenceDashes = 0
                i += 1
                continue
            }
            if comment { i += 1; continue }
            if let q = quote {
                if c == UInt8(ascii: "\\") && q == UInt8(ascii: "\"") { i += 2; continue }
                if c == q { quote = nil }
                i += 1
                continue
            }
            if lineStart {
                if c == UInt8(ascii: " ") { indent += 1; i += 1; continue }
                if c == UInt8(ascii: "-"), i + 1 < bytes.count, bytes[i + 1] == UInt8(ascii: " ") {
                    sequenceDashes += 1  // "- - - x": one nesting level per dash
                    indent += 2
                    i += 2
                    continue
                }
                if c != UInt8(ascii: "#") && flow == 0 {
                    while let last = indents.last, last >= indent { indents.removeLast() }
                    indents.append(indent)
                    if indents.count + sequenceDashes > maxDepth {
                        throw fail("nests blocks more than \(maxDepth) deep")
                    }
                }
                lineStart = false
            }
            let space = c == UInt8(ascii: " ") || c == UInt8(ascii: "\t")
            switch c {
            case UInt8(ascii: "#") where tokenBoundary(i - 1): comment = true
            case UInt8(ascii: "'"), UInt8(ascii: "\""):
                if scalarStart { quote = c }
            case UInt8(ascii: "["), UInt8(ascii: "{"):
                if scalarStart || flow > 0 {
                    flow += 1
                    if flow + indents.count > maxDepth { throw fail("nests brackets more than \(maxDepth) deep") }
                }
            case UInt8(ascii: "]"), UInt8(ascii: "}"): flow = max(0, flow - 1)
            case UInt8(ascii: "&"), UInt8(ascii: "*"):
                if scalarStart, i + 1 < bytes.count, bytes[i + 1] > 0x20,
                   ![UInt8(ascii: ","), UInt8(ascii: "]"), UInt8(ascii: "}")].contains(bytes[i + 1]) {
                    throw fail("YAML anchors and aliases ('\(Character(UnicodeScalar(c)))') are not supported in recipes; use extends:")
                }
            default: break
            }
            if !space {
                let next = i + 1 < bytes.count ? bytes[i + 1] : UInt8(ascii: "\n")
                let separator = (c == UInt8(ascii: ":") || c == UInt8(ascii: "-"))
                    && (next == UInt8(ascii: " ") || next == UInt8(ascii: "\n") || next == UInt8(ascii: "\t"))
                scalarStart = separator || (flow > 0 && [UInt8(ascii: "["), UInt8(ascii: "{"), UInt8(ascii: ",")].contains(c))
            }
            i += 1
        }
    }
}
