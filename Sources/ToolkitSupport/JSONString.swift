/// JSON string literals with the escaping of serde_json and Python's `json` (`ensure_ascii=False`):
/// quotes, backslashes and control characters are escaped, everything else is written as is.
public enum JSONString {
    /// Appends `s` as a quoted JSON string to `out`.
    public static func quote(_ s: String, into out: inout String) {
        out += "\""
        let hex: [Character] = Array("0123456789abcdef")
        for u in s.unicodeScalars {
            switch u {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if u.value < 0x20 {
                    out += "\\u00"
                    out.append(hex[Int(u.value >> 4)])
                    out.append(hex[Int(u.value & 15)])
                } else {
                    out.unicodeScalars.append(u)
                }
            }
        }
        out += "\""
    }

    /// `s` as a quoted JSON string.
    public static func quoted(_ s: String) -> String {
        var out = ""
        quote(s, into: &out)
        return out
    }
}
