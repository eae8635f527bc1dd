extension ResponseComparer {
    /// Header differences, by lower-cased name, in the serving side's order and then the shadow's.
    ///
    /// Names are case-insensitive in HTTP and a header split over several lines means the same as one joined with
    /// commas, so both are normalised before comparing; values are compared exactly after trimming.
    static func compareHeaders(
        serving: CapturedMessage,
        shadow: CapturedMessage,
        options: CompareOptions
    ) -> [Difference] {
        if Self.onlyIgnoredValuesDiffer(serving.headers, shadow.headers, options) {
            return []
        }
        let ignored = options.effectiveIgnoredHeaders
        let sensitive = options.effectiveSensitiveHeaders
        let servingValues = ResponseComparer.joinedHeaders(serving.headers)
        let shadowValues = ResponseComparer.joinedHeaders(shadow.headers)
        var differences: [Difference] = []
        var seen = Set<String>()
        let names = servingValues.names + shadowValues.names
        for name in names where !ignored.contains(name) && seen.insert(name).inserted {
            let servingValue = servingValues.values[name]
            let shadowValue = shadowValues.values[name]
            guard servingValue != shadowValue else {
                continue
            }
            differences.append(
                Difference(
                    path: "header:" + name,
                    kind: .header,
                    serving: ResponseComparer.renderHeader(servingValue, sensitive: sensitive.contains(name), options),
                    shadow: ResponseComparer.renderHeader(shadowValue, sensitive: sensitive.contains(name), options)
                )
            )
        }
        return differences
    }

    /// Whether two header lists with the same names in the same order differ at most in the values of ignored
    /// headers (a `Date`, say) — the common case, decided without normalising either list.
    ///
    /// With the same names in the same order, each name's joined value can differ only where a line's value does, so
    /// only those lines need looking at. False whenever the fast check cannot tell (other names or order, or a
    /// differing value of a header that is not ignored, even by whitespace only): the full comparison then decides.
    static func onlyIgnoredValuesDiffer(
        _ serving: [(String, String)],
        _ shadow: [(String, String)],
        _ options: CompareOptions
    ) -> Bool {
        guard serving.count == shadow.count else { return false }
        var ignored: Set<String>?
        for (servingLine, shadowLine) in zip(serving, shadow) {
            guard servingLine.0 == shadowLine.0 else { return false }
            guard servingLine.1 != shadowLine.1 else { continue }
            let names = ignored ?? options.effectiveIgnoredHeaders
            ignored = names
            guard names.contains(servingLine.0.lowercased()) else { return false }
        }
        return true
    }

    /// Values by lower-cased name, repeated headers joined with ", ", and the names in first-seen order.
    static func joinedHeaders(_ headers: [(String, String)]) -> (names: [String], values: [String: String]) {
        var names: [String] = []
        var values: [String: String] = [:]
        for (name, value) in headers {
            let lowered = name.lowercased()
            let trimmed = value.trimmingHTTPWhitespace()
            if let existing = values[lowered] {
                values[lowered] = existing + ", " + trimmed
            } else {
                values[lowered] = trimmed
                names.append(lowered)
            }
        }
        return (names, values)
    }

    private static func renderHeader(_ value: String?, sensitive: Bool, _ options: CompareOptions) -> String? {
        guard let value else {
            return nil
        }
        return sensitive ? options.redactionMarker : RenderedText.cut(value)
    }
}
