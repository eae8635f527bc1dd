import Crypto

/// The secret a client presents to preview the idle slot of a blue-green upstream.
///
/// Being inside a trusted network is not enough to reach a slot that has not been switched to: a preview needs
/// `X-Ficus-Preview: <idle slot>; token=<secret>`. Only the token's SHA-256 digest is stored (in the upstream's
/// slots, so it is part of every revision, exports and history), and the token itself is shown once, when
/// `ficus bluegreen preview UPSTREAM --token` makes it; making a new one retires the old.
public enum PreviewToken {
    /// A new random token: 32 bytes from the system's generator, as 64 hex digits.
    public static func generate() -> String {
        var generator = SystemRandomNumberGenerator()
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for _ in 0..<4 {
            withUnsafeBytes(of: generator.next() as UInt64) { bytes.append(contentsOf: $0) }
        }
        return Self.hex(bytes)
    }

    /// The stored form of `token`: its SHA-256 digest as 64 lower-case hex digits.
    public static func digest(of token: some StringProtocol) -> String {
        Self.hex(Array(SHA256.hash(data: Array(token.utf8))))
    }

    /// Whether `text` is a stored digest: 64 lower-case hex digits.
    public static func isDigest(_ text: String) -> Bool {
        text.utf8.count == 64 && text.utf8.allSatisfy { ($0 >= 0x30 && $0 <= 0x39) || ($0 >= 0x61 && $0 <= 0x66) }
    }

    /// The digest's bytes, or nil when `text` is not a digest.
    static func digestBytes(_ text: String) -> [UInt8]? {
        guard Self.isDigest(text) else { return nil }
        var bytes: [UInt8] = []
        var high: UInt8 = 0
        for (index, byte) in text.utf8.enumerated() {
            let value = byte <= 0x39 ? byte - 0x30 : byte - 0x61 + 10
            if index % 2 == 0 { high = value } else { bytes.append(high << 4 | value) }
        }
        return bytes
    }

    /// Whether `token` hashes to `expected` (32 bytes), compared in time that does not depend on where they differ.
    static func matches(_ token: Substring, expected: [UInt8]) -> Bool {
        // Tokens are 64 characters; a longer value is not hashed at all.
        guard token.utf8.count <= 256 else { return false }
        let actual = Array(SHA256.hash(data: Array(token.utf8)))
        guard actual.count == expected.count else { return false }
        var difference: UInt8 = 0
        for index in actual.indices { difference |= actual[index] ^ expected[index] }
        return difference == 0
    }

    /// The slot and token of an `X-Ficus-Preview` value: `green; token=abc` → ("green", "abc").
    ///
    /// Parameters other than `token` are ignored; names and the slot are matched without regard to case.
    static func parseHeader(_ value: String) -> (slot: String, token: Substring?) {
        var parts = value.split(separator: ";", omittingEmptySubsequences: false).makeIterator()
        let slot = (parts.next() ?? "").trimmingASCIISpaces().lowercased()
        var token: Substring?
        while let part = parts.next() {
            let parameter = part.trimmingASCIISpaces()
            guard let equals = parameter.firstIndex(of: "=") else { continue }
            if parameter[..<equals].trimmingASCIISpaces().lowercased() == "token" {
                token = parameter[parameter.index(after: equals)...].trimmingASCIISpaces()
            }
        }
        return (slot, token)
    }

    private static func hex(_ bytes: [UInt8]) -> String {
        let digits = Array("0123456789abcdef".utf8)
        var out: [UInt8] = []
        out.reserveCapacity(bytes.count * 2)
        for byte in bytes {
            out.append(digits[Int(byte >> 4)])
            out.append(digits[Int(byte & 0x0F)])
        }
        return String(decoding: out, as: UTF8.self)
    }
}
