/// Text from upstreams, clients or the store made safe to print on a terminal.
///
/// A JSON key, a path template or a change reason can hold an escape sequence (`ESC ] 52 ; ...` writes the
/// clipboard, `ESC [ 2 J` clears the screen); the text report shows such characters as `\u{1B}`, never sends them.
enum TerminalText {
    /// `text` with C0 controls, DEL and C1 controls (and the backslash that introduces an escape) written visibly.
    static func safe(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: Self.needsEscape) else { return text }
        var out = ""
        out.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            if Self.needsEscape(scalar) {
                out += "\\u{" + String(scalar.value, radix: 16, uppercase: true) + "}"
            } else {
                out.unicodeScalars.append(scalar)
            }
        }
        return out
    }

    private static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        scalar.value < 0x20 || (scalar.value >= 0x7F && scalar.value <= 0x9F)
            || scalar.value == 0x2028 || scalar.value == 0x2029
    }
}
