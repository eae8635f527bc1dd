import Testing

@testable import FicusDiff

@Suite("Redaction")
struct RedactionTests {
    private let options = CompareOptions(sensitivePaths: ["$.user.ssn", "$.cards[*].number", "$..password"])

    @Test func sensitiveHeadersAreMaskedWhateverTheirCase() {
        let headers = [
            ("Authorization", "Bearer secret"), ("COOKIE", "a=b"), ("set-cookie", "s=1"),
            ("Proxy-Authorization", "Basic x"), ("Content-Type", "application/json"),
        ]
        #expect(
            Redaction.redactHeaders(headers, options: CompareOptions()).map { "\($0.0)=\($0.1)" } == [
                "Authorization=[redacted]", "COOKIE=[redacted]", "set-cookie=[redacted]",
                "Proxy-Authorization=[redacted]", "Content-Type=application/json",
            ]
        )
    }

    @Test func sensitiveJSONPathsAreReplacedByTheMarker() {
        let text =
            #"{"user":{"name":"Ann","ssn":"123-45-6789"},"cards":[{"number":"4111","exp":"12/30"}],"#
            + #""login":{"password":"hunter2"}}"#
        let body = Array(text.utf8)
        let redacted = Redaction.redactBody(body, contentType: "application/json", options: self.options)
        #expect(
            String(decoding: redacted, as: UTF8.self)
                == #"{"user":{"name":"Ann","ssn":"[redacted]"},"cards":[{"number":"[redacted]","exp":"12/30"}],"#
                + #""login":{"password":"[redacted]"}}"#
        )
    }

    @Test func bodiesWithoutSensitiveMatchesAreReturnedUnchanged() {
        let body = Array("{ \"user\" : { \"name\": \"Ann\" } }".utf8)
        #expect(Redaction.redactBody(body, contentType: "application/json", options: self.options) == body)
        let text = Array("ssn=123".utf8)
        #expect(Redaction.redactBody(text, contentType: "text/plain", options: self.options) == text)
        #expect(Redaction.redactBody(body, contentType: "application/json", options: CompareOptions()) == body)
    }

    @Test func unparseableJSONIsReplacedWholeWhileSensitivePathsAreConfigured() {
        let truncated = Array(#"{"user":{"ssn":"123-4"#.utf8)
        #expect(
            Redaction.redactBody(truncated, contentType: "application/json", options: self.options)
                == Array("[redacted]".utf8)
        )
        #expect(
            Redaction.redactBody(truncated, contentType: "application/json", options: CompareOptions()) == truncated
        )
    }

    @Test func comparisonStillSeesSensitiveDifferencesButRendersTheMarker() {
        let differences = DiffFixtures.jsonDifferences(
            #"{"user":{"ssn":"111","name":"Ann"},"cards":[{"number":"1"}]}"#,
            #"{"user":{"ssn":"222","name":"Bob"},"cards":[{"number":2}]}"#,
            options: self.options
        )
        #expect(
            differences == [
                Difference(path: "$.user.ssn", kind: .valueChanged, serving: "[redacted]", shadow: "[redacted]"),
                Difference(path: "$.user.name", kind: .valueChanged, serving: #""Ann""#, shadow: #""Bob""#),
                Difference(path: "$.cards[0].number", kind: .typeChanged, serving: "[redacted]", shadow: "[redacted]"),
            ]
        )
    }

    @Test func renderedContainersHaveTheirSensitivePartsMasked() {
        let differences = DiffFixtures.jsonDifferences(
            #"{"a":1}"#,
            #"{"a":1,"user":{"ssn":"999","name":"Bob"},"login":{"password":"x"}}"#,
            options: self.options
        )
        #expect(
            differences == [
                Difference(path: "$.user", kind: .extra, serving: nil, shadow: #"{"ssn":"[redacted]","name":"Bob"}"#),
                Difference(path: "$.login", kind: .extra, serving: nil, shadow: #"{"password":"[redacted]"}"#),
            ]
        )
    }

    @Test func everythingBelowASensitivePathIsMasked() {
        let options = CompareOptions(sensitivePaths: ["$.secret"])
        let differences = DiffFixtures.jsonDifferences(
            #"{"secret":{"a":[1]}}"#,
            #"{"secret":{"a":[2],"b":1}}"#,
            options: options
        )
        #expect(
            differences == [
                Difference(path: "$.secret.a[0]", kind: .valueChanged, serving: "[redacted]", shadow: "[redacted]"),
                Difference(path: "$.secret.b", kind: .extra, serving: nil, shadow: "[redacted]"),
            ]
        )
    }

    @Test func customMarker() {
        let options = CompareOptions(sensitivePaths: ["$.k"], redactionMarker: "***")
        #expect(DiffFixtures.jsonDifferences(#"{"k":1}"#, #"{"k":2}"#, options: options).first?.serving == "***")
    }

    @Test func redactingAMessageDecodesACompressedBodyFirst() {
        let options = CompareOptions(sensitivePaths: ["$.amount"])
        let message = CapturedMessage(
            status: 200,
            headers: [("Content-Type", "application/json"), ("Content-Encoding", "gzip"), ("Cookie", "a=b")],
            body: DiffFixtures.gzipAmountNumber
        )
        let redacted = Redaction.redact(message, options: options)
        #expect(String(decoding: redacted.body, as: UTF8.self) == #"{"amount":"[redacted]","items":[1,2]}"#)
        #expect(redacted.headers.map(\.0) == ["Content-Type", "Cookie"])
        #expect(redacted.headers.last?.1 == "[redacted]")
        #expect(redacted.bodyHash == message.bodyHash)
        #expect(redacted.bodyLength == message.bodyLength)

        let untouched = Redaction.redact(message, options: CompareOptions(sensitivePaths: ["$.other"]))
        #expect(untouched.body == DiffFixtures.gzipAmountNumber)
        #expect(untouched.headers.count == 3)
    }

    /// Common secret headers are redacted by default, not only the standard credentials.
    @Test func commonSecretHeadersAreRedactedByDefault() {
        let headers = [("X-Api-Key", "k-123"), ("x-auth-token", "t-456"), ("X-Access-Token", "a"), ("X-Other", "kept")]
        #expect(
            Redaction.redactHeaders(headers, options: CompareOptions()).map(\.1)
                == ["[redacted]", "[redacted]", "[redacted]", "kept"]
        )
    }

    /// Query values are redacted by default, names kept; the path is untouched; the option turns it off.
    @Test func queryValuesAreRedactedByDefault() {
        let options = CompareOptions()
        #expect(
            Redaction.redactTarget("/orders/7?token=abc&page=2&flag", options: options)
                == "/orders/7?token=[redacted]&page=[redacted]&flag=[redacted]"
        )
        #expect(Redaction.redactTarget("/orders/7", options: options) == "/orders/7")
        #expect(Redaction.redactTarget("/orders/7?", options: options) == "/orders/7?")
        #expect(Redaction.redactTarget("/a?x=1&&y=2", options: options) == "/a?x=[redacted]&&y=[redacted]")
        var keep = CompareOptions()
        keep.redactQuery = false
        #expect(Redaction.redactTarget("/orders/7?token=abc", options: keep) == "/orders/7?token=abc")
    }
}
