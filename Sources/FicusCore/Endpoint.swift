/// One address of an upstream: a host name or IP address and a TCP port, spoken to in plain HTTP or over TLS.
///
/// Kept as text plus port rather than a resolved socket address because name resolution is I/O and belongs to the
/// proxy; the model only has to be stored, validated and shown.
public struct Endpoint: Sendable, Hashable {
    /// The host name or IP address, without brackets for IPv6.
    ///
    /// Brackets are syntax of the `host:port` text only; the proxy connects to the bare address.
    public var host: String

    /// The TCP port, 1...65535 in a valid configuration.
    ///
    /// Range-checked by validation rather than by the type so that a bad stored value is reported, not dropped.
    public var port: Int

    /// Whether the upstream is spoken to over TLS (`https://host:port`); false (plain HTTP) by default.
    ///
    /// Part of the address rather than of the upstream, as in a URL: a pool can move from plain to TLS one address
    /// at a time, and pooled connections are never shared between the two.
    public var tls: Bool

    /// Creates an endpoint from a host and a port, plain HTTP unless `tls`.
    ///
    /// No checks: validation reports an empty host or a port out of range with the upstream that holds it.
    public init(host: String, port: Int, tls: Bool = false) {
        self.host = host
        self.port = port
        self.tls = tls
    }

    /// Parses `host:port`, `1.2.3.4:port` or `[v6 address]:port`, each optionally after `https://` (TLS).
    ///
    /// An unbracketed IPv6 address is refused because its last group cannot be told apart from a port. The port is
    /// never implied, not even 443 after `https://`: every address in a configuration says where it goes.
    public init?(parsing text: String) {
        var text = Substring(text)
        var tls = false
        if text.hasPrefix("https://") {
            text = text.dropFirst("https://".count)
            tls = true
        }
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]") else {
                return nil
            }
            host = text[text.index(after: text.startIndex)..<close]
            let rest = text[text.index(after: close)...]
            guard rest.hasPrefix(":") else {
                return nil
            }
            portText = rest.dropFirst()
            guard let address = IPAddress(String(host)), !address.isIPv4 else {
                return nil
            }
        } else {
            guard let colon = text.lastIndex(of: ":") else {
                return nil
            }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            guard !host.contains(":") else {
                return nil
            }
        }
        guard !host.isEmpty, !host.contains(where: { $0 == " " || $0 == "/" || $0 == "[" || $0 == "]" }),
            !portText.isEmpty, portText.count <= 5, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(portText), (1...65535).contains(port)
        else {
            return nil
        }
        self.init(host: String(host), port: port, tls: tls)
    }
}

extension Endpoint: CustomStringConvertible {
    /// The endpoint as `host:port`, with brackets around an IPv6 host and `https://` before it with TLS.
    ///
    /// The same form `init?(parsing:)` reads, so configuration round-trips through text; a plain address is written
    /// exactly as before TLS existed, so stored snapshots and their hashes do not change.
    public var description: String {
        let address = self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
        return self.tls ? "https://" + address : address
    }
}

extension Endpoint: Codable {
    private enum CodingKeys: String, CodingKey {
        case host
        case port
        case tls
    }

    /// Decodes `"host:port"` text, or an object with `host` and `port`.
    ///
    /// Text is what people write in rule files; the object form is accepted so that either shape loads.
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer(), let text = try? container.decode(String.self) {
            guard let endpoint = Endpoint(parsing: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "invalid endpoint '\(text)', expected host:port or https://host:port"
                )
            }
            self = endpoint
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            host: try container.decode(String.self, forKey: .host),
            port: try container.decode(Int.self, forKey: .port),
            tls: try container.decodeIfPresent(Bool.self, forKey: .tls) ?? false
        )
    }

    /// Encodes the endpoint as `host:port` text.
    ///
    /// Compact in JSON snapshots and readable in rendered YAML.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}
