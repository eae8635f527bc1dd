import Testing

@testable import FicusDiff

@Suite("Status and header comparison")
struct ResponseComparerHeaderTests {
    private func compare(
        _ serving: [(String, String)],
        _ shadow: [(String, String)],
        options: CompareOptions = CompareOptions()
    ) -> [Difference] {
        ResponseComparer.compare(
            serving: CapturedMessage(status: 200, headers: serving),
            shadow: CapturedMessage(status: 200, headers: shadow),
            options: options
        ).differences
    }

    /// A status difference is the one difference of the pair: a 404 beside a 200 is not also every body field and
    /// header that follows from it (issue 15).
    @Test func aStatusDifferenceIsTheOneDifference() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"id":1,"items":[1,2],"total":3}"#, status: 200),
            shadow: CapturedMessage(status: 404, headers: [("Content-Type", "text/html"), ("X-Other", "1")]),
            options: CompareOptions()
        )
        #expect(comparison.differences == [Difference(path: "status", kind: .status, serving: "200", shadow: "404")])
        // With the status ignored, the bodies and headers are compared as usual.
        var ignoring = CompareOptions()
        ignoring.ignoredPaths = ["status"]
        let bodies = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"a":1}"#, status: 200),
            shadow: DiffFixtures.json(#"{"a":2}"#, status: 500),
            options: ignoring
        )
        #expect(bodies.differences.map(\.kind) == [.valueChanged])
    }

    @Test func defaultIgnoreListLeavesVolatileHeadersOut() {
        let serving = [
            ("Date", "Mon, 01 Jan 2024 00:00:00 GMT"), ("Server", "legacy"), ("Age", "1"), ("ETag", "\"a\""),
            ("Last-Modified", "x"), ("Set-Cookie", "s=1"), ("X-Request-Id", "1"), ("Via", "1.1 a"),
            ("Content-Length", "10"), ("Transfer-Encoding", "chunked"), ("Connection", "keep-alive"),
            ("Keep-Alive", "timeout=5"),
        ]
        let shadow = [
            ("date", "Tue, 02 Jan 2024 00:00:00 GMT"), ("server", "new"), ("age", "2"), ("etag", "\"b\""),
            ("last-modified", "y"), ("set-cookie", "s=2"), ("x-request-id", "2"), ("via", "1.1 b"),
            ("content-length", "12"), ("connection", "close"),
        ]
        #expect(self.compare(serving, shadow).isEmpty)
    }

    @Test("lists with the same names in order: only ignored values differing is no difference, anything else is")
    func sameOrderFastPathAgreesWithTheFullComparison() {
        let serving = [("Date", "Mon"), ("Content-Type", "application/json"), ("Vary", "Accept"), ("Vary", "Origin")]
        var dateOnly = serving
        dateOnly[0].1 = "Tue"
        #expect(ResponseComparer.onlyIgnoredValuesDiffer(serving, dateOnly, CompareOptions()))
        #expect(self.compare(serving, dateOnly).isEmpty)

        var varyChanged = dateOnly
        varyChanged[3].1 = "Cookie"
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, varyChanged, CompareOptions()))
        #expect(
            self.compare(serving, varyChanged) == [
                Difference(path: "header:vary", kind: .header, serving: "Accept, Origin", shadow: "Accept, Cookie")
            ]
        )

        // Whitespace only: the fast check cannot tell, the full comparison trims and finds nothing.
        var padded = serving
        padded[1].1 = " application/json "
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, padded, CompareOptions()))
        #expect(self.compare(serving, padded).isEmpty)

        // A header ignored by path (`header:NAME`) counts as ignored on the fast path too.
        var options = CompareOptions()
        options.ignoredPaths = ["header:Vary"]
        #expect(ResponseComparer.onlyIgnoredValuesDiffer(serving, varyChanged, options))
        #expect(self.compare(serving, varyChanged, options: options).isEmpty)
    }

    @Test("lines of ignored headers on one side only (framing, a Date) are passed over; anything else is not")
    func fastPathSkipsIgnoredLinesOnEitherSide() {
        // nginx's `return` answer beside its echo module's: Content-Length on one side, chunked on the other.
        let serving = [
            ("Server", "nginx"), ("Date", "Mon"), ("Content-Type", "application/json"), ("Content-Length", "28"),
            ("Connection", "keep-alive"),
        ]
        let shadow = [
            ("Server", "nginx"), ("Date", "Tue"), ("Content-Type", "application/json"),
            ("Transfer-Encoding", "chunked"), ("Connection", "keep-alive"),
        ]
        #expect(ResponseComparer.onlyIgnoredValuesDiffer(serving, shadow, CompareOptions()))
        #expect(self.compare(serving, shadow).isEmpty)
        // Ignored lines in another order, or only on one side at the end.
        let moved = [("Date", "Wed"), ("Content-Type", "application/json"), ("Server", "other"), ("ETag", "\"x\"")]
        #expect(ResponseComparer.onlyIgnoredValuesDiffer(serving, moved, CompareOptions()))
        #expect(self.compare(serving, moved).isEmpty)

        // An extra header that is not ignored, a missing one, or one in another case: the full comparison decides.
        let extra = shadow + [("X-Version", "2")]
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, extra, CompareOptions()))
        #expect(self.compare(serving, extra).map(\.path) == ["header:x-version"])
        let missing = shadow.filter { $0.0 != "Content-Type" }
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, missing, CompareOptions()))
        #expect(self.compare(serving, missing).map(\.path) == ["header:content-type"])
        let lowerCased = shadow.map { ($0.0.lowercased(), $0.1) }
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, lowerCased, CompareOptions()))
        #expect(self.compare(serving, lowerCased).isEmpty)

        // Content-Length is ignored only while bodies are compared (not for HEAD).
        var head = CompareOptions()
        head.compareBody = false
        #expect(!ResponseComparer.onlyIgnoredValuesDiffer(serving, shadow, head))
        #expect(self.compare(serving, shadow, options: head).map(\.path) == ["header:content-length"])
    }

    @Test func headerNameSetMatchesAnyCaseOfItsNames() {
        let names = HeaderNameSet(["transfer-encoding", "date", "x-ünicode"])
        #expect(names.contains("Transfer-Encoding"))
        #expect(names.contains("TRANSFER-ENCODING"))
        #expect(names.contains("date"))
        #expect(names.contains("x-ünicode"))
        #expect(!names.contains("Transfer-Encodinh"))
        #expect(!names.contains("dat"))
        #expect(!names.contains("dates"))
        #expect(!names.contains(""))
        #expect(!HeaderNameSet([]).contains("date"))
    }

    @Test("settings derived from the options follow every change to them")
    func derivedSettingsFollowChanges() {
        var options = CompareOptions()
        #expect(options.effectiveIgnoredHeaders.contains("content-length"))
        #expect(!options.ignoresStatus)
        options.ignoredPaths = ["status", "header:X-Trace", "$.meta.generatedAt"]
        #expect(options.ignoresStatus)
        #expect(options.effectiveIgnoredHeaders.contains("x-trace"))
        #expect(options.ignoredPathMatcher.patterns.map(\.text) == ["$.meta.generatedAt"])
        options.ignoredHeaders.insert("X-Build")
        #expect(options.effectiveIgnoredHeaders.contains("x-build"))
        options.sensitiveHeaders = ["X-Api-Key"]
        #expect(options.effectiveSensitiveHeaders == ["x-api-key"])
        options.sensitivePaths = ["$.card"]
        #expect(options.sensitivePathMatcher.patterns.count == 1)
        options.compareBody = false
        #expect(!options.effectiveIgnoredHeaders.contains("content-length"))
        // A copy changed later does not change the original.
        var copy = options
        copy.ignoredPaths = []
        #expect(options.ignoresStatus)
        #expect(!copy.ignoresStatus)
    }

    @Test func namesAreCaseInsensitiveAndValuesTrimmed() {
        #expect(self.compare([("Content-Type", "application/json")], [("content-TYPE", " application/json ")]).isEmpty)
    }

    @Test func repeatedHeadersAreJoined() {
        #expect(self.compare([("Vary", "Accept"), ("Vary", "Origin")], [("vary", "Accept, Origin")]).isEmpty)
        #expect(
            self.compare([("Vary", "Accept"), ("Vary", "Origin")], [("vary", "Origin, Accept")]) == [
                Difference(path: "header:vary", kind: .header, serving: "Accept, Origin", shadow: "Origin, Accept")
            ]
        )
    }

    @Test func changedMissingAndExtraHeaders() {
        let differences = self.compare(
            [("Content-Type", "application/json"), ("Cache-Control", "no-store")],
            [("Content-Type", "text/plain"), ("X-New", "1")]
        )
        #expect(
            differences == [
                Difference(
                    path: "header:content-type",
                    kind: .header,
                    serving: "application/json",
                    shadow: "text/plain"
                ),
                Difference(path: "header:cache-control", kind: .header, serving: "no-store", shadow: nil),
                Difference(path: "header:x-new", kind: .header, serving: nil, shadow: "1"),
            ]
        )
    }

    @Test func configuredIgnoredHeadersMatchAnyCase() {
        let options = CompareOptions(ignoredHeaders: CompareOptions.defaultIgnoredHeaders.union(["X-Trace"]))
        #expect(self.compare([("x-trace", "a")], [("X-TRACE", "b")], options: options).isEmpty)
        #expect(self.compare([("Date", "a")], [("Date", "b")], options: CompareOptions(ignoredHeaders: [])).count == 1)
    }

    @Test func contentLengthIsComparedOnlyWhenBodiesAreNot() {
        let serving = [("Content-Length", "10")]
        let shadow = [("Content-Length", "12")]
        #expect(self.compare(serving, shadow).isEmpty)
        #expect(
            self.compare(serving, shadow, options: CompareOptions(compareBody: false)) == [
                Difference(path: "header:content-length", kind: .header, serving: "10", shadow: "12")
            ]
        )
    }

    @Test func sensitiveHeadersDifferButRenderAsTheMarker() {
        let options = CompareOptions(ignoredHeaders: [], sensitiveHeaders: ["Authorization", "X-Api-Key"])
        let differences = self.compare(
            [("Authorization", "Bearer a"), ("X-API-KEY", "k1")],
            [("authorization", "Bearer b")],
            options: options
        )
        #expect(
            differences == [
                Difference(path: "header:authorization", kind: .header, serving: "[redacted]", shadow: "[redacted]"),
                Difference(path: "header:x-api-key", kind: .header, serving: "[redacted]", shadow: nil),
            ]
        )
    }

    @Test func capturedMessageEqualityComparesHeaderPairs() {
        let message = CapturedMessage(status: 200, headers: [("A", "1"), ("B", "2")], body: [1])
        #expect(message == CapturedMessage(status: 200, headers: [("A", "1"), ("B", "2")], body: [1]))
        #expect(message != CapturedMessage(status: 200, headers: [("B", "2"), ("A", "1")], body: [1]))
        #expect(message.bodyLength == 1)
        #expect(message.bodyHash == FNV1a64.hash([1]))
        #expect(message.headerValue("a") == "1")
    }
}
