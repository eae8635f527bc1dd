import NIOCore

/// The id that follows a request through Ficus: forwarded upstream and to shadow copies as `X-Request-Id`, written in
/// the access log and in shadow records, so that a report's sample can be found in the logs (as Envoy does).
///
/// A trusted client's `X-Request-Id` (from a `--trusted-proxy`) is kept when it is a plausible id; any other request
/// gets a new one, and an untrusted client's field is replaced: a client must not be able to make its requests look
/// like someone else's in the logs.
struct RequestIDs {
    /// Random per connection, so that ids never repeat across connections, proxies or restarts (64 random bits).
    private let prefix: String
    private var sequence: UInt64 = 0

    /// The longest id kept from a trusted client.
    static let maxLength = 128

    init<Generator: RandomNumberGenerator>(using generator: inout Generator) {
        let random = UInt64.random(in: .min ... .max, using: &generator)
        let hex = String(random, radix: 16)
        self.prefix = String(repeating: "0", count: 16 - hex.count) + hex
    }

    init() {
        var generator = SystemRandomNumberGenerator()
        self.init(using: &generator)
    }

    /// Ids with a fixed prefix: a harness that must behave the same way for the same bytes.
    init(prefix: String) {
        self.prefix = prefix
    }

    /// A new id: the connection's prefix and the request's number on it (`9f86d081884c7d65-1`).
    mutating func next() -> String {
        self.sequence += 1
        // One allocation: chained `+` made a string per step, on every request.
        var id = ""
        id.reserveCapacity(self.prefix.utf8.count + 17)
        id.append(self.prefix)
        id.append("-")
        id.append(String(self.sequence, radix: 16))
        return id
    }

    /// The id of `head`: a trusted client's own when it is 1 to 128 characters of letters, digits and `-._:`,
    /// otherwise a new one.
    mutating func id(for head: HTTPHead, trusted: Bool) -> String {
        if trusted, let value = head.firstValue("x-request-id"), Self.isPlausible(value) {
            return value
        }
        return self.next()
    }

    static func isPlausible(_ value: String) -> Bool {
        guard !value.isEmpty, value.utf8.count <= Self.maxLength else { return false }
        return value.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "a")...UInt8(ascii: "z"),
                UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"),
                UInt8(ascii: ":"):
                true
            default:
                false
            }
        }
    }
}
