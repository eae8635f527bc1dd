/// Why a body is not JSON, and where that was noticed.
///
/// A body that does not parse is compared as text instead; the reason helps when a report asks why.
public struct JSONParseError: Error, Sendable, Equatable, CustomStringConvertible {
    /// The byte offset at which parsing stopped.
    public var offset: Int
    /// What was wrong there.
    public var reason: String

    public var description: String {
        "invalid JSON at byte \(self.offset): \(self.reason)"
    }
}

extension JSONValue {
    /// The deepest nesting the parser accepts.
    ///
    /// The parser recurses once per level; a hostile body of a million `[` must fail cleanly, not overflow the stack.
    public static let maximumDepth = 512

    /// Parses exactly one JSON document (RFC 8259), with optional surrounding whitespace and a leading UTF-8 BOM.
    ///
    /// Strict on purpose: what is not JSON is compared as text, so leniency would only blur which comparison ran.
    public static func parse(_ bytes: [UInt8]) throws(JSONParseError) -> JSONValue {
        var parser = JSONParser(bytes: bytes)
        return try parser.parseDocument()
    }

    /// Parses the UTF-8 bytes of `text`.
    public static func parse(_ text: String) throws(JSONParseError) -> JSONValue {
        try JSONValue.parse(Array(text.utf8))
    }
}

/// A recursive-descent parser over UTF-8 bytes.
struct JSONParser {
    private let bytes: [UInt8]
    private var index = 0
    private var depth = 0

    init(bytes: [UInt8]) {
        self.bytes = bytes
    }

    mutating func parseDocument() throws(JSONParseError) -> JSONValue {
        if self.bytes.starts(with: [0xEF, 0xBB, 0xBF]) {
            self.index = 3
        }
        self.skipWhitespace()
        let value = try self.parseValue()
        self.skipWhitespace()
        guard self.index == self.bytes.count else {
            throw self.error("unexpected content after the document")
        }
        return value
    }

    private func error(_ reason: String) -> JSONParseError {
        JSONParseError(offset: self.index, reason: reason)
    }

    private mutating func skipWhitespace() {
        while self.index < self.bytes.count {
            switch self.bytes[self.index] {
            case 0x20, 0x09, 0x0A, 0x0D:
                self.index += 1
            default:
                return
            }
        }
    }

    private mutating func parseValue() throws(JSONParseError) -> JSONValue {
        guard self.index < self.bytes.count else {
            throw self.error("unexpected end of input")
        }
        switch self.bytes[self.index] {
        case UInt8(ascii: "{"):
            return try self.parseObject()
        case UInt8(ascii: "["):
            return try self.parseArray()
        case UInt8(ascii: "\""):
            return .string(try self.parseString())
        case UInt8(ascii: "t"):
            try self.expectLiteral("true")
            return .bool(true)
        case UInt8(ascii: "f"):
            try self.expectLiteral("false")
            return .bool(false)
        case UInt8(ascii: "n"):
            try self.expectLiteral("null")
            return .null
        case UInt8(ascii: "-"), UInt8(ascii: "0")...UInt8(ascii: "9"):
            let start = self.index
            guard JSONNumber.scanLiteral(self.bytes, from: &self.index) else {
                throw self.error("malformed number")
            }
            return .number(JSONNumber(validLiteral: Array(self.bytes[start..<self.index])))
        default:
            throw self.error("unexpected character")
        }
    }

    private mutating func expectLiteral(_ literal: StaticString) throws(JSONParseError) {
        let count = literal.utf8CodeUnitCount
        guard self.index + count <= self.bytes.count else {
            throw self.error("unexpected end of input")
        }
        let matches = literal.withUTF8Buffer { expected in
            expected.elementsEqual(self.bytes[self.index..<self.index + count])
        }
        guard matches else {
            throw self.error("unexpected character")
        }
        self.index += count
    }

    private mutating func enterContainer() throws(JSONParseError) {
        self.depth += 1
        guard self.depth <= JSONValue.maximumDepth else {
            throw self.error("nesting deeper than \(JSONValue.maximumDepth)")
        }
        self.index += 1
        self.skipWhitespace()
    }

    private mutating func parseArray() throws(JSONParseError) -> JSONValue {
        try self.enterContainer()
        var elements: [JSONValue] = []
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "]") {
            self.index += 1
            self.depth -= 1
            return .array(elements)
        }
        while true {
            self.skipWhitespace()
            elements.append(try self.parseValue())
            self.skipWhitespace()
            guard self.index < self.bytes.count else {
                throw self.error("unterminated array")
            }
            switch self.bytes[self.index] {
            case UInt8(ascii: ","):
                self.index += 1
            case UInt8(ascii: "]"):
                self.index += 1
                self.depth -= 1
                return .array(elements)
            default:
                throw self.error("expected ',' or ']'")
            }
        }
    }

    private mutating func parseObject() throws(JSONParseError) -> JSONValue {
        try self.enterContainer()
        var object = JSONObject()
        if self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "}") {
            self.index += 1
            self.depth -= 1
            return .object(object)
        }
        while true {
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\"") else {
                throw self.error("expected a string key")
            }
            let key = try self.parseString()
            self.skipWhitespace()
            guard self.index < self.bytes.count, self.bytes[self.index] == UInt8(ascii: ":") else {
                throw self.error("expected ':'")
            }
            self.index += 1
            self.skipWhitespace()
            object[key] = try self.parseValue()
            self.skipWhitespace()
            guard self.index < self.bytes.count else {
                throw self.error("unterminated object")
            }
            switch self.bytes[self.index] {
            case UInt8(ascii: ","):
                self.index += 1
            case UInt8(ascii: "}"):
                self.index += 1
                self.depth -= 1
                return .object(object)
            default:
                throw self.error("expected ',' or '}'")
            }
        }
    }

    /// Parses a string starting at its opening quote; escapes are decoded and the result must be valid UTF-8.
    private mutating func parseString() throws(JSONParseError) -> String {
        self.index += 1
        let start = self.index
        // Fast path: no escapes, so the bytes between the quotes are the string.
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            if byte == UInt8(ascii: "\"") {
                let text = String(validating: self.bytes[start..<self.index], as: UTF8.self)
                guard let text else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8")
                }
                self.index += 1
                return text
            }
            if byte == UInt8(ascii: "\\") {
                break
            }
            guard byte >= 0x20 else {
                throw self.error("unescaped control character in string")
            }
            self.index += 1
        }
        var decoded = Array(self.bytes[start..<self.index])
        while self.index < self.bytes.count {
            let byte = self.bytes[self.index]
            switch byte {
            case UInt8(ascii: "\""):
                guard let text = String(validating: decoded, as: UTF8.self) else {
                    throw JSONParseError(offset: start, reason: "string is not valid UTF-8")
                }
                self.index += 1
                return text
            case UInt8(ascii: "\\"):
                try self.parseEscape(into: &decoded)
            case 0..<0x20:
                throw self.error("unescaped control character in string")
            default:
                decoded.append(byte)
                self.index += 1
            }
        }
        throw self.error("unterminated string")
    }

    private mutating func parseEscape(into decoded: inout [UInt8]) throws(JSONParseError) {
        self.index += 1
        guard self.index < self.bytes.count else {
            throw self.error("unterminated escape")
        }
        let escaped = self.bytes[self.index]
        self.index += 1
        switch escaped {
        case UInt8(ascii: "\""), UInt8(ascii: "\\"), UInt8(ascii: "/"):
            decoded.append(escaped)
        case UInt8(ascii: "b"):
            decoded.append(0x08)
        case UInt8(ascii: "f"):
            decoded.append(0x0C)
        case UInt8(ascii: "n"):
            decoded.append(0x0A)
        case UInt8(ascii: "r"):
            decoded.append(0x0D)
        case UInt8(ascii: "t"):
            decoded.append(0x09)
        case UInt8(ascii: "u"):
            var scalar = try self.parseHex4()
            if (0xD800...0xDBFF).contains(scalar) {
                guard self.index + 1 < self.bytes.count, self.bytes[self.index] == UInt8(ascii: "\\"),
                    self.bytes[self.index + 1] == UInt8(ascii: "u")
                else {
                    throw self.error("unpaired surrogate")
                }
                self.index += 2
                let low = try self.parseHex4()
                guard (0xDC00...0xDFFF).contains(low) else {
                    throw self.error("unpaired surrogate")
                }
                scalar = 0x10000 + ((scalar - 0xD800) << 10) + (low - 0xDC00)
            } else if (0xDC00...0xDFFF).contains(scalar) {
                throw self.error("unpaired surrogate")
            }
            decoded.append(contentsOf: Array(String(Unicode.Scalar(scalar)!).utf8))
        default:
            throw self.error("invalid escape")
        }
    }

    private mutating func parseHex4() throws(JSONParseError) -> UInt32 {
        guard self.index + 4 <= self.bytes.count else {
            throw self.error("truncated \\u escape")
        }
        var value: UInt32 = 0
        for _ in 0..<4 {
            let byte = self.bytes[self.index]
            let digit: UInt8
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"): digit = byte - UInt8(ascii: "0")
            case UInt8(ascii: "a")...UInt8(ascii: "f"): digit = byte - UInt8(ascii: "a") + 10
            case UInt8(ascii: "A")...UInt8(ascii: "F"): digit = byte - UInt8(ascii: "A") + 10
            default: throw self.error("invalid hex digit in \\u escape")
            }
            value = value << 4 | UInt32(digit)
            self.index += 1
        }
        return value
    }
}
