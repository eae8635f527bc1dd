/// A JSON number kept exactly as written, compared by its decimal value.
///
/// Converting to `Double` would make 9007199254740993 equal to 9007199254740992 and hide a real change in an id;
/// comparing the literal text would make `1` differ from `1.0`. The canonical decimal form does neither.
public struct JSONNumber: Sendable, Hashable, CustomStringConvertible {
    /// The literal as it appeared in the body.
    public let literal: String

    /// Whether the value is below zero; `-0` is zero and not negative.
    let negative: Bool

    /// The significant digits without leading or trailing zeros; empty for zero.
    let digits: [UInt8]

    /// The power of ten the digits are multiplied by.
    let exponent: Int

    /// Parses a number literal in JSON grammar; `nil` when `literal` is not one.
    ///
    /// The parser validates its input before calling this, so the check here only guards direct use.
    public init?(_ literal: String) {
        guard JSONNumber.isValidLiteral(Array(literal.utf8)) else {
            return nil
        }
        self.init(validLiteral: Array(literal.utf8))
    }

    /// Builds the canonical form of an already validated literal.
    init(validLiteral bytes: [UInt8]) {
        self.literal = String(decoding: bytes, as: UTF8.self)
        var index = 0
        var negative = false
        if bytes.first == UInt8(ascii: "-") {
            negative = true
            index = 1
        }
        var digits: [UInt8] = []
        var exponent = 0
        while index < bytes.count, JSONNumber.isDigit(bytes[index]) {
            digits.append(bytes[index])
            index += 1
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            while index < bytes.count, JSONNumber.isDigit(bytes[index]) {
                digits.append(bytes[index])
                exponent -= 1
                index += 1
            }
        }
        if index < bytes.count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            var exponentNegative = false
            if bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                exponentNegative = bytes[index] == UInt8(ascii: "-")
                index += 1
            }
            // Saturate: exponents beyond a quadrillion only ever compare equal to themselves anyway.
            var written = 0
            while index < bytes.count {
                written = min(written * 10 + Int(bytes[index] - UInt8(ascii: "0")), 1_000_000_000_000_000)
                index += 1
            }
            exponent += exponentNegative ? -written : written
        }
        let firstSignificant = digits.firstIndex { $0 != UInt8(ascii: "0") }
        if let firstSignificant {
            let lastSignificant = digits.lastIndex { $0 != UInt8(ascii: "0") }!
            exponent += digits.count - 1 - lastSignificant
            self.digits = Array(digits[firstSignificant...lastSignificant])
            self.negative = negative
            self.exponent = exponent
        } else {
            self.digits = []
            self.negative = false
            self.exponent = 0
        }
    }

    /// The literal as written.
    public var description: String {
        self.literal
    }

    /// Whether both are the same decimal value, whatever the notation.
    ///
    /// `1`, `1.0`, `1e0` and `10e-1` are all equal; `-0` equals `0`.
    public static func == (lhs: JSONNumber, rhs: JSONNumber) -> Bool {
        lhs.negative == rhs.negative && lhs.exponent == rhs.exponent && lhs.digits == rhs.digits
    }

    /// Hashes the canonical value, consistently with `==`.
    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.negative)
        hasher.combine(self.exponent)
        hasher.combine(self.digits)
    }

    static func isDigit(_ byte: UInt8) -> Bool {
        byte >= UInt8(ascii: "0") && byte <= UInt8(ascii: "9")
    }

    /// Whether `bytes` is exactly one number in JSON grammar: `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`.
    static func isValidLiteral(_ bytes: [UInt8]) -> Bool {
        var index = 0
        return JSONNumber.scanLiteral(bytes, from: &index) && index == bytes.count
    }

    /// Advances `index` over one number literal; `false` when the bytes there are not one.
    static func scanLiteral(_ bytes: [UInt8], from index: inout Int) -> Bool {
        let count = bytes.count
        if index < count, bytes[index] == UInt8(ascii: "-") {
            index += 1
        }
        guard index < count, JSONNumber.isDigit(bytes[index]) else {
            return false
        }
        if bytes[index] == UInt8(ascii: "0") {
            index += 1
        } else {
            while index < count, JSONNumber.isDigit(bytes[index]) {
                index += 1
            }
        }
        if index < count, bytes[index] == UInt8(ascii: ".") {
            index += 1
            guard index < count, JSONNumber.isDigit(bytes[index]) else {
                return false
            }
            while index < count, JSONNumber.isDigit(bytes[index]) {
                index += 1
            }
        }
        if index < count, bytes[index] == UInt8(ascii: "e") || bytes[index] == UInt8(ascii: "E") {
            index += 1
            if index < count, bytes[index] == UInt8(ascii: "+") || bytes[index] == UInt8(ascii: "-") {
                index += 1
            }
            guard index < count, JSONNumber.isDigit(bytes[index]) else {
                return false
            }
            while index < count, JSONNumber.isDigit(bytes[index]) {
                index += 1
            }
        }
        return true
    }
}
