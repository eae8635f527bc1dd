extension IPAddress {
    /// Parses IPv4 or IPv6 text held in a byte buffer.
    ///
    /// One entry point for both families: an address containing a colon is IPv6, anything else is IPv4.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        guard !bytes.isEmpty else {
            return nil
        }
        if bytes.contains(UInt8(ascii: ":")) {
            return self.parseIPv6(bytes)
        }
        guard let value = self.parseIPv4(bytes, from: 0, to: bytes.count) else {
            return nil
        }
        return IPAddress(ipv4: value)
    }

    /// Parses exactly four dotted decimal parts in `bytes[start..<end]`.
    ///
    /// Rejects leading zeros and shortened forms (`10.1`) so that the text has one reading.
    static func parseIPv4(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int, to end: Int) -> UInt32? {
        var value: UInt32 = 0
        var part: UInt32 = 0
        var digits = 0
        var parts = 0
        var index = start
        while index <= end {
            if index == end || bytes[index] == UInt8(ascii: ".") {
                guard digits > 0, part <= 255 else {
                    return nil
                }
                value = value << 8 | part
                parts += 1
                part = 0
                digits = 0
                index += 1
                continue
            }
            let byte = bytes[index]
            guard byte >= UInt8(ascii: "0"), byte <= UInt8(ascii: "9") else {
                return nil
            }
            if digits == 1, part == 0 {
                return nil
            }
            digits += 1
            guard digits <= 3 else {
                return nil
            }
            part = part * 10 + UInt32(byte - UInt8(ascii: "0"))
            index += 1
        }
        return parts == 4 ? value : nil
    }

    /// Parses IPv6 text with at most one `::` and an optional dotted IPv4 tail.
    ///
    /// Zone ids (`%eth0`) are rejected: a routing rule cannot meaningfully name an interface.
    static func parseIPv6(_ bytes: UnsafeBufferPointer<UInt8>) -> IPAddress? {
        let count = bytes.count
        var head = SIMD8<UInt16>()
        var headCount = 0
        var tail = SIMD8<UInt16>()
        var tailCount = 0
        var compressed = false
        var index = 0

        func append(_ group: UInt16) -> Bool {
            if compressed {
                guard tailCount < 8 else {
                    return false
                }
                tail[tailCount] = group
                tailCount += 1
            } else {
                guard headCount < 8 else {
                    return false
                }
                head[headCount] = group
                headCount += 1
            }
            return true
        }

        if count >= 2, bytes[0] == UInt8(ascii: ":"), bytes[1] == UInt8(ascii: ":") {
            compressed = true
            index = 2
        } else if bytes[0] == UInt8(ascii: ":") {
            return nil
        }
        while index < count {
            let groupStart = index
            var group: UInt16 = 0
            var digits = 0
            while index < count, let nibble = hexValue(bytes[index]) {
                digits += 1
                guard digits <= 4 else {
                    return nil
                }
                group = group << 4 | UInt16(nibble)
                index += 1
            }
            if index < count, bytes[index] == UInt8(ascii: ".") {
                guard let value = self.parseIPv4(bytes, from: groupStart, to: count) else {
                    return nil
                }
                guard append(UInt16(truncatingIfNeeded: value >> 16)), append(UInt16(truncatingIfNeeded: value))
                else {
                    return nil
                }
                index = count
                break
            }
            guard digits > 0, append(group) else {
                return nil
            }
            if index == count {
                break
            }
            guard bytes[index] == UInt8(ascii: ":") else {
                return nil
            }
            index += 1
            if index < count, bytes[index] == UInt8(ascii: ":") {
                guard !compressed else {
                    return nil
                }
                compressed = true
                index += 1
            } else if index == count {
                return nil
            }
        }
        let total = headCount + tailCount
        if compressed ? total > 7 : total != 8 {
            return nil
        }
        var groups = SIMD8<UInt16>()
        for position in 0..<headCount {
            groups[position] = head[position]
        }
        for position in 0..<tailCount {
            groups[8 - tailCount + position] = tail[position]
        }
        var high: UInt64 = 0
        var low: UInt64 = 0
        for position in 0..<4 {
            high = high << 16 | UInt64(groups[position])
            low = low << 16 | UInt64(groups[position + 4])
        }
        return IPAddress(ipv6High: high, low: low)
    }
}

/// The value of one hexadecimal digit, or nil.
///
/// Shared by the IPv6 parser and percent-decoding of query strings.
@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case UInt8(ascii: "0")...UInt8(ascii: "9"):
        return byte - UInt8(ascii: "0")
    case UInt8(ascii: "a")...UInt8(ascii: "f"):
        return byte - UInt8(ascii: "a") + 10
    case UInt8(ascii: "A")...UInt8(ascii: "F"):
        return byte - UInt8(ascii: "A") + 10
    default:
        return nil
    }
}
