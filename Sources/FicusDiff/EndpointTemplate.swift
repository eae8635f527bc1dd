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
        var path = path
        return path.withUTF8 { whole -> String in
            var start = 0
            let end =
                whole.firstIndex { $0 == UInt8(ascii: "?") || $0 == UInt8(ascii: "#") } ?? whole.count
            if end > 0, whole[0] != UInt8(ascii: "/"), let authority = EndpointTemplate.afterScheme(whole, end: end) {
                guard let slash = whole[authority..<end].firstIndex(of: UInt8(ascii: "/")) else {
                    return "/"
                }
                start = slash
            }
            guard start < end else {
                return "/"
            }
            return EndpointTemplate.template(UnsafeBufferPointer(rebasing: whole[start..<end]))
        }
    }

    /// The template of a path without query: built in one pass, and only when some segment is an id (most paths
    /// of a static endpoint come back as they are).
    private static func template(_ path: UnsafeBufferPointer<UInt8>) -> String {
        var output: [UInt8] = []
        var copied = 0
        var segmentStart = 0
        for index in 0...path.count where index == path.count || path[index] == UInt8(ascii: "/") {
            if EndpointTemplate.isIdentifier(UnsafeBufferPointer(rebasing: path[segmentStart..<index])) {
                if output.isEmpty {
                    output.reserveCapacity(path.count + EndpointTemplate.placeholder.utf8.count)
                }
                output.append(contentsOf: path[copied..<segmentStart])
                output.append(contentsOf: EndpointTemplate.placeholder.utf8)
                copied = index
            }
            segmentStart = index + 1
        }
        guard !output.isEmpty else {
            return String(decoding: path, as: UTF8.self)
        }
        output.append(contentsOf: path[copied...])
        return String(decoding: output, as: UTF8.self)
    }

    /// The index just past `://` in `bytes[..<end]`, if it has one.
    private static func afterScheme(_ bytes: UnsafeBufferPointer<UInt8>, end: Int) -> Int? {
        guard end >= 3 else {
            return nil
        }
        for index in 0...(end - 3)
        where bytes[index] == UInt8(ascii: ":") && bytes[index + 1] == UInt8(ascii: "/")
            && bytes[index + 2] == UInt8(ascii: "/")
        {
            return index + 3
        }
        return nil
    }

    /// Whether a single path segment looks like an id.
    public static func isIdentifier(_ segment: Substring) -> Bool {
        var segment = segment
        return segment.withUTF8 { EndpointTemplate.isIdentifier($0) }
    }

    private static func isIdentifier(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
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

    private static func isUUID(_ bytes: UnsafeBufferPointer<UInt8>) -> Bool {
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
