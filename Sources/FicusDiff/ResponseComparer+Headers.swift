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

    /// Whether two header lists are the same line for line once the lines of ignored headers are left out of both
    /// (a `Date` that differs, a `Content-Length` on one side and `Transfer-Encoding` on the other) — the common
    /// case, decided without normalising either list.
    ///
    /// When the lists without ignored lines are equal line for line, every name's joined value is equal too, so the
    /// full comparison would find nothing. Lines that are the same on both sides are passed over without asking
    /// whether they are ignored. False whenever this check cannot tell (a name in another case or order, a value
    /// that differs, even by whitespace only): the full comparison then decides.
    static func onlyIgnoredValuesDiffer(
        _ serving: [(String, String)],
        _ shadow: [(String, String)],
        _ options: CompareOptions
    ) -> Bool {
        let ignored = options.derived.ignoredHeaderNames
        var servingIndex = 0
        var shadowIndex = 0
        while servingIndex < serving.count, shadowIndex < shadow.count {
            let servingLine = serving[servingIndex]
            let shadowLine = shadow[shadowIndex]
            if servingLine.0 == shadowLine.0, servingLine.1 == shadowLine.1 {
                servingIndex += 1
                shadowIndex += 1
            } else if ignored.contains(servingLine.0) {
                servingIndex += 1
            } else if ignored.contains(shadowLine.0) {
                shadowIndex += 1
            } else {
                return false
            }
        }
        return serving[servingIndex...].allSatisfy { ignored.contains($0.0) }
            && shadow[shadowIndex...].allSatisfy { ignored.contains($0.0) }
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
