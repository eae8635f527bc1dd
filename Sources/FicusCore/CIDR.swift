/// A range of addresses written as a network address and a prefix length (`10.0.0.0/8`, `2001:db8::/32`).
///
/// Segments match client addresses against ranges and the proxy decides which peers are trusted proxies; both test
/// membership on every request, so `contains` is a masked integer comparison.
public struct CIDR: Sendable, Hashable {
    /// The network address, with the bits after the prefix cleared.
    ///
    /// Cleared at parse time so that `10.1.2.3/8` and `10.0.0.0/8` are the same range and compare equal.
    public let network: IPAddress

    /// The number of leading bits that an address must share with `network`.
    ///
    /// 0...32 for IPv4 and 0...128 for IPv6.
    public let prefixLength: Int

    private let maskHigh: UInt64
    private let maskLow: UInt64

    /// Creates the range of `address` with `prefixLength` leading bits, or nil when the length is out of range.
    ///
    /// Host bits of `address` are cleared, so any address within the range may be given.
    public init?(address: IPAddress, prefixLength: Int) {
        let bits = address.isIPv4 ? 32 : 128
        guard prefixLength >= 0, prefixLength <= bits else {
            return nil
        }
        let maskHigh: UInt64
        let maskLow: UInt64
        if address.isIPv4 {
            maskHigh = 0
            maskLow = prefixLength == 0 ? 0 : UInt64(UInt32.max << UInt32(32 - prefixLength))
        } else {
            maskHigh = prefixLength == 0 ? 0 : UInt64.max << UInt64(max(0, 64 - prefixLength))
            maskLow = prefixLength <= 64 ? 0 : UInt64.max << UInt64(128 - prefixLength)
        }
        self.maskHigh = maskHigh
        self.maskLow = maskLow
        self.prefixLength = prefixLength
        if address.isIPv4 {
            self.network = IPAddress(ipv4: UInt32(truncatingIfNeeded: address.low & maskLow))
        } else {
            self.network = IPAddress(ipv6High: address.high & maskHigh, low: address.low & maskLow)
        }
    }

    /// Parses `address/length`, or a bare address meaning a single host (`/32` or `/128`).
    ///
    /// A bare address is accepted because lists of trusted proxies are usually written as plain addresses.
    public init?(_ text: String) {
        let parts = text.split(separator: "/", maxSplits: 1, omittingEmptySubsequences: false)
        guard let address = IPAddress(String(parts[0])) else {
            return nil
        }
        var length = address.isIPv4 ? 32 : 128
        if parts.count == 2 {
            let digits = parts[1]
            guard !digits.isEmpty, digits.count <= 3, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
                let parsed = Int(digits)
            else {
                return nil
            }
            length = parsed
        }
        self.init(address: address, prefixLength: length)
    }

    /// Whether `address` lies within this range.
    ///
    /// IPv4-mapped IPv6 addresses count as the IPv4 address they carry, and an IPv4 address is inside an IPv6 range
    /// that covers its mapped form, so dual-stack listeners match the ranges operators wrote.
    public func contains(_ address: IPAddress) -> Bool {
        if self.network.isIPv4 {
            guard let candidate = address.isIPv4 ? address : address.mappedIPv4 else {
                return false
            }
            return candidate.low & self.maskLow == self.network.low
        }
        let candidate = address.asIPv6
        return candidate.high & self.maskHigh == self.network.high && candidate.low & self.maskLow == self.network.low
    }
}

extension CIDR: CustomStringConvertible, LosslessStringConvertible {
    /// The range as `network/length`.
    ///
    /// Always includes the length so that a printed range is never mistaken for a single address.
    public var description: String {
        "\(self.network)/\(self.prefixLength)"
    }
}

extension CIDR: Codable {
    /// Decodes a range from its text form.
    ///
    /// Configuration files hold ranges as text a person can read.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let range = CIDR(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid CIDR '\(text)'")
        }
        self = range
    }

    /// Encodes the range as `network/length`.
    ///
    /// See `init(from:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
