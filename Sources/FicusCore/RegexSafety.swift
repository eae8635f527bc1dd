/// Patterns that can make a regex engine backtrack for exponential time, refused before they are ever run.
///
/// Swift's `Regex` backtracks, so `(a+)+$` against thirty `a`s and a `b` takes seconds, per request, on an event
/// loop. The classic shape is a repeated group that itself contains a repetition (nested quantifiers: `(a+)+`,
/// `(a*)*`, `(?:x+y?)*`, `(a{2,})+`); this check refuses it at commit with a message that says where. Values are
/// also matched on at most their first `CompiledRegex.maxInput` bytes, which bounds what a pattern that slips
/// through can cost.
public enum RegexSafety {
    /// A description of the first nested quantifier in `pattern`, or nil when it has none.
    public static func nestedQuantifier(in pattern: String) -> String? {
        let bytes = Array(pattern.utf8)
        /// Per open group: where it started and whether it holds a repetition.
        var groups: [(start: Int, repeats: Bool)] = []
        var index = 0
        var lastAtomRepeats = false
        var lastGroup: Int?
        while index < bytes.count {
            let byte = bytes[index]
            switch byte {
            case UInt8(ascii: "\\"):
                index += 2
                lastAtomRepeats = false
                lastGroup = nil
                continue
            case UInt8(ascii: "["):
                index = Self.endOfClass(bytes, from: index)
                lastAtomRepeats = false
                lastGroup = nil
                continue
            case UInt8(ascii: "("):
                groups.append((index, false))
                lastGroup = nil
            case UInt8(ascii: ")"):
                guard let group = groups.popLast() else { break }
                lastAtomRepeats = group.repeats
                lastGroup = group.start
                // A repetition inside a group also repeats inside every group around it.
                if group.repeats, !groups.isEmpty { groups[groups.count - 1].repeats = true }
                index += 1
                continue
            case UInt8(ascii: "*"), UInt8(ascii: "+"), UInt8(ascii: "{"):
                let (lower, upper, next) = Self.quantifier(bytes, at: index)
                guard next > index else { break }  // a `{` that is not a quantifier is a literal
                // Ambiguous inside a group: a count that varies (`a{2}` is just `aa`); dangerous outside one: more
                // than one pass over the group.
                let varies = upper.map { $0 > lower } ?? true
                if let start = lastGroup, lastAtomRepeats, upper.map({ $0 > 1 }) ?? true {
                    let text = String(decoding: bytes[start..<next], as: UTF8.self)
                    return "'\(text)' repeats a group that itself repeats (nested quantifiers can backtrack for "
                        + "exponential time); write it without the inner or the outer repetition"
                }
                if varies {
                    if !groups.isEmpty { groups[groups.count - 1].repeats = true }
                }
                lastAtomRepeats = false
                lastGroup = nil
                index = next
                // A lazy or possessive suffix belongs to the quantifier.
                if index < bytes.count, bytes[index] == UInt8(ascii: "?") || bytes[index] == UInt8(ascii: "+") {
                    index += 1
                }
                continue
            default:
                break
            }
            if byte != UInt8(ascii: "(") {
                lastAtomRepeats = false
                lastGroup = nil
            }
            index += 1
        }
        return nil
    }

    /// The bounds of the quantifier at `index` (`*` is 0...nil, `+` 1...nil, `{n,m}`) and where it ends; `next` is
    /// `index` when the `{` there is a literal.
    private static func quantifier(_ bytes: [UInt8], at index: Int) -> (lower: Int, upper: Int?, next: Int) {
        switch bytes[index] {
        case UInt8(ascii: "*"):
            return (0, nil, index + 1)
        case UInt8(ascii: "+"):
            return (1, nil, index + 1)
        default:
            var end = index + 1
            while end < bytes.count, bytes[end] != UInt8(ascii: "}") {
                let byte = bytes[end]
                guard (byte >= 0x30 && byte <= 0x39) || byte == UInt8(ascii: ",") || byte == 0x20 else {
                    return (0, nil, index)
                }
                end += 1
            }
            guard end < bytes.count, end - index <= 24 else { return (0, nil, index) }
            let body = String(decoding: bytes[(index + 1)..<end], as: UTF8.self)
            let parts = body.split(separator: ",", omittingEmptySubsequences: false)
            guard parts.count <= 2, let lower = Int(parts[0].trimmingASCIISpaces()) else { return (0, nil, index) }
            guard parts.count == 2 else { return (lower, lower, end + 1) }
            let upperText = parts[1].trimmingASCIISpaces()
            if upperText.isEmpty { return (lower, nil, end + 1) }
            guard let upper = Int(upperText) else { return (0, nil, index) }
            return (lower, upper, end + 1)
        }
    }

    /// The index just past the character class that starts at `start` (`[...]`, with `]` first taken literally).
    private static func endOfClass(_ bytes: [UInt8], from start: Int) -> Int {
        var index = start + 1
        if index < bytes.count, bytes[index] == UInt8(ascii: "^") { index += 1 }
        if index < bytes.count, bytes[index] == UInt8(ascii: "]") { index += 1 }
        while index < bytes.count {
            if bytes[index] == UInt8(ascii: "\\") {
                index += 2
                continue
            }
            if bytes[index] == UInt8(ascii: "]") { return index + 1 }
            index += 1
        }
        return index
    }
}
