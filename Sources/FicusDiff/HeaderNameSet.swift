/// Lower-cased header names, looked up in any case without lower-casing (and so without allocating) the name asked
/// about.
///
/// Comparisons ask for every header line whether its name is ignored; `String.lowercased()` would allocate for every
/// name longer than a small string (`Transfer-Encoding`, say).
struct HeaderNameSet: Sendable {
    /// The names' bytes, lower-cased, grouped by length.
    private let byLength: [Int: [[UInt8]]]

    init(_ lowercased: Set<String>) {
        self.byLength = Dictionary(grouping: lowercased.map { Array($0.utf8) }, by: \.count)
    }

    /// Whether `name` is in the set, ASCII letters compared without regard to case.
    func contains(_ name: String) -> Bool {
        var name = name
        return name.withUTF8 { bytes in
            guard let candidates = self.byLength[bytes.count] else { return false }
            return candidates.contains { candidate in
                for index in 0..<bytes.count where Self.lower(bytes[index]) != candidate[index] {
                    return false
                }
                return true
            }
        }
    }

    private static func lower(_ byte: UInt8) -> UInt8 {
        (byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z")) ? byte | 0x20 : byte
    }
}
