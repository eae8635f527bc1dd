extension JSONValue {
    /// The value as compact JSON: no whitespace, keys in written order, numbers as written.
    ///
    /// Redacted bodies are stored in this form, so it must be valid JSON that parses back to the same value.
    public func serialized() -> [UInt8] {
        var writer = JSONWriter(limit: nil)
        writer.write(self)
        return writer.output
    }

    /// The value as compact JSON, cut to about `limit` characters with a trailing `…`.
    ///
    /// Differences carry rendered values into every stored record; a whole array of a megabyte would be useless
    /// there, and writing stops as soon as the limit is reached instead of serializing all of it first.
    public func rendered(limit: Int = JSONValue.renderLimit) -> String {
        var writer = JSONWriter(limit: limit)
        writer.write(self)
        return RenderedText.cut(writer.output, limit: limit, cutEarly: writer.exceeded)
    }

    /// The default length of a rendered value.
    public static let renderLimit = 200
}

/// Shortening of rendered values to a bound.
enum RenderedText {
    /// `bytes` as text, cut to at most `limit` bytes on a character boundary and marked with `…` when cut.
    static func cut(_ bytes: [UInt8], limit: Int, cutEarly: Bool = false) -> String {
        guard bytes.count > limit || cutEarly else {
            return String(decoding: bytes, as: UTF8.self)
        }
        var end = min(limit, bytes.count)
        while end > 0, end < bytes.count, bytes[end] & 0xC0 == 0x80 {
            end -= 1
        }
        return String(decoding: bytes[..<end], as: UTF8.self) + "…"
    }

    /// `text` cut to at most `limit` bytes.
    static func cut(_ text: String, limit: Int = JSONValue.renderLimit) -> String {
        text.utf8.count <= limit ? text : RenderedText.cut(Array(text.utf8), limit: limit)
    }
}

/// Writes compact JSON into bytes, optionally stopping once a limit is passed.
struct JSONWriter {
    private(set) var output: [UInt8] = []
    private(set) var exceeded = false
    private let limit: Int?

    init(limit: Int?) {
        self.limit = limit
    }

    mutating func write(_ value: JSONValue) {
        if let limit = self.limit, self.output.count > limit {
            self.exceeded = true
            return
        }
        switch value {
        case .null:
            self.output.append(contentsOf: "null".utf8)
        case .bool(let flag):
            self.output.append(contentsOf: (flag ? "true" : "false").utf8)
        case .number(let number):
            self.output.append(contentsOf: number.literal.utf8)
        case .string(let text):
            self.writeString(text)
        case .array(let elements):
            self.output.append(UInt8(ascii: "["))
            for (position, element) in elements.enumerated() {
                if position > 0 {
                    self.output.append(UInt8(ascii: ","))
                }
                self.write(element)
                if self.exceeded {
                    return
                }
            }
            self.output.append(UInt8(ascii: "]"))
        case .object(let object):
            self.output.append(UInt8(ascii: "{"))
            for (position, key) in object.keys.enumerated() {
                if position > 0 {
                    self.output.append(UInt8(ascii: ","))
                }
                self.writeString(key)
                self.output.append(UInt8(ascii: ":"))
                self.write(object[key]!)
                if self.exceeded {
                    return
                }
            }
            self.output.append(UInt8(ascii: "}"))
        }
    }

    private mutating func writeString(_ text: String) {
        self.output.append(UInt8(ascii: "\""))
        for byte in text.utf8 {
            switch byte {
            case UInt8(ascii: "\""):
                self.output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\"")])
            case UInt8(ascii: "\\"):
                self.output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "\\")])
            case 0x0A:
                self.output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "n")])
            case 0x0D:
                self.output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "r")])
            case 0x09:
                self.output.append(contentsOf: [UInt8(ascii: "\\"), UInt8(ascii: "t")])
            case 0..<0x20:
                let hex = Array("0123456789abcdef".utf8)
                self.output.append(contentsOf: Array("\\u00".utf8))
                self.output.append(hex[Int(byte >> 4)])
                self.output.append(hex[Int(byte & 0x0F)])
            default:
                self.output.append(byte)
            }
        }
        self.output.append(UInt8(ascii: "\""))
    }
}
