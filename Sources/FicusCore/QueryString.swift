/// Finds and percent-decodes query parameters in raw query bytes.
///
/// Query predicates read one parameter per evaluation; scanning the raw bytes avoids parsing the whole query into a
/// dictionary on every request.
enum QueryString {
    /// The percent-decoded value of the first parameter named `name` in `query` as text, or nil (no query, or no such
    /// parameter): for the few uses that need the value itself (sticky keys, rate limit keys), not a comparison.
    static func value(named name: String, in query: String?) -> String? {
        guard var query else { return nil }
        var name = name
        return query.withUTF8 { raw in
            name.withUTF8 { key in
                Self.withValue(named: key, in: raw) { value in
                    value.map { String(decoding: $0, as: UTF8.self) }
                }
            }
        }
    }

    /// Calls `body` with the percent-decoded value of the first parameter named `name`, or with nil.
    ///
    /// Names are compared after percent-decoding (`+` is a space); a parameter without `=` has an empty value.
    static func withValue<T>(
        named name: UnsafeBufferPointer<UInt8>,
        in query: UnsafeBufferPointer<UInt8>,
        _ body: (UnsafeBufferPointer<UInt8>?) -> T
    ) -> T {
        var start = 0
        while start <= query.count {
            var end = start
            while end < query.count, query[end] != UInt8(ascii: "&") {
                end += 1
            }
            var equals = start
            while equals < end, query[equals] != UInt8(ascii: "=") {
                equals += 1
            }
            if Self.decodedEquals(Bytes.slice(query, start..<equals), name) {
                let value = equals < end ? Bytes.slice(query, equals + 1..<end) : Bytes.slice(query, end..<end)
                if !value.contains(where: { $0 == UInt8(ascii: "%") || $0 == UInt8(ascii: "+") }) {
                    return body(value)
                }
                return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: value.count) { buffer in
                    let count = Self.decode(value, into: buffer)
                    return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
                }
            }
            start = end + 1
        }
        return body(nil)
    }

    /// Decodes `raw` into `buffer` (at least `raw.count` bytes) and returns the decoded length.
    ///
    /// A `%` not followed by two hex digits is kept as is, as browsers do.
    static func decode(_ raw: UnsafeBufferPointer<UInt8>, into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var index = 0
        var count = 0
        while index < raw.count {
            let (byte, width) = Self.decodedByte(raw, at: index)
            buffer[count] = byte
            count += 1
            index += width
        }
        return count
    }

    private static func decodedEquals(
        _ raw: UnsafeBufferPointer<UInt8>,
        _ expected: UnsafeBufferPointer<UInt8>
    ) -> Bool {
        var index = 0
        var position = 0
        while index < raw.count {
            let (byte, width) = Self.decodedByte(raw, at: index)
            guard position < expected.count, expected[position] == byte else {
                return false
            }
            position += 1
            index += width
        }
        return position == expected.count
    }

    @inline(__always)
    private static func decodedByte(_ raw: UnsafeBufferPointer<UInt8>, at index: Int) -> (UInt8, Int) {
        switch raw[index] {
        case UInt8(ascii: "+"):
            return (UInt8(ascii: " "), 1)
        case UInt8(ascii: "%"):
            if index + 2 < raw.count, let high = hexValue(raw[index + 1]), let low = hexValue(raw[index + 2]) {
                return (high << 4 | low, 3)
            }
            return (UInt8(ascii: "%"), 1)
        default:
            return (raw[index], 1)
        }
    }
}

/// Reads parameters of media types in `Accept`-style header values.
///
/// Version routing by `Accept: application/vnd.acme+json; version=2` needs the parameter without parsing the whole
/// list of media ranges into values.
enum MediaType {
    /// The range of the value of the first parameter named `name` (lower-case) in any media range of `value`.
    ///
    /// Media ranges are separated by `,`, parameters by `;`; names match without regard to case; surrounding quotes
    /// and spaces are excluded from the range.
    static func parameterValue(
        named name: UnsafeBufferPointer<UInt8>,
        in value: UnsafeBufferPointer<UInt8>
    ) -> Range<Int>? {
        var index = 0
        var inParameters = false
        while index < value.count {
            var end = index
            while end < value.count, value[end] != UInt8(ascii: ";"), value[end] != UInt8(ascii: ",") {
                end += 1
            }
            if inParameters {
                let piece = Bytes.trimmed(value, index..<end)
                if let equals = value[piece].firstIndex(of: UInt8(ascii: "=")) {
                    let key = Bytes.trimmed(value, piece.lowerBound..<equals)
                    if key.count == name.count, Bytes.hasPrefix(Bytes.slice(value, key), name, foldsCase: true) {
                        var result = Bytes.trimmed(value, equals + 1..<piece.upperBound)
                        if result.count >= 2, value[result.lowerBound] == UInt8(ascii: "\""),
                            value[result.upperBound - 1] == UInt8(ascii: "\"")
                        {
                            result = result.lowerBound + 1..<result.upperBound - 1
                        }
                        return result
                    }
                }
            }
            inParameters = end < value.count && value[end] == UInt8(ascii: ";")
            index = end + 1
        }
        return nil
    }
}
