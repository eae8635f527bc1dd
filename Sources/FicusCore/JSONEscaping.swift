/// JSON string escaping for the few places that write JSON by hand (error bodies, health answers).
///
/// Those answers are written on the hot path or before any encoder is set up; one shared escaper keeps them all
/// valid JSON whatever an upstream name or error message contains.
public enum JSONEscaping {
    /// `text` escaped for use between the quotes of a JSON string literal.
    public static func escape(_ text: String) -> String {
        var out = ""
        out.reserveCapacity(text.utf8.count)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out
    }
}
