import FicusDiff
import Logging
import Testing

@testable import FicusProxy

/// Discards records; these tests call `record(for:)` directly.
private struct DiscardingSink: ShadowRecordSink {
    func write(_ records: [ShadowRecord]) async throws {}
}

@Suite("Shadow comparer records")
struct ShadowComparerTests {
    let comparer = ShadowComparer(sink: DiscardingSink(), logger: Logger(label: "test"), metrics: nil)

    func observation(shadowBody: String, shadowError: String? = nil) -> ShadowObservation {
        let json = [("Content-Type", "application/json")]
        return ShadowObservation(
            timestamp: 1_700_000_000_000_000,
            requestID: "9f86d081884c7d65-1",
            route: "orders",
            method: "GET",
            target: "/orders/7?x=1",
            requestHeaders: [("Host", "shop"), ("Authorization", "Bearer secret")],
            requestBody: [],
            servingUpstream: "legacy",
            serving: CapturedMessage(status: 200, headers: json, body: Array(#"{"id":7}"#.utf8), latencyMicroseconds: 90),
            shadowUpstream: "orders-v2",
            shadow: shadowError == nil
                ? CapturedMessage(status: 200, headers: json, body: Array(shadowBody.utf8), latencyMicroseconds: 200_000)
                : nil,
            shadowError: shadowError,
            secondUpstream: nil,
            second: nil
        )
    }

    @Test("an identical comparison is counted without headers or bodies, with what the aggregates need")
    func identicalRecordIsLight() {
        let record = self.comparer.record(for: self.observation(shadowBody: #"{"id":7}"#))
        #expect(!record.isSample)
        #expect(record.differences.isEmpty)
        #expect(record.endpoint == "GET /orders/{id}")
        #expect(record.servingStatus == 200 && record.shadowStatus == 200)
        #expect(record.servingLatencyMicroseconds == 90 && record.shadowLatencyMicroseconds == 200_000)
        #expect(record.requestHeaders.isEmpty && record.servingHeaders.isEmpty && record.shadowHeaders.isEmpty)
        #expect(record.servingBody.isEmpty && record.shadowBody.isEmpty)
    }

    @Test("a differing comparison keeps both answers and the request, redacted")
    func differingRecordIsWhole() {
        let record = self.comparer.record(for: self.observation(shadowBody: #"{"id":"7"}"#))
        #expect(record.isSample)
        #expect(record.differences.map(\.kind) == [.typeChanged])
        #expect(String(decoding: record.servingBody, as: UTF8.self) == #"{"id":7}"#)
        #expect(String(decoding: record.shadowBody, as: UTF8.self) == #"{"id":"7"}"#)
        #expect(record.servingHeaders.map(\.name) == ["Content-Type"])
        let authorization = record.requestHeaders.first { $0.name == "Authorization" }
        #expect(authorization != nil && authorization?.value != "Bearer secret")
    }

    @Test("a failed shadow is a sample and keeps the serving answer")
    func failedShadowIsWhole() {
        let record = self.comparer.record(for: self.observation(shadowBody: "", shadowError: "connection refused"))
        #expect(record.isSample)
        #expect(record.shadowError == "connection refused")
        #expect(String(decoding: record.servingBody, as: UTF8.self) == #"{"id":7}"#)
    }
}
