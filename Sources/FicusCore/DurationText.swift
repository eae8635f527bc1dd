/// Durations as rules files and the CLI write them: `25ms`, `2s`, `1m`, `1h`, or a bare whole number of seconds.
///
/// Whole numbers only: a duration is a configuration value, never a computed one. The model keeps the text as given
/// (so an export shows what was written) and validation refuses what does not parse, naming the field.
public enum DurationText {
    /// The longest duration a field may name: 24 hours, as route timeouts.
    public static let maxMilliseconds = RouteTimeouts.maxMilliseconds

    /// Milliseconds in `text`, or nil when it is malformed, not positive, or over 24 h.
    public static func milliseconds(_ text: String) -> Int? {
        guard let total = self.parse(text), total >= 1, total <= Self.maxMilliseconds else { return nil }
        return total
    }

    /// Milliseconds in `text` (`250ms`, `30s`, `5m`, `1h`, or a bare number of seconds), zero included; nil when
    /// malformed. At most nine digits, so that the multiplication by the unit never overflows.
    public static func parse(_ text: String) -> Int? {
        let units: [(String, Int)] = [("ms", 1), ("s", 1000), ("m", 60_000), ("h", 3_600_000)]
        var digits = Substring(text)
        var scale = 1000
        for (suffix, factor) in units where text.hasSuffix(suffix) {
            digits = text.dropLast(suffix.count)
            scale = factor
            break
        }
        guard !digits.isEmpty, digits.utf8.count <= 9, digits.utf8.allSatisfy({ $0 >= 0x30 && $0 <= 0x39 }),
            let value = Int(digits)
        else {
            return nil
        }
        return value * scale  // at most 999,999,999 × 3,600,000: far inside Int64
    }
}

extension KeyedDecodingContainer {
    /// A duration field written as text (`2s`) or as a whole number of seconds (`2`, read as `2s`), or nil when
    /// absent; validation checks the text.
    func decodeDurationIfPresent(forKey key: Key) throws -> String? {
        if let seconds = try? self.decodeIfPresent(Int.self, forKey: key) {
            return "\(seconds)s"
        }
        return try self.decodeIfPresent(String.self, forKey: key)
    }
}
