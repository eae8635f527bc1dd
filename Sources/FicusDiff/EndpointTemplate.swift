/// Grouping of request paths into endpoint templates such as `/orders/{id}/items/{id}`.
///
/// Differences and noise are counted per endpoint; counted per concrete path, every order id would be its own
/// endpoint with one request, and no threshold could ever tell noise from a regression. Nothing needs to be
/// configured: segments that look like ids are recognised by shape.
public enum EndpointTemplate {
    /// The placeholder that replaces an id segment.
    public static let placeholder = "{id}"

    /// The template of `path`: id-like segments replaced by `{id}`, query and fragment dropped, everything else
    /// (including a trailing slash) kept.
    ///
    /// Id-like segments are all digits, UUIDs, hex of 16 or more characters, and base64 or base64url tokens of 20
    /// or more characters that mix letters and digits.
    public static func template(path: String) -> String {
        var path = Substring(path)
        if let end = path.firstIndex(where: { $0 == "?" || $0 == "#" }) {
            path = path[..<end]
        }
        if !path.hasPrefix("/"), let scheme = path.firstRange(of: "://") {
            let afterAuthority = path[scheme.upperBound...]
            path = afterAuthority.firstIndex(of: "/").map { afterAuthority[$0...] } ?? "/"
        }
        guard !path.isEmpty else {
            return "/"
        }
        return path.split(separator: "/", omittingEmptySubsequences: false)
            .map { EndpointTemplate.isIdentifier($0) ? EndpointTemplate.placeholder : String($0) }
            .joined(separator: "/")
    }

    /// Whether a single path segment looks like an id.
    public static func isIdentifier(_ segment: Substring) -> Bool {
        let bytes = Array(segment.utf8)
        guard !bytes.isEmpty else {
            return false
        }
        if bytes.allSatisfy(JSONNumber.isDigit) {
            return true
        }
        if EndpointTemplate.isUUID(bytes) {
            return true
        }
        if bytes.count >= 16, bytes.allSatisfy(EndpointTemplate.isHexDigit) {
            return true
        }
        if bytes.count >= 20, bytes.allSatisfy(EndpointTemplate.isBase64Character),
            bytes.contains(where: JSONNumber.isDigit), bytes.contains(where: EndpointTemplate.isLetter)
        {
            return true
        }
        return false
    }

    private static func isUUID(_ bytes: [UInt8]) -> Bool {
        guard bytes.count == 36 else {
            return false
        }
        for (position, byte) in bytes.enumerated() {
            let isHyphenPosition = position == 8 || position == 13 || position == 18 || position == 23
            if isHyphenPosition ? byte != UInt8(ascii: "-") : !EndpointTemplate.isHexDigit(byte) {
                return false
            }
        }
        return true
    }

    private static func isHexDigit(_ byte: UInt8) -> Bool {
        JSONNumber.isDigit(byte) || (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "f"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "F"))
    }

    private static func isLetter(_ byte: UInt8) -> Bool {
        (byte >= UInt8(ascii: "a") && byte <= UInt8(ascii: "z"))
            || (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z"))
    }

    private static func isBase64Character(_ byte: UInt8) -> Bool {
        EndpointTemplate.isLetter(byte) || JSONNumber.isDigit(byte) || byte == UInt8(ascii: "+")
            || byte == UInt8(ascii: "/") || byte == UInt8(ascii: "=") || byte == UInt8(ascii: "-")
            || byte == UInt8(ascii: "_")
    }
}
