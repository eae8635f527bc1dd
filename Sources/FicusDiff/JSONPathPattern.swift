/// A JSON path pattern for ignored and sensitive fields: `$.meta.generatedAt`, `$.items[*].updatedAt`,
/// `$['a b']`, `$..password`.
///
/// Operators type these (`ficus shadow ignore ROUTE '$.meta.generatedAt'`) and paste them from reports, so the
/// notation is the one reports print, plus wildcards: `[*]` or `.*` for any element or member, and `..` for any depth.
public struct JSONPathPattern: Sendable, Hashable, CustomStringConvertible {
    /// What one step of a pattern accepts.
    enum Selector: Sendable, Hashable {
        case key(String)
        case index(Int)
        case wildcard

        func matches(_ component: JSONPathComponent) -> Bool {
            switch (self, component) {
            case (.wildcard, _):
                return true
            case (.key(let wanted), .key(let key)):
                return wanted == key
            case (.index(let wanted), .index(let index)):
                return wanted == index
            default:
                return false
            }
        }
    }

    /// One step of a pattern: a direct child, or a descendant at any depth.
    enum Step: Sendable, Hashable {
        case child(Selector)
        case descendant(Selector)
    }

    /// The pattern as written.
    public let text: String

    let steps: [Step]

    /// Parses `text`; `nil` when it is not a pattern (it must start with `$`).
    ///
    /// Configuration validation calls this so that a typo is rejected when written, not silently never matched.
    public init?(_ text: String) {
        guard let steps = JSONPathPattern.parse(Array(text.utf8)) else {
            return nil
        }
        self.text = text
        self.steps = steps
    }

    public var description: String {
        self.text
    }

    private static func parse(_ bytes: [UInt8]) -> [Step]? {
        guard bytes.first == UInt8(ascii: "$") else {
            return nil
        }
        var steps: [Step] = []
        var index = 1
        while index < bytes.count {
            var descendant = false
            let selector: Selector
            if bytes[index] == UInt8(ascii: ".") {
                index += 1
                if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
                    descendant = true
                    index += 1
                }
                if index < bytes.count, bytes[index] == UInt8(ascii: "[") {
                    guard descendant, let parsed = JSONPathPattern.parseBracket(bytes, at: &index) else {
                        return nil
                    }
                    selector = parsed
                } else {
                    let start = index
                    while index < bytes.count, bytes[index] != UInt8(ascii: "."), bytes[index] != UInt8(ascii: "[") {
                        index += 1
                    }
                    guard index > start else {
                        return nil
                    }
                    let name = String(decoding: bytes[start..<index], as: UTF8.self)
                    selector = name == "*" ? .wildcard : .key(name)
                }
            } else if bytes[index] == UInt8(ascii: "[") {
                guard let parsed = JSONPathPattern.parseBracket(bytes, at: &index) else {
                    return nil
                }
                selector = parsed
            } else {
                return nil
            }
            steps.append(descendant ? .descendant(selector) : .child(selector))
        }
        return steps
    }

    /// Parses `[n]`, `[*]`, `['key']` or `["key"]` starting at the `[`.
    private static func parseBracket(_ bytes: [UInt8], at index: inout Int) -> Selector? {
        index += 1
        guard index < bytes.count else {
            return nil
        }
        let opening = bytes[index]
        if opening == UInt8(ascii: "'") || opening == UInt8(ascii: "\"") {
            index += 1
            var key: [UInt8] = []
            while index < bytes.count, bytes[index] != opening {
                if bytes[index] == UInt8(ascii: "\\") {
                    index += 1
                    guard index < bytes.count else {
                        return nil
                    }
                }
                key.append(bytes[index])
                index += 1
            }
            guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "]") else {
                return nil
            }
            index += 2
            return .key(String(decoding: key, as: UTF8.self))
        }
        if opening == UInt8(ascii: "*") {
            guard index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "]") else {
                return nil
            }
            index += 2
            return .wildcard
        }
        let start = index
        while index < bytes.count, JSONNumber.isDigit(bytes[index]) {
            index += 1
        }
        guard index > start, index - start <= 18, index < bytes.count, bytes[index] == UInt8(ascii: "]") else {
            return nil
        }
        let number = Int(String(decoding: bytes[start..<index], as: UTF8.self))!
        index += 1
        return .index(number)
    }
}
