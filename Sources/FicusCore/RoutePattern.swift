/// A route's host pattern, parsed and lower-cased.
///
/// Parsed once at compile time so that matching compares bytes.
enum HostPattern: Equatable {
    /// An exact host.
    case exact([UInt8])
    /// `*.suffix`: one or more labels followed by `.suffix`; holds the suffix without `*.`.
    case wildcard([UInt8])

    /// Parses a host pattern, or nil when `problem` would report one.
    ///
    /// A trailing dot is dropped, as it is from request hosts.
    init?(_ text: String) {
        guard HostPattern.problem(text) == nil else {
            return nil
        }
        var bytes = Array(text.utf8).map(asciiLowercase)
        if bytes.last == UInt8(ascii: ".") {
            bytes.removeLast()
        }
        if bytes.starts(with: "*.".utf8) {
            self = .wildcard(Array(bytes.dropFirst(2)))
        } else {
            self = .exact(bytes)
        }
    }

    /// What is wrong with a host pattern, or nil when it is valid.
    ///
    /// Ports are rejected because request hosts are compared without theirs.
    static func problem(_ text: String) -> String? {
        var host = Substring(text)
        if host.hasPrefix("*.") {
            host = host.dropFirst(2)
        }
        if host.hasSuffix(".") {
            host = host.dropLast()
        }
        if host.hasPrefix("["), host.hasSuffix("]") {
            let address = String(host.dropFirst().dropLast())
            return IPAddress(address).map { $0.isIPv4 ? "invalid host '\(text)'" : nil }
                ?? "invalid IPv6 address in host '\(text)'"
        }
        if host.contains(":") {
            return "host '\(text)' must not include a port"
        }
        let valid =
            !host.isEmpty && !host.hasPrefix(".") && !host.contains("..")
            && host.utf8.allSatisfy { byte in
                switch byte {
                case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                    UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"), UInt8(ascii: "."), UInt8(ascii: "_"):
                    return true
                default:
                    return false
                }
            }
        return valid ? nil : "invalid host '\(text)': use a name, an address, or '*.' followed by a name"
    }
}

/// A route's path pattern split into segments.
///
/// The routing trie is built from these segments; a pattern without wildcards becomes a prefix by ending in `rest`.
struct PathPattern: Equatable {
    enum Segment: Equatable {
        /// Exactly this segment, byte for byte.
        case literal([UInt8])
        /// Any one segment (`{name}` or `*`).
        case parameter
        /// Any number of further segments, including none (`**`, or the end of a prefix).
        case rest
    }

    var segments: [Segment]

    /// Parses a path pattern, or nil when `problem` would report one.
    ///
    /// See `Route.path` for the syntax.
    init?(_ text: String) {
        guard PathPattern.problem(text) == nil else {
            return nil
        }
        var segments: [Segment] = []
        var isTemplate = false
        for piece in text.split(separator: "/") {
            if piece == "**" {
                segments.append(.rest)
                isTemplate = true
            } else if piece == "*" || (piece.hasPrefix("{") && piece.hasSuffix("}")) {
                segments.append(.parameter)
                isTemplate = true
            } else {
                segments.append(.literal(Array(piece.utf8)))
            }
        }
        if !isTemplate {
            segments.append(.rest)
        }
        self.segments = segments
    }

    /// What is wrong with a path pattern, or nil when it is valid.
    ///
    /// Wildcards must fill whole segments so that matching never looks inside one.
    static func problem(_ text: String) -> String? {
        guard text.hasPrefix("/") else {
            return "path '\(text)' must start with '/'"
        }
        let pieces = text.split(separator: "/")
        for (index, piece) in pieces.enumerated() {
            if piece == "**" {
                if index != pieces.count - 1 {
                    return "'**' must be the last segment of '\(text)'"
                }
                continue
            }
            if piece == "*" {
                continue
            }
            if piece.hasPrefix("{") && piece.hasSuffix("}") {
                let name = piece.dropFirst().dropLast()
                let valid = !name.isEmpty && name.allSatisfy { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_") }
                if !valid {
                    return "invalid parameter '\(piece)' in '\(text)': use letters, digits and '_'"
                }
                continue
            }
            if piece.contains(where: { "{}*?#".contains($0) || $0 == " " }) {
                return "invalid segment '\(piece)' in '\(text)': '{name}', '*' and '**' must fill a whole segment"
            }
        }
        return nil
    }

    /// A key equal for patterns that match the same paths (`/orders/{id}` and `/orders/*`).
    ///
    /// Validation uses it to find routes hidden by an identical earlier one.
    static func normalizedKey(_ text: String) -> String {
        guard let pattern = PathPattern(text) else {
            return text
        }
        return pattern.segments.map { segment in
            switch segment {
            case .literal(let bytes):
                return String(decoding: bytes, as: UTF8.self)
            case .parameter:
                return "{}"
            case .rest:
                return "**"
            }
        }.joined(separator: "/")
    }
}
