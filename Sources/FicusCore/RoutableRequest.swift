/// What a routing decision needs to know about a request.
///
/// The proxy implements this over its raw request head, so the table asks only for what a rule uses, and only when
/// it evaluates that rule; implementations should compute values lazily.
public protocol RoutableRequest {
    /// The request method as received (`GET`); compared exactly with the configured upper-case methods.
    var method: String { get }

    /// The host the request is for, without the port, as received; nil when the request names none.
    ///
    /// The table ignores ASCII case, a trailing dot and a `:port` that was left on, so callers need not normalise.
    var host: String? { get }

    /// The request path without the query string, as received (not percent-decoded).
    var path: String { get }

    /// The raw query string without the `?`, or nil when there is none.
    ///
    /// The table finds and percent-decodes parameters itself.
    var query: String? { get }

    /// The first value of the header named `name`, matched without regard to case; nil when absent.
    ///
    /// The table always passes names in lower case, so an implementation holding lower-cased names may compare
    /// directly.
    func header(_ name: String) -> String?

    /// The value of the cookie named `name` (case-sensitive) from the `Cookie` header(s); nil when absent.
    func cookie(_ name: String) -> String?

    /// The client's address: the TCP peer, or the address a trusted proxy reported; nil when unknown.
    var clientAddress: IPAddress? { get }

    /// The subject of the client certificate verified on the connection (RFC 4514 text); nil when none was.
    var clientCertificateSubject: String? { get }
}

extension RoutableRequest {
    /// No client certificate: requests that do not come over a verified TLS connection have none.
    public var clientCertificateSubject: String? { nil }
}
