/// A part of a request that a predicate tests or that stickiness hashes: a header, cookie, query parameter or the
/// client address.
///
/// Written as text in configuration (`header:X-User-Id`, `cookie:session`, `query:beta`, `client_ip`) so that a
/// constraint fits on one line of YAML.
public enum Attribute: Sendable, Hashable {
    /// The first value of a request header; the name is matched without regard to case.
    ///
    /// Header names are case-insensitive in HTTP.
    case header(String)

    /// The value of a cookie from the `Cookie` header; the name is case-sensitive.
    ///
    /// Cookie names are case-sensitive in browsers.
    case cookie(String)

    /// The first value of a query parameter, percent-decoded; the name is case-sensitive.
    ///
    /// Query parameter names are case-sensitive in most frameworks.
    case query(String)

    /// The address of the client: the TCP peer, or the address a trusted proxy reported.
    ///
    /// Which of the two is the proxy's decision; the routing table only sees `RoutableRequest.clientAddress`.
    case clientIP

    /// The subject (RFC 4514 text, `CN=alice,O=Example`) of the client certificate verified on a TLS connection
    /// (`ficus serve --tls-client-ca`); absent on plain connections and when no certificate was asked for.
    ///
    /// Only the handshake sets it, so a client cannot claim one the way it could write a header.
    case clientCertSubject

    /// Parses `header:NAME`, `cookie:NAME`, `query:NAME`, `client_ip` or `client_cert_subject`.
    ///
    /// The kind is case-insensitive; the name must not be empty.
    public init?(_ text: String) {
        if text.lowercased() == "client_ip" {
            self = .clientIP
            return
        }
        if text.lowercased() == "client_cert_subject" {
            self = .clientCertSubject
            return
        }
        guard let colon = text.firstIndex(of: ":") else {
            return nil
        }
        let name = String(text[text.index(after: colon)...])
        guard !name.isEmpty else {
            return nil
        }
        switch text[..<colon].lowercased() {
        case "header":
            self = .header(name)
        case "cookie":
            self = .cookie(name)
        case "query":
            self = .query(name)
        default:
            return nil
        }
    }
}

extension Attribute: CustomStringConvertible {
    /// The attribute as `header:NAME`, `cookie:NAME`, `query:NAME` or `client_ip`.
    ///
    /// The same text `init?(_:)` reads.
    public var description: String {
        switch self {
        case .header(let name):
            return "header:\(name)"
        case .cookie(let name):
            return "cookie:\(name)"
        case .query(let name):
            return "query:\(name)"
        case .clientIP:
            return "client_ip"
        case .clientCertSubject:
            return "client_cert_subject"
        }
    }
}

extension Attribute: Codable {
    /// Decodes the text form.
    ///
    /// See `init?(_:)`.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        let text = try container.decode(String.self)
        guard let attribute = Attribute(text) else {
            throw DecodingError.dataCorruptedError(
                in: container,
                debugDescription:
                    "invalid attribute '\(text)', expected header:NAME, cookie:NAME, query:NAME, client_ip or "
                    + "client_cert_subject"
            )
        }
        self = attribute
    }

    /// Encodes the text form.
    ///
    /// See `description`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
