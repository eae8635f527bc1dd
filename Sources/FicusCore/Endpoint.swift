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

    /// The address's share of its upstream's requests relative to the others' (`weight=3`), or nil for 1.
    ///
    /// Written after the address in the same text (`10.0.0.1:8080 weight=3`), so that address lists stay lists of
    /// strings and every file written before weights existed stays valid.
    public var weight: Int?

    /// The largest weight an address may have.
    ///
    /// Envoy caps endpoint weights at 128 per locality for the same reason: a schedule stays short.
    public static let maxWeight = 1000

    /// Creates an endpoint from a host, a port and an optional weight.
    ///
    /// No checks: validation reports an empty host, a port or a weight out of range with the upstream that holds it.
    public init(host: String, port: Int, weight: Int? = nil, tls: Bool = false) {
        self.host = host
        self.port = port
        self.weight = weight
        self.tls = tls
    }

    /// `weight`, or 1 when it is not set.
    ///
    /// What the balancers use.
    public var effectiveWeight: Int { self.weight ?? 1 }

    /// The address without its weight (`host:port`, IPv6 in brackets, `https://` before it with TLS).
    ///
    /// The identity of an address for health and status: changing a weight does not reset its ejection state.
    public var address: String {
        self.tls ? "https://" + self.hostAndPort : self.hostAndPort
    }

    /// `host:port` (IPv6 in brackets) without the scheme: what a `Host` field names.
    ///
    /// Health checks send it as their `Host`, over TLS or not.
    public var hostAndPort: String {
        self.host.contains(":") ? "[\(self.host)]:\(self.port)" : "\(self.host):\(self.port)"
    }

    /// Parses `host:port`, `1.2.3.4:port` or `[v6 address]:port`, each optionally after `https://` (TLS) and
    /// followed by ` weight=N`.
    ///
    /// An unbracketed IPv6 address is refused because its last group cannot be told apart from a port. The port is
    /// never implied, not even 443 after `https://`: every address in a configuration says where it goes. The weight
    /// must be plain digits (1 to 9 of them); its range is validation's to report.
    public init?(parsing input: String) {
        var text = input
        var weight: Int?
        var tls = false
        if let space = input.firstIndex(of: " ") {
            let options = input[input.index(after: space)...].split(separator: " ")
            text = String(input[..<space])
            guard options.count == 1, options[0].hasPrefix("weight=") else {
                return nil
            }
            let digits = options[0].dropFirst("weight=".count)
            guard !digits.isEmpty, digits.count <= 9, digits.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
                return nil
            }
            weight = Int(digits)
        }
        if text.hasPrefix("https://") {
            text = String(text.dropFirst("https://".count))
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
        self.init(host: String(host), port: port, weight: weight, tls: tls)
    }
}

extension Endpoint: CustomStringConvertible {
    /// The endpoint as `host:port`, with brackets around an IPv6 host, `https://` before it with TLS, and ` weight=N`
    /// when a weight is set.
    ///
    /// The same form `init?(parsing:)` reads, so configuration round-trips through text; a plain address is written
    /// exactly as before TLS and weights existed, so stored snapshots do not change.
    public var description: String {
        guard let weight = self.weight else { return self.address }
        return "\(self.address) weight=\(weight)"
    }
}

extension Endpoint: Codable {
    private enum CodingKeys: String, CodingKey {
        case host
        case port
        case weight
        case tls
    }

    /// Decodes `"host:port"` text (optionally `https://` before it and ` weight=N` after it), or an object with
    /// `host`, `port`, `weight` and `tls`.
    ///
    /// Text is what people write in rule files; the object form is accepted so that either shape loads.
    public init(from decoder: any Decoder) throws {
        if let container = try? decoder.singleValueContainer(), let text = try? container.decode(String.self) {
            guard let endpoint = Endpoint(parsing: text) else {
                throw DecodingError.dataCorruptedError(
                    in: container,
                    debugDescription: "invalid endpoint '\(text)', expected host:port, https://host:port, or either with ' weight=N'"
                )
            }
            self = endpoint
            return
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            host: try container.decode(String.self, forKey: .host),
            port: try container.decode(Int.self, forKey: .port),
            weight: try container.decodeIfPresent(Int.self, forKey: .weight),
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
