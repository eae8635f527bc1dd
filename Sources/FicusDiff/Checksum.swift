/// The checksums of the gzip and zlib trailers.
///
/// zlib verifies them only when it sees the end of the stream; checking here also catches a stream that simply
/// stops early, which the decompressor otherwise accepts as far as it got.
enum Checksum {
    private static let crcTable: [UInt32] = (0..<256).map { entry in
        var value = UInt32(entry)
        for _ in 0..<8 {
            value = value & 1 == 1 ? 0xEDB8_8320 ^ (value >> 1) : value >> 1
        }
        return value
    }

    /// The CRC-32 (IEEE 802.3) of `bytes`, as gzip stores it.
    static func crc32(_ bytes: [UInt8]) -> UInt32 {
        var crc: UInt32 = 0xFFFF_FFFF
        for byte in bytes {
            crc = Checksum.crcTable[Int((crc ^ UInt32(byte)) & 0xFF)] ^ (crc >> 8)
        }
        return crc ^ 0xFFFF_FFFF
    }

    /// The Adler-32 of `bytes`, as zlib stores it.
    static func adler32(_ bytes: [UInt8]) -> UInt32 {
        var low: UInt32 = 1
        var high: UInt32 = 0
        var index = 0
        while index < bytes.count {
            // 5552 bytes is the most that can be summed before the 32-bit sums must be reduced.
            let end = min(index + 5552, bytes.count)
            while index < end {
                low += UInt32(bytes[index])
                high += low
                index += 1
            }
            low %= 65521
            high %= 65521
        }
        return high << 16 | low
    }
}
