/// The one reading of a request path that Ficus routes on and forwards.
///
/// A proxy that routes on one reading of a path and forwards another lets clients reach what rules keep from them:
/// `/orders/../admin` must not be routed as `/orders` and then resolved as `/admin` by the upstream. Ficus does what
/// Envoy's `normalize_path` does (RFC 3986 6.2.2): percent-encoded unreserved characters are decoded (so `%2e%2e` is
/// `..`), other percent-encodings get upper-case hex, and dot-segments are removed (RFC 3986 5.2.4). `%2F` stays
/// encoded: it is data inside a segment, not a separator. The normalized path is both what rules see and what the
/// upstream receives.
public enum PathNormalization {
    /// Whether `path` may need normalizing: it holds a `.` or a `%`; most paths hold neither and are left untouched.
    @inlinable
    public static func mayNeedWork(_ byte: UInt8) -> Bool {
        byte == 0x2E || byte == 0x25
    }

    /// The normalized form of `path` (a path without its query), or nil when it is already normal.
    public static func normalize(_ path: UnsafeRawBufferPointer) -> String? {
        guard path.contains(where: Self.mayNeedWork) else { return nil }
        var decoded: [UInt8] = []
        decoded.reserveCapacity(path.count)
        var index = 0
        while index < path.count {
            let byte = path[index]
            if byte == 0x25, index + 2 < path.count,
                let high = Self.hex(path[index + 1]), let low = Self.hex(path[index + 2])
            {
                let value = high << 4 | low
                if Self.isUnreserved(value) {
                    decoded.append(value)
                } else {
                    decoded.append(0x25)
                    decoded.append(Self.upperHex(high))
                    decoded.append(Self.upperHex(low))
                }
                index += 3
                continue
            }
            decoded.append(byte)
            index += 1
        }
        let result = Self.removeDotSegments(decoded)
        if result.elementsEqual(path) { return nil }
        return String(decoding: result, as: UTF8.self)
    }

    /// RFC 3986 5.2.4 on an absolute path: `.` segments vanish, `..` removes the segment before it (never past the
    /// root), and a path that ended in a dot-segment keeps its trailing slash.
    static func removeDotSegments(_ path: [UInt8]) -> [UInt8] {
        guard path.first == 0x2F else { return path }
        var segments: [ArraySlice<UInt8>] = []
        var trailingSlash = false
        let parts = path.dropFirst().split(separator: 0x2F, omittingEmptySubsequences: false)
        for (position, part) in parts.enumerated() {
            let last = position == parts.count - 1
            if part.elementsEqual([0x2E]) {
                trailingSlash = last
            } else if part.elementsEqual([0x2E, 0x2E]) {
                if !segments.isEmpty { segments.removeLast() }
                trailingSlash = last
            } else {
                segments.append(part)
                trailingSlash = false
            }
        }
        var result: [UInt8] = [0x2F]
        for (position, segment) in segments.enumerated() {
            if position > 0 { result.append(0x2F) }
            result.append(contentsOf: segment)
        }
        if trailingSlash && !segments.isEmpty { result.append(0x2F) }
        return result
    }

    private static func hex(_ byte: UInt8) -> UInt8? {
        switch byte {
        case 0x30...0x39: return byte - 0x30
        case 0x41...0x46: return byte - 0x41 + 10
        case 0x61...0x66: return byte - 0x61 + 10
        default: return nil
        }
    }

    private static func upperHex(_ value: UInt8) -> UInt8 {
        value < 10 ? 0x30 + value : 0x41 + value - 10
    }

    /// RFC 3986 unreserved: ALPHA / DIGIT / "-" / "." / "_" / "~".
    private static func isUnreserved(_ byte: UInt8) -> Bool {
        switch byte {
        case 0x30...0x39, 0x41...0x5A, 0x61...0x7A, 0x2D, 0x2E, 0x5F, 0x7E: return true
        default: return false
        }
    }
}
