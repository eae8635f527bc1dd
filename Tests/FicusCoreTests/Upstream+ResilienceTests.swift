import Foundation
import Testing

@testable import FicusCore

/// The upstream model's resilience settings (issue 17 items 2, 4, 7): weights in the address text, time spans,
/// Codable with snake_case keys, old snapshots unchanged, and validation messages.
@Suite("Upstream resilience settings")
struct UpstreamResilienceModelTests {
    @Test(arguments: [
        ("127.0.0.1:8080 weight=3", "127.0.0.1", 8080, 3),
        ("[::1]:80 weight=1", "::1", 80, 1),
        ("orders.internal:1 weight=1000", "orders.internal", 1, 1000),
    ])
    func addressesTakeAWeight(text: String, host: String, port: Int, weight: Int) throws {
        let endpoint = try #require(Endpoint(parsing: text))
        #expect(endpoint == Endpoint(host: host, port: port, weight: weight))
        #expect(endpoint.description == text)
        #expect(endpoint.address == text.split(separator: " ").first.map(String.init))
    }

    @Test(arguments: ["a:1 weight=", "a:1 weight=x", "a:1 weight=-1", "a:1 w=2", "a:1 weight=2 weight=3"])
    func malformedWeightsAreRefused(text: String) {
        #expect(Endpoint(parsing: text) == nil)
    }

    @Test func timeSpansParseAndPrintTheirUnits() {
        #expect(TimeSpan(parsing: "250ms")?.milliseconds == 250)
        #expect(TimeSpan(parsing: "30s")?.milliseconds == 30_000)
        #expect(TimeSpan(parsing: "5m")?.milliseconds == 300_000)
        #expect(TimeSpan(parsing: "1h")?.milliseconds == 3_600_000)
        #expect(TimeSpan(parsing: "15")?.milliseconds == 15_000, "a bare number is seconds, as in every duration")
        for bad in ["", "s", "1.5s", "-1s", "10 s", "9999999999s", "1d"] {
            #expect(TimeSpan(parsing: bad) == nil, "\(bad)")
        }
        #expect(TimeSpan(milliseconds: 300_000).description == "5m")
        #expect(TimeSpan(milliseconds: 1500).description == "1500ms")
        #expect(TimeSpan(milliseconds: 0).description == "0s")
    }

    @Test func anOldSnapshotDecodesWithNoneAndEncodesAsBefore() throws {
        let old = #"{"addresses":["127.0.0.1:1"],"name":"legacy"}"#
        let upstream = try JSONDecoder().decode(Upstream.self, from: Data(old.utf8))
        #expect(upstream.outlier == nil && upstream.balance == nil && upstream.limits == nil)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(String(decoding: try encoder.encode(upstream), as: UTF8.self) == old)
    }

    @Test func settingsRoundTripWithSnakeCaseKeys() throws {
        var upstream = Upstream(name: "orders", addresses: [Endpoint(host: "10.0.0.1", port: 80, weight: 2)])
        upstream.outlier = OutlierPolicy(consecutive5xx: 3, baseEjectionTime: .seconds(10), maxEjectionPercent: 50)
        upstream.balance = .leastRequest
        upstream.limits = UpstreamLimits(maxPending: 0, maxRetries: 5)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let text = String(decoding: try encoder.encode(upstream), as: UTF8.self)
        #expect(text.contains(#""outlier":{"base_ejection_time":"10s","consecutive_5xx":3,"max_ejection_percent":50}"#))
        #expect(text.contains(#""balance":"least_request""#))
        #expect(text.contains(#""limits":{"max_pending":0,"max_retries":5}"#))
        #expect(text.contains(#""10.0.0.1:80 weight=2""#))
        #expect(try JSONDecoder().decode(Upstream.self, from: Data(text.utf8)) == upstream)
        for (json, enabled) in [(#""off""#, false), (#""on""#, true), ("false", false), ("{}", true)] {
            let policy = try JSONDecoder().decode(OutlierPolicy.self, from: Data(json.utf8))
            #expect(policy.isEnabled == enabled, "\(json)")
        }
    }

    @Test func validationNamesTheUpstreamAndTheField() {
        var upstream = Upstream(name: "orders", addresses: [Endpoint(host: "10.0.0.1", port: 80, weight: 0)])
        upstream.outlier = OutlierPolicy(
            consecutive5xx: -1, baseEjectionTime: .seconds(600), maxEjectionTime: .seconds(60), maxEjectionPercent: 101)
        upstream.limits = UpstreamLimits(maxConnections: 0, maxRetries: -1)
        let configuration = Configuration(upstreams: [upstream], routes: [])
        let messages = configuration.validate().map(\.description)
        #expect(messages.contains("upstream 'orders': addresses: weight 0 of '10.0.0.1:80' is outside 1–1000"))
        #expect(messages.contains("upstream 'orders': outlier consecutive_5xx: -1 is outside 0–1000 (0 turns this trigger off)"))
        #expect(messages.contains("upstream 'orders': outlier base_ejection_time: 10m is longer than max_ejection_time 1m"))
        #expect(messages.contains("upstream 'orders': outlier max_ejection_percent: 101 is outside 0–100"))
        #expect(messages.contains("upstream 'orders': limits max_connections: 0 is outside 1–1000000"))
        #expect(messages.contains("upstream 'orders': limits max_retries: -1 is outside 0–1000000"))
    }
}
