/// One step from a JSON value to one of its children.
enum JSONPathComponent: Sendable, Hashable {
    case key(String)
    case index(Int)
}

/// Rendering of concrete JSON paths such as `$.items[2].sku` and `$['a b']`.
///
/// Paths are stored and shown to people, and pasted back as ignore patterns, so they follow the common JSONPath
/// notation that `JSONPathPattern` also reads.
enum JSONPath {
    /// The path string for `components`, starting at `$`.
    static func render(_ components: [JSONPathComponent]) -> String {
        var text = "$"
        for component in components {
            JSONPath.append(component, to: &text)
        }
        return text
    }

    static func append(_ component: JSONPathComponent, to text: inout String) {
        switch component {
        case .index(let index):
            text += "[\(index)]"
        case .key(let key):
            if JSONPath.isPlainName(key) {
                text += "." + key
            } else {
                text += "['" + JSONPath.quote(key) + "']"
            }
        }
    }

    /// Whether `key` can be written after a dot: an ASCII letter or `_`, then letters, digits or `_`.
    static func isPlainName(_ key: String) -> Bool {
        let bytes = key.utf8
        guard let first = bytes.first, JSONPath.isNameStart(first) else {
            return false
        }
        return bytes.allSatisfy { JSONPath.isNameStart($0) || JSONNumber.isDigit($0) }
    }

    private static func isNameStart(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
            || byte == UInt8(ascii: "_")
    }

    /// `key` with `\` and `'` escaped for a single-quoted bracket.
    static func quote(_ key: String) -> String {
        var quoted = ""
        for character in key.unicodeScalars {
            if character == "\\" || character == "'" {
                quoted += "\\"
            }
            quoted.unicodeScalars.append(character)
        }
        return quoted
    }

    /// `path` with every numeric bracket index replaced by `[*]`, leaving quoted keys alone.
    static func generalizingIndices(_ path: String) -> String {
        guard path.hasPrefix("$") else {
            return path
        }
        let bytes = Array(path.utf8)
        var output: [UInt8] = []
        output.reserveCapacity(bytes.count)
        var index = 0
        while index < bytes.count {
            let byte = bytes[index]
            if byte == UInt8(ascii: "["), index + 1 < bytes.count, bytes[index + 1] == UInt8(ascii: "'") {
                // Copy a quoted key through its closing quote, honouring escapes.
                output.append(contentsOf: bytes[index...index + 1])
                index += 2
                while index < bytes.count {
                    output.append(bytes[index])
                    if bytes[index] == UInt8(ascii: "\\"), index + 1 < bytes.count {
                        output.append(bytes[index + 1])
                        index += 2
                        continue
                    }
                    index += 1
                    if bytes[index - 1] == UInt8(ascii: "'") {
                        break
                    }
                }
            } else if byte == UInt8(ascii: "[") {
                var end = index + 1
                while end < bytes.count, JSONNumber.isDigit(bytes[end]) {
                    end += 1
                }
                if end > index + 1, end < bytes.count, bytes[end] == UInt8(ascii: "]") {
                    output.append(contentsOf: Array("[*]".utf8))
                    index = end + 1
                } else {
                    output.append(byte)
                    index += 1
                }
            } else {
                output.append(byte)
                index += 1
            }
        }
        return String(decoding: output, as: UTF8.self)
    }
}
