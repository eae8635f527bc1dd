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
