/// A semantic version (`2.1.0`, `3.0.0-beta.2`) ordered by semver 2.0 precedence.
///
/// Version routing and the semver segment operators compare versions that clients send in headers, which are often
/// shortened (`2`, `v2.1`), so parsing is lenient about missing parts and a leading `v`.
public struct SemanticVersion: Sendable, Hashable, Comparable {
    /// The major version.
    ///
    /// A missing part in the text counts as 0.
    public var major: Int

    /// The minor version.
    ///
    /// A missing part in the text counts as 0.
    public var minor: Int

    /// The patch version.
    ///
    /// A missing part in the text counts as 0.
    public var patch: Int

    /// The dot-separated pre-release identifiers after `-`; empty for a release.
    ///
    /// A pre-release sorts before its release (`2.0.0-rc.1 < 2.0.0`).
    public var prerelease: [String]

    /// Creates a version from its parts.
    ///
    /// Build metadata is not modelled: semver ignores it for precedence, and so does routing.
    public init(major: Int, minor: Int = 0, patch: Int = 0, prerelease: [String] = []) {
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = prerelease
    }

    /// Parses `MAJOR[.MINOR[.PATCH]][-PRERELEASE][+BUILD]`, with an optional leading `v` and surrounding spaces.
    ///
    /// Lenient about missing parts because clients send `2` or `v2.1` in version headers; build metadata is
    /// accepted and dropped since it does not take part in precedence.
    public init?(_ text: some StringProtocol) {
        var text = String(text)
        guard let version = text.withUTF8({ SemanticVersion.parse($0) }) else {
            return nil
        }
        self = version
    }

    /// Parses a version from UTF-8 bytes, as `init?(_:)` does for text.
    ///
    /// Version routing reads the version straight out of a header's bytes; only pre-release identifiers allocate.
    static func parse(_ bytes: UnsafeBufferPointer<UInt8>) -> SemanticVersion? {
        let range = Bytes.trimmed(bytes, 0..<bytes.count)
        var index = range.lowerBound
        let end = range.upperBound
        if index < end, bytes[index] | 0x20 == UInt8(ascii: "v") {
            index += 1
        }
        var numbers = SIMD3<Int>()
        var parts = 0
        while true {
            var value = 0
            var digits = 0
            while index < end, bytes[index] >= UInt8(ascii: "0"), bytes[index] <= UInt8(ascii: "9") {
                // A tenth digit is refused here, before it is added: the text comes from a client's header, and a
                // long run of digits would otherwise overflow `value` and trap (found by the routing-decision fuzzer).
                guard digits < 9 else {
                    return nil
                }
                value = value * 10 + Int(bytes[index] - UInt8(ascii: "0"))
                digits += 1
                index += 1
            }
            guard digits > 0, digits <= 9 else {
                return nil
            }
            numbers[parts] = value
            parts += 1
            if parts < 3, index < end, bytes[index] == UInt8(ascii: ".") {
                index += 1
                continue
            }
            break
        }
        var prerelease: [String] = []
        if index < end, bytes[index] == UInt8(ascii: "-") {
            guard parts == 3 else {
                return nil
            }
            index += 1
            var identifierStart = index
            while true {
                if index == end || bytes[index] == UInt8(ascii: ".") || bytes[index] == UInt8(ascii: "+") {
                    guard index > identifierStart else {
                        return nil
                    }
                    prerelease.append(String(decoding: Bytes.slice(bytes, identifierStart..<index), as: UTF8.self))
                    if index < end, bytes[index] == UInt8(ascii: ".") {
                        index += 1
                        identifierStart = index
                        continue
                    }
                    break
                }
                guard Self.isIdentifierByte(bytes[index]) else {
                    return nil
                }
                index += 1
            }
        }
        if index < end, bytes[index] == UInt8(ascii: "+") {
            index += 1
            var identifierLength = 0
            while index < end {
                if bytes[index] == UInt8(ascii: ".") {
                    guard identifierLength > 0 else {
                        return nil
                    }
                    identifierLength = 0
                } else {
                    guard Self.isIdentifierByte(bytes[index]) else {
                        return nil
                    }
                    identifierLength += 1
                }
                index += 1
            }
            guard identifierLength > 0 else {
                return nil
            }
        }
        guard index == end else {
            return nil
        }
        return SemanticVersion(major: numbers[0], minor: numbers[1], patch: numbers[2], prerelease: prerelease)
    }

    /// Orders by major, minor, patch, then pre-release identifiers as semver 2.0 specifies.
    ///
    /// Numeric identifiers compare as numbers and sort before alphanumeric ones; a release sorts after its
    /// pre-releases.
    public static func < (lhs: SemanticVersion, rhs: SemanticVersion) -> Bool {
        if lhs.major != rhs.major {
            return lhs.major < rhs.major
        }
        if lhs.minor != rhs.minor {
            return lhs.minor < rhs.minor
        }
        if lhs.patch != rhs.patch {
            return lhs.patch < rhs.patch
        }
        switch (lhs.prerelease.isEmpty, rhs.prerelease.isEmpty) {
        case (true, true), (true, false):
            return false
        case (false, true):
            return true
        case (false, false):
            break
        }
        for (left, right) in zip(lhs.prerelease, rhs.prerelease) where left != right {
            switch (Int(left), Int(right)) {
            case (let l?, let r?):
                return l < r
            case (.some, nil):
                return true
            case (nil, .some):
                return false
            case (nil, nil):
                return left < right
            }
        }
        return lhs.prerelease.count < rhs.prerelease.count
    }

    /// Parses one numeric part: digits only, at most 9 of them.
    ///
    /// The digit limit keeps a hostile header from overflowing `Int`.
    static func number(_ text: Substring) -> Int? {
        guard !text.isEmpty, text.utf8.count <= 9, text.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            return nil
        }
        return Int(text)
    }

    private static func isIdentifierByte(_ byte: UInt8) -> Bool {
        switch byte {
        case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
            UInt8(ascii: "0")...UInt8(ascii: "9"), UInt8(ascii: "-"):
            return true
        default:
            return false
        }
    }
}

extension SemanticVersion: CustomStringConvertible {
    /// The version as `MAJOR.MINOR.PATCH[-PRERELEASE]`.
    ///
    /// Always three parts, so a printed version shows how a shortened one was read.
    public var description: String {
        let core = "\(self.major).\(self.minor).\(self.patch)"
        return self.prerelease.isEmpty ? core : core + "-" + self.prerelease.joined(separator: ".")
    }
}

extension Substring {
    /// This text without leading and trailing spaces and tabs.
    ///
    /// Header values and configuration values both arrive with optional whitespace around them.
    func trimmingASCIISpaces() -> Substring {
        var text = self
        while let first = text.first, first == " " || first == "\t" {
            text = text.dropFirst()
        }
        while let last = text.last, last == " " || last == "\t" {
            text = text.dropLast()
        }
        return text
    }
}
