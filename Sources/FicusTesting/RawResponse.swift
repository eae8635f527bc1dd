/// One HTTP/1.1 response as it arrived on the wire, parsed by the test client.
///
/// `raw` keeps the exact bytes so that byte-exact assertions (framing, header order, case) stay possible next to the
/// convenient parsed fields.
public struct RawResponse: Sendable {
    public var status: Int
    public var version: String
    public var reason: String
    public var headers: [(String, String)]
    public var body: [UInt8]
    /// The trailers of a chunked response; empty otherwise.
    public var trailers: [(String, String)]
    /// Every byte of the response, from the status line to the end of its framing.
    public var raw: [UInt8]

    public init(
        status: Int,
        version: String,
        reason: String,
        headers: [(String, String)],
        body: [UInt8],
        trailers: [(String, String)],
        raw: [UInt8]
    ) {
        self.status = status
        self.version = version
        self.reason = reason
        self.headers = headers
        self.body = body
        self.trailers = trailers
        self.raw = raw
    }

    /// The first value of the named header, compared case-insensitively.
    ///
    /// Header names are case-insensitive on the wire, so tests should not depend on the case a peer wrote.
    public func header(_ name: String) -> String? {
        self.headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Every value of the named header, in order, compared case-insensitively.
    ///
    /// Needed to prove that a field was not duplicated or was removed entirely.
    public func headers(_ name: String) -> [String] {
        let wanted = name.lowercased()
        return self.headers.filter { $0.0.lowercased() == wanted }.map(\.1)
    }

    /// The first value of the named trailer, compared case-insensitively.
    ///
    /// Trailers travel separately from headers; tests check both sides of that split.
    public func trailer(_ name: String) -> String? {
        self.trailers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// The body decoded as UTF-8.
    ///
    /// Most test bodies are text; this keeps assertions short.
    public var bodyString: String {
        String(decoding: self.body, as: UTF8.self)
    }
}
