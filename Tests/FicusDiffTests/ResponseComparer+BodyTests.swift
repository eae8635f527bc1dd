import Testing

@testable import FicusDiff

@Suite("Body comparison: encodings, text, binary, truncation")
struct ResponseComparerBodyTests {
    private let plainAmountNumber = Array(#"{"amount":100,"items":[1,2]}"#.utf8)

    @Test func gzipBodyEqualsTheSamePlainBody() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(
                DiffFixtures.gzipAmountNumber,
                contentType: "application/json",
                contentEncoding: "gzip"
            ),
            shadow: DiffFixtures.message(self.plainAmountNumber, contentType: "application/json"),
            options: CompareOptions(ignoredPaths: ["header:content-encoding"])
        )
        #expect(comparison.identical)
        #expect(comparison.bodyKind == .json)
    }

    @Test func gzipBodiesAreDiffedStructurally() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(
                DiffFixtures.gzipAmountNumber,
                contentType: "application/json",
                contentEncoding: "gzip"
            ),
            shadow: DiffFixtures.message(
                DiffFixtures.gzipAmountString,
                contentType: "application/json",
                contentEncoding: "x-gzip"
            ),
            options: CompareOptions(ignoredPaths: ["header:content-encoding"])
        )
        #expect(
            comparison.differences == [
                Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: #""100""#)
            ]
        )
    }

    @Test(arguments: [DiffFixtures.zlibAmountNumber, DiffFixtures.rawDeflateAmountNumber])
    func deflateBodiesAreDecodedInEitherFormat(body: [UInt8]) {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(body, contentType: "application/json", contentEncoding: "deflate"),
            shadow: DiffFixtures.message(
                DiffFixtures.gzipAmountString,
                contentType: "application/json",
                contentEncoding: "gzip"
            ),
            options: CompareOptions(ignoredPaths: ["header:content-encoding"])
        )
        #expect(comparison.differences.map(\.path) == ["$.amount"])
    }

    @Test func contentEncodingDifferenceIsAHeaderDifferenceByDefault() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(
                DiffFixtures.gzipAmountNumber,
                contentType: "application/json",
                contentEncoding: "gzip"
            ),
            shadow: DiffFixtures.message(self.plainAmountNumber, contentType: "application/json"),
            options: CompareOptions()
        )
        #expect(comparison.differences == [Difference(path: "header:content-encoding", kind: .header, serving: "gzip")])
    }

    @Test(arguments: [
        ("cut off", Array(DiffFixtures.gzipAmountNumber.dropLast(5))),
        (
            "corrupt",
            DiffFixtures.gzipAmountNumber.enumerated().map { $0.offset == 20 ? $0.element ^ 0xFF : $0.element }
        ),
        (
            "wrong checksum",
            DiffFixtures.gzipAmountNumber.enumerated().map { $0.offset == 41 ? $0.element ^ 0x01 : $0.element }
        ),
        ("not gzip", Array("plain".utf8)),
    ])
    func undecodableBodiesAreComparedAsBytes(name: String, body: [UInt8]) {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(body, contentType: "application/json", contentEncoding: "gzip"),
            shadow: DiffFixtures.message(
                DiffFixtures.gzipAmountNumber,
                contentType: "application/json",
                contentEncoding: "gzip"
            ),
            options: CompareOptions()
        )
        #expect(comparison.bodyKind == .binary, "\(name)")
        #expect(comparison.differences.map(\.kind) == [.body], "\(name)")
        #expect(comparison.differences.first?.serving?.contains("not decoded") == true, "\(name)")
    }

    @Test func identicalUndecodableBodiesAreEqual() {
        let body = Array("plain".utf8)
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(body, contentEncoding: "br"),
            shadow: DiffFixtures.message(body, contentEncoding: "br"),
            options: CompareOptions()
        )
        #expect(comparison.identical)
    }

    @Test func decodingStopsAtTheSizeBound() {
        let bomb = DiffFixtures.message(DiffFixtures.gzipHundredThousandZeros, contentEncoding: "gzip")
        let plain = DiffFixtures.message([UInt8](repeating: UInt8(ascii: "0"), count: 100_000))
        let options = CompareOptions(ignoredPaths: ["header:content-encoding"])
        #expect(ResponseComparer.compare(serving: bomb, shadow: plain, options: options).identical)
        var bounded = options
        bounded.maxDecodedBodyBytes = 50_000
        let comparison = ResponseComparer.compare(serving: bomb, shadow: plain, options: bounded)
        #expect(comparison.differences.map(\.kind) == [.body])
        #expect(comparison.differences.first?.serving?.contains("not decoded") == true)
    }

    @Test func textBodiesGetALineSummary() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(Array("a\nb\nc\nd\n".utf8), contentType: "text/plain"),
            shadow: DiffFixtures.message(Array("a\nB\nc\nd\ne\nf\n".utf8), contentType: "text/plain"),
            options: CompareOptions()
        )
        #expect(comparison.bodyKind == .text)
        #expect(comparison.textSummary == "+3 -1 lines")
        #expect(
            comparison.differences == [Difference(path: "$", kind: .body, serving: "line 2: b", shadow: "line 2: B")]
        )
    }

    @Test(
        arguments: [
            ("a\nb\n", "a\nb\n", nil),
            ("a\nb\n", "a\nb", "+0 -0 lines (final newline differs)"),
            ("", "x\ny\n", "+2 -0 lines"),
            ("x\ny\nz", "z\nx\ny", "+1 -1 lines"),
            ("<html>\r\n", "<html>\n", "+1 -1 lines"),
        ] as [(String, String, String?)]
    )
    func lineSummaries(serving: String, shadow: String, summary: String?) {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(Array(serving.utf8), contentType: "text/html"),
            shadow: DiffFixtures.message(Array(shadow.utf8), contentType: "text/html"),
            options: CompareOptions()
        )
        #expect(comparison.textSummary == summary)
        #expect(comparison.identical == (summary == nil))
    }

    @Test func largeUnrelatedTextsFallBackToAnApproximateCount() {
        let serving = (0..<30_000).map { "left \($0)" }.joined(separator: "\n")
        let shadow = (0..<30_000).map { "right \($0)" }.joined(separator: "\n")
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(Array(serving.utf8), contentType: "text/plain"),
            shadow: DiffFixtures.message(Array(shadow.utf8), contentType: "text/plain"),
            options: CompareOptions()
        )
        #expect(comparison.textSummary == "+30000 -30000 lines (approximate)")
    }

    @Test func jsonThatBecameAnHTMLPageIsComparedAsText() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"ok":true}"#),
            shadow: DiffFixtures.message(Array("<html>error</html>".utf8), contentType: "application/json"),
            options: CompareOptions()
        )
        #expect(comparison.bodyKind == .text)
        #expect(comparison.textSummary == "+1 -1 lines")
    }

    @Test func unlabelledJSONIsRecognisedByItsBytes() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.message(Array(#"{"a":1}"#.utf8)),
            shadow: DiffFixtures.message(Array(#" {"a":1.0}"#.utf8), contentType: "text/plain"),
            options: CompareOptions(ignoredPaths: ["header:content-type"])
        )
        #expect(comparison.identical)
        #expect(comparison.bodyKind == .json)
    }

    @Test func binaryBodiesCompareByBytes() {
        let png: [UInt8] = [0x89, 0x50, 0x4E, 0x47, 0xFF, 0x00]
        let same = ResponseComparer.compare(
            serving: DiffFixtures.message(png, contentType: "image/png"),
            shadow: DiffFixtures.message(png, contentType: "image/png"),
            options: CompareOptions()
        )
        #expect(same.identical)
        #expect(same.bodyKind == .binary)
        let different = ResponseComparer.compare(
            serving: DiffFixtures.message(png, contentType: "image/png"),
            shadow: DiffFixtures.message(png + [0], contentType: "image/png"),
            options: CompareOptions()
        )
        #expect(different.differences.map(\.kind) == [.body])
        #expect(different.differences.first?.serving?.hasPrefix("6 bytes, fnv1a64 ") == true)
        #expect(different.differences.first?.shadow?.hasPrefix("7 bytes, fnv1a64 ") == true)
    }

    @Test func emptyBodiesAreEmpty() {
        let comparison = ResponseComparer.compare(
            serving: CapturedMessage(status: 204),
            shadow: CapturedMessage(status: 204),
            options: CompareOptions()
        )
        #expect(comparison.identical)
        #expect(comparison.bodyKind == .empty)
    }

    @Test func truncatedBodiesAreEqualExactlyWhenLengthAndHashAre() {
        let prefix = Array(#"{"a":[1,2"#.utf8)
        func truncated(length: Int, hash: UInt64, body: [UInt8] = prefix) -> CapturedMessage {
            CapturedMessage(
                status: 200,
                headers: [("Content-Type", "application/json")],
                body: body,
                bodyLength: length,
                truncated: true,
                bodyHash: hash
            )
        }
        let same = ResponseComparer.compare(
            serving: truncated(length: 2_000_000, hash: 42),
            shadow: truncated(length: 2_000_000, hash: 42, body: Array("different prefix".utf8)),
            options: CompareOptions()
        )
        #expect(same.identical)
        #expect(same.bodyKind == .json)

        let otherHash = ResponseComparer.compare(
            serving: truncated(length: 2_000_000, hash: 42),
            shadow: truncated(length: 2_000_000, hash: 43),
            options: CompareOptions()
        )
        #expect(
            otherHash.differences == [
                Difference(
                    path: "$",
                    kind: .body,
                    serving: "2000000 bytes (truncated), fnv1a64 000000000000002a",
                    shadow: "2000000 bytes (truncated), fnv1a64 000000000000002b"
                )
            ]
        )

        let oneSide = ResponseComparer.compare(
            serving: truncated(length: 2_000_000, hash: 42),
            shadow: DiffFixtures.json(#"{"a":[1,2]}"#),
            options: CompareOptions()
        )
        #expect(oneSide.differences.map(\.kind) == [.body])
        #expect(oneSide.differences.first?.shadow?.hasPrefix("11 bytes, fnv1a64") == true)
    }

    @Test func bodiesAreNotComparedWhenTurnedOff() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"a":1}"#),
            shadow: DiffFixtures.json(#"{"a":2}"#),
            options: CompareOptions(compareBody: false)
        )
        #expect(comparison.identical)
        #expect(comparison.bodyKind == .empty)
    }
}
