/// A request as a plain value: method, host, path, query, headers and client address.
///
/// The concrete `RoutableRequest` for tests, `explain` and the CLI (`ficus explain GET /orders/7 -H ...`), where no
/// raw request head exists.
public struct RequestFacts: RoutableRequest, Sendable, Equatable {
    /// The request method (`GET`).
    public var method: String

    /// The host without port; see `RoutableRequest.host`.
    public var host: String?

    /// The path without query string.
    public var path: String

    /// The raw query string without `?`, or nil.
    public var query: String?

    /// The headers in order; repeated names allowed.
    ///
    /// `header(_:)` returns the first value of a name, as the proxy does. Lower-cased names and parsed cookies are
    /// kept beside the list and rebuilt when it changes, so that lookups during a decision compare bytes.
    public var headers: [HeaderField] {
        didSet {
            self.index = HeaderIndex(self.headers)
        }
    }

    private var index: HeaderIndex

    /// The client's address, or nil.
    public var clientAddress: IPAddress?

    /// The verified client certificate's subject (RFC 4514 text), or nil (the default): what `client_cert_subject`
    /// predicates test.
    public var clientCertificateSubject: String?

    /// Creates facts from their parts.
    ///
    /// For callers that already split the request; see `init(method:target:headers:clientAddress:)` otherwise.
    public init(
        method: String = "GET",
        host: String? = nil,
        path: String = "/",
        query: String? = nil,
        headers: [HeaderField] = [],
        clientAddress: IPAddress? = nil
    ) {
        self.method = method
        self.host = host
        self.path = path
        self.query = query
        self.headers = headers
        self.index = HeaderIndex(headers)
        self.clientAddress = clientAddress
    }

    /// Creates facts from a request target as written on a request line or command line.
    ///
    /// `target` is origin form (`/orders/7?expand=1`) or absolute form (`https://api.example.com:8443/orders`); the
    /// host comes from an absolute target, otherwise from the `Host` header, without its port in both cases. A
    /// fragment is dropped and an empty path becomes `/`.
    public init(
        method: String = "GET",
        target: String,
        headers: [(String, String)] = [],
        clientAddress: IPAddress? = nil
    ) {
        var rest = Substring(target)
        if let hash = rest.firstIndex(of: "#") {
            rest = rest[..<hash]
        }
        var host: String?
        for scheme in ["http://", "https://"] where rest.lowercased().hasPrefix(scheme) {
            rest = rest.dropFirst(scheme.count)
            let authorityEnd = rest.firstIndex(where: { $0 == "/" || $0 == "?" }) ?? rest.endIndex
            var authority = rest[..<authorityEnd]
            if let at = authority.lastIndex(of: "@") {
                authority = authority[authority.index(after: at)...]
            }
            host = RequestFacts.removingPort(authority)
            rest = rest[authorityEnd...]
            break
        }
        var query: String?
        if let question = rest.firstIndex(of: "?") {
            query = String(rest[rest.index(after: question)...])
            rest = rest[..<question]
        }
        let fields = headers.map { HeaderField(name: $0.0, value: $0.1) }
        if host == nil, let hostHeader = fields.first(where: { $0.name.lowercased() == "host" }) {
            host = RequestFacts.removingPort(Substring(hostHeader.value))
        }
        self.init(
            method: method,
            host: host,
            path: rest.isEmpty ? "/" : String(rest),
            query: query,
            headers: fields,
            clientAddress: clientAddress
        )
    }

    /// The first value of the header named `name`, matched without regard to ASCII case.
    ///
    /// A scan over the lower-cased names that compares lengths, then bytes: the routing table asks once per
    /// predicate, and for the few dozen headers of a request this is cheaper than hashing the name.
    public func header(_ name: String) -> String? {
        self.index.position(of: name).map { self.headers[$0].value }
    }

    /// The value of the first cookie named `name` across all `Cookie` headers, without surrounding quotes.
    ///
    /// Cookie names are case-sensitive; pairs are separated by `;` with optional spaces, as RFC 6265 sends them.
    public func cookie(_ name: String) -> String? {
        self.index.cookies.first { $0.name == name }?.value
    }

    private static func removingPort(_ authority: Substring) -> String? {
        var host = authority
        if host.hasPrefix("[") {
            if let close = host.firstIndex(of: "]") {
                host = host[...close]
            }
        } else if let colon = host.lastIndex(of: ":") {
            host = host[..<colon]
        }
        return host.isEmpty ? nil : String(host)
    }
}

/// Whether two strings are equal when ASCII letters are compared without regard to case.
///
/// Header names are ASCII; this avoids the allocation of `lowercased()`.
func asciiCaseInsensitiveEquals(_ lhs: String, _ rhs: String) -> Bool {
    guard lhs.utf8.count == rhs.utf8.count else {
        return false
    }
    return zip(lhs.utf8, rhs.utf8).allSatisfy { asciiLowercase($0) == asciiLowercase($1) }
}

/// The byte with ASCII upper-case letters mapped to lower case.
///
/// The case folding used for hosts, header names and case-insensitive predicates.
@inline(__always)
func asciiLowercase(_ byte: UInt8) -> UInt8 {
    byte &- UInt8(ascii: "A") < 26 ? byte | 0x20 : byte
}

/// Lower-cased header names and parsed cookies of a header list.
///
/// Built once per header list so that a decision's many lookups do no case folding or cookie parsing.
private struct HeaderIndex: Sendable, Equatable {
    /// One distinct lower-cased name: its length, its first eight bytes as a word, where all its bytes are in
    /// `nameBytes`, and its first position in the list.
    struct Entry: Sendable {
        var count: Int
        var head: UInt64
        var start: Int
        var position: Int
    }

    var entries: [Entry]
    var nameBytes: [UInt8]
    /// The lower-cased names, parallel to `entries`; compared as `String`s when a name is not ASCII.
    var names: [String]
    var allASCII: Bool
    var cookies: [(name: String, value: String)]

    init(_ headers: [HeaderField]) {
        self.entries = []
        self.nameBytes = []
        self.names = []
        self.allASCII = true
        self.cookies = []
        var seen = Set<String>()
        for (position, field) in headers.enumerated() {
            let name = field.name.lowercased()
            if seen.insert(name).inserted {
                let start = self.nameBytes.count
                self.nameBytes += name.utf8
                let bytes = self.nameBytes[start...]
                self.entries.append(
                    Entry(count: bytes.count, head: Self.head(bytes), start: start, position: position)
                )
                self.names.append(name)
                self.allASCII = self.allASCII && bytes.allSatisfy { $0 < 0x80 }
            }
            guard name == "cookie" else {
                continue
            }
            for pair in field.value.split(separator: ";") {
                let trimmed = pair.trimmingASCIISpaces()
                guard let equals = trimmed.firstIndex(of: "=") else {
                    continue
                }
                var value = trimmed[trimmed.index(after: equals)...]
                if value.count >= 2, value.hasPrefix("\""), value.hasSuffix("\"") {
                    value = value.dropFirst().dropLast()
                }
                self.cookies.append((String(trimmed[..<equals]), String(value)))
            }
        }
    }

    /// The first eight bytes of `bytes` with ASCII case folded, little-endian, zero-padded.
    @inline(__always)
    private static func head(_ bytes: some Collection<UInt8>) -> UInt64 {
        var head: UInt64 = 0
        var shift: UInt64 = 0
        for byte in bytes.prefix(8) {
            head |= UInt64(asciiLowercase(byte)) << shift
            shift += 8
        }
        return head
    }

    /// The position of the first header named `name`, as a dictionary of lower-cased names would find it.
    ///
    /// That is: `name` itself, else `name.lowercased()` when it has ASCII upper-case letters. For ASCII names on both
    /// sides this is a comparison with ASCII case folded, by length and first eight bytes before the rest; anything
    /// else compares `String`s, which also treats canonically equivalent Unicode as equal.
    func position(of name: String) -> Int? {
        if self.allASCII {
            let found = name.utf8.withContiguousStorageIfAvailable { self.asciiPosition(of: $0) }
            if let found, found != Self.undecided {
                return found == Self.missing ? nil : found
            }
        }
        if let index = self.names.firstIndex(of: name) {
            return self.entries[index].position
        }
        guard name.utf8.contains(where: { $0 &- UInt8(ascii: "A") < 26 }) else {
            return nil
        }
        return self.names.firstIndex(of: name.lowercased()).map { self.entries[$0].position }
    }

    private static let missing = -1
    private static let undecided = -2

    /// The position of the ASCII name `name`, `missing`, or `undecided` when `name` is not ASCII.
    ///
    /// A match implies that `name` is ASCII, since stored names are; only a miss needs the check.
    @inline(__always)
    private func asciiPosition(of name: UnsafeBufferPointer<UInt8>) -> Int {
        let count = name.count
        let head = Self.head(name)
        let found = self.entries.withUnsafeBufferPointer { entries in
            self.nameBytes.withUnsafeBufferPointer { stored in
                for entry in entries where entry.head == head && entry.count == count {
                    var equal = true
                    var offset = 8
                    while offset < count {
                        if stored[entry.start + offset] != asciiLowercase(name[offset]) {
                            equal = false
                            break
                        }
                        offset += 1
                    }
                    if equal {
                        return entry.position
                    }
                }
                return Self.missing
            }
        }
        if found == Self.missing, name.contains(where: { $0 >= 0x80 }) {
            return Self.undecided
        }
        return found
    }

    static func == (lhs: HeaderIndex, rhs: HeaderIndex) -> Bool {
        lhs.names == rhs.names && lhs.entries.map(\.position) == rhs.entries.map(\.position)
    }
}
