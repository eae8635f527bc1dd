extension IPAddress {
    /// The longest canonical text of any address (`ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255` fits too).
    ///
    /// Sizes the stack buffer used for formatting without a heap allocation.
    static let maximumTextLength = 48

    /// Writes the canonical text into `buffer` and returns the number of bytes written.
    ///
    /// Sticky bucketing hashes a client address on the request path; formatting into a stack buffer keeps that free
    /// of allocations. `buffer` must hold at least `maximumTextLength` bytes.
    func writeText(into buffer: UnsafeMutableBufferPointer<UInt8>) -> Int {
        var count = 0
        func put(_ byte: UInt8) {
            buffer[count] = byte
            count += 1
        }
        func putDecimal(_ value: UInt32) {
            if value >= 100 {
                put(UInt8(ascii: "0") + UInt8(value / 100))
            }
            if value >= 10 {
                put(UInt8(ascii: "0") + UInt8(value / 10 % 10))
            }
            put(UInt8(ascii: "0") + UInt8(value % 10))
        }
        func putIPv4(_ value: UInt32) {
            putDecimal(value >> 24)
            put(UInt8(ascii: "."))
            putDecimal(value >> 16 & 0xFF)
            put(UInt8(ascii: "."))
            putDecimal(value >> 8 & 0xFF)
            put(UInt8(ascii: "."))
            putDecimal(value & 0xFF)
        }
        func putHex(_ value: UInt16) {
            var started = false
            for shift in stride(from: 12, through: 0, by: -4) {
                let nibble = UInt8(value >> UInt16(shift) & 0xF)
                if nibble != 0 || started || shift == 0 {
                    started = true
                    put(nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10)
                }
            }
        }

        switch self.family {
        case .v4:
            putIPv4(UInt32(truncatingIfNeeded: self.low))
            return count
        case .v6:
            if let mapped = self.mappedIPv4 {
                for byte in "::ffff:".utf8 {
                    put(byte)
                }
                putIPv4(UInt32(truncatingIfNeeded: mapped.low))
                return count
            }
        }

        var groups = SIMD8<UInt16>()
        for position in 0..<4 {
            groups[position] = UInt16(truncatingIfNeeded: self.high >> UInt64(48 - 16 * position))
            groups[position + 4] = UInt16(truncatingIfNeeded: self.low >> UInt64(48 - 16 * position))
        }
        var bestStart = -1
        var bestLength = 1
        var runStart = -1
        for position in 0...8 {
            if position < 8, groups[position] == 0 {
                if runStart < 0 {
                    runStart = position
                }
            } else if runStart >= 0 {
                if position - runStart > bestLength {
                    bestStart = runStart
                    bestLength = position - runStart
                }
                runStart = -1
            }
        }
        var position = 0
        while position < 8 {
            if position == bestStart {
                put(UInt8(ascii: ":"))
                if position == 0 {
                    put(UInt8(ascii: ":"))
                }
                position += bestLength
                continue
            }
            putHex(groups[position])
            if position < 7 {
                put(UInt8(ascii: ":"))
            }
            position += 1
        }
        return count
    }
}
