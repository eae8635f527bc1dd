/// An IPv4 or IPv6 address held as plain integers.
///
/// Client addresses are matched against CIDR ranges and hashed for sticky percentages on every request, so the
/// value is two words with no heap storage; parsing and formatting work on UTF-8 bytes.
public struct IPAddress: Sendable, Hashable {
    /// The address family.
    ///
    /// Kept explicit rather than inferred because `0.0.0.1` and `::1` have the same low bits.
    public enum Family: Sendable, Hashable {
        case v4
        case v6
    }

    /// The address family of this address.
    ///
    /// Stored so that comparisons never confuse an IPv4 address with the IPv6 address of the same integer value.
    public let family: Family

    /// The high 64 bits of an IPv6 address; zero for IPv4.
    ///
    /// Two words keep the type trivially copyable, which matters on the per-request path.
    public let high: UInt64

    /// The low 64 bits of an IPv6 address, or the IPv4 address in the low 32 bits.
    ///
    /// See `high`.
    public let low: UInt64

    /// Creates an IPv4 address from its 32-bit value in host order (`0x7F000001` is `127.0.0.1`).
    ///
    /// The integer form is what socket addresses hand over, so no text round trip is needed.
    public init(ipv4 value: UInt32) {
        self.family = .v4
        self.high = 0
        self.low = UInt64(value)
    }

    /// Creates an IPv6 address from its two 64-bit halves in host order.
    ///
    /// The integer form is what socket addresses hand over, so no text round trip is needed.
    public init(ipv6High high: UInt64, low: UInt64) {
        self.family = .v6
        self.high = high
        self.low = low
    }

    /// Parses dotted IPv4 (`10.0.0.1`) or IPv6 text (`::1`, `2001:db8::1`, `::ffff:10.0.0.1`).
    ///
    /// Strict on purpose: no leading zeros in IPv4 parts (they mean octal to some parsers), no zone ids and no
    /// brackets, so one address has one meaning everywhere it is configured.
    public init?(_ text: String) {
        var text = text
        guard let address = text.withUTF8({ IPAddress.parse($0) }) else {
            return nil
        }
        self = address
    }

    /// Parses an address from UTF-8 bytes, as `init?(_:)` does for text.
    ///
    /// The proxy holds header values as bytes; this avoids building a `String` for `X-Forwarded-For` entries.
    public init?(utf8 bytes: some Collection<UInt8>) {
        let parsed = bytes.withContiguousStorageIfAvailable { IPAddress.parse($0) }
        if let parsed {
            guard let parsed else {
                return nil
            }
            self = parsed
        } else {
            guard let address = Array(bytes).withUnsafeBufferPointer({ IPAddress.parse($0) }) else {
                return nil
            }
            self = address
        }
    }

    /// Whether this is an IPv4 address.
    ///
    /// A shorthand for comparing `family`, used by callers that only care about one family.
    public var isIPv4: Bool {
        self.family == .v4
    }

    /// The 32-bit value of an IPv4 address, or nil for IPv6.
    ///
    /// Lets callers get back to the socket-address form without parsing text.
    public var ipv4Value: UInt32? {
        self.family == .v4 ? UInt32(truncatingIfNeeded: self.low) : nil
    }

    /// The embedded IPv4 address of an IPv4-mapped IPv6 address (`::ffff:10.0.0.1`), or nil.
    ///
    /// Dual-stack sockets report IPv4 peers in this form; routing treats them as the IPv4 address they carry.
    public var mappedIPv4: IPAddress? {
        guard self.family == .v6, self.high == 0, self.low >> 32 == 0xFFFF else {
            return nil
        }
        return IPAddress(ipv4: UInt32(truncatingIfNeeded: self.low))
    }

    /// This address with an IPv4-mapped IPv6 address replaced by its IPv4 address.
    ///
    /// Used before CIDR matching and stickiness hashing so that one client has one identity on dual-stack sockets.
    public var unmapped: IPAddress {
        self.mappedIPv4 ?? self
    }

    /// This address as an IPv6 address, mapping IPv4 into `::ffff:0:0/96`.
    ///
    /// Lets an IPv6 range such as `::ffff:0:0/96` contain plain IPv4 addresses.
    var asIPv6: IPAddress {
        switch self.family {
        case .v6:
            return self
        case .v4:
            return IPAddress(ipv6High: 0, low: 0xFFFF_0000_0000 | self.low)
        }
    }
}

extension IPAddress: CustomStringConvertible, LosslessStringConvertible {
    /// The canonical text: dotted IPv4, or RFC 5952 IPv6 (lowercase, longest zero run compressed).
    ///
    /// Canonical so that the same client always hashes to the same sticky bucket whatever form it arrived in.
    public var description: String {
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: IPAddress.maximumTextLength) { buffer in
            let count = self.writeText(into: buffer)
            return String(decoding: UnsafeBufferPointer(rebasing: buffer[..<count]), as: UTF8.self)
        }
    }
}

extension IPAddress: Codable {
    /// Decodes an address from its text form.
    ///
    /// Configuration files and stored snapshots hold addresses as text a person can read.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let address = IPAddress(text) else {
            throw DecodingError.dataCorruptedError(in: container, debugDescription: "invalid IP address '\(text)'")
        }
        self = address
    }

    /// Encodes the address as its canonical text.
    ///
    /// See `init(from:)`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
