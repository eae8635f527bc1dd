/// One side's answer as the proxy captured it, with a bounded body.
///
/// The proxy never buffers a body without a bound, so beyond the capture bound only the length and a hash of the full
/// body survive; the comparer falls back to them when `truncated` is set.
public struct CapturedMessage: Sendable, Equatable {
    /// The HTTP status code.
    public var status: Int

    /// The response headers in wire order, names as received.
    ///
    /// Kept as pairs rather than a dictionary because repeated headers and their order are part of the answer.
    public var headers: [(String, String)]

    /// The captured body bytes, at most the capture bound (default 1 MiB), still content-encoded.
    public var body: [UInt8]

    /// The full body length seen on the wire.
    ///
    /// Larger than `body.count` exactly when the body was truncated.
    public var bodyLength: Int

    /// Whether the body was longer than the capture bound.
    ///
    /// A truncated body cannot be decoded or parsed, so it is compared by `bodyLength` and `bodyHash` alone.
    public var truncated: Bool

    /// The FNV-1a 64 hash of the full wire body, computed incrementally by the proxy.
    ///
    /// It is what makes two truncated bodies comparable at all.
    public var bodyHash: UInt64

    /// The time from sending the request to the end of the answer.
    public var latencyMicroseconds: Int

    /// Creates a captured message; a missing length or hash is computed from `body`.
    ///
    /// Tests and small answers pass the whole body and nothing else; the proxy passes its streamed length and hash.
    public init(
        status: Int,
        headers: [(String, String)] = [],
        body: [UInt8] = [],
        bodyLength: Int? = nil,
        truncated: Bool = false,
        bodyHash: UInt64? = nil,
        latencyMicroseconds: Int = 0
    ) {
        self.status = status
        self.headers = headers
        self.body = body
        self.bodyLength = bodyLength ?? body.count
        self.truncated = truncated
        self.bodyHash = bodyHash ?? FNV1a64.hash(body)
        self.latencyMicroseconds = latencyMicroseconds
    }

    /// Compares every field, headers pair by pair in order.
    ///
    /// Tuples are not `Equatable`, so the synthesized conformance is not available.
    public static func == (lhs: CapturedMessage, rhs: CapturedMessage) -> Bool {
        lhs.status == rhs.status && lhs.body == rhs.body && lhs.bodyLength == rhs.bodyLength
            && lhs.truncated == rhs.truncated && lhs.bodyHash == rhs.bodyHash
            && lhs.latencyMicroseconds == rhs.latencyMicroseconds
            && lhs.headers.count == rhs.headers.count
            && zip(lhs.headers, rhs.headers).allSatisfy { $0.0 == $1.0 && $0.1 == $1.1 }
    }

    /// All values of the header `name`, matched case-insensitively and joined with ", ".
    ///
    /// HTTP allows a header list to be split over several lines; joined, it reads as one value.
    public func headerValue(_ name: String) -> String? {
        let wanted = name.lowercased()
        var values: [String] = []
        for (headerName, value) in self.headers where headerName.lowercased() == wanted {
            values.append(value.trimmingHTTPWhitespace())
        }
        return values.isEmpty ? nil : values.joined(separator: ", ")
    }
}

extension String {
    /// The string without leading and trailing spaces and tabs.
    ///
    /// HTTP field values carry optional whitespace around them that is not part of the value.
    func trimmingHTTPWhitespace() -> String {
        let utf8 = self.utf8
        guard let first = utf8.firstIndex(where: { $0 != 0x20 && $0 != 0x09 }) else {
            return ""
        }
        let last = utf8.lastIndex(where: { $0 != 0x20 && $0 != 0x09 })!
        return String(self[first...last])
    }
}
