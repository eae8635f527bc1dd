import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Prometheus
import Testing

@testable import FicusProxy

/// Rate limits (issue 17 item 6) through a real proxy over sockets: 429 with the draft's fields once a bucket is
/// empty, observe mode, keys per client address and per header, and a proxy's share of the fleet's limit.
@Suite("Rate limiting through a real proxy", .serialized)
struct ProxyRateLimitTests {
    struct Setup {
        var harness: ProxyHarness
        var upstream: TestUpstream
        var metrics: ProxyMetrics
        var registry: PrometheusCollectorRegistry

        func stop() async {
            await self.harness.stop()
            try? await self.upstream.shutdown()
        }

        /// The value of `ficus_rate_limited_total{route="orders",mode=MODE}`, 0 when absent.
        func limited(_ mode: String) -> Int {
            let text = String(decoding: self.registry.emitToBuffer(), as: UTF8.self)
            let prefix = "ficus_rate_limited_total{route=\"orders\",mode=\"\(mode)\"} "
            guard let line = text.split(separator: "\n").first(where: { $0.hasPrefix(prefix) }) else { return 0 }
            return Int(line.dropFirst(prefix.count)) ?? -1
        }
    }

    /// An upstream answering `ok` behind route `orders` (every path) with `limit`.
    static func start(
        _ limit: RateLimit,
        configure: @escaping (inout ProxyConfiguration) -> Void = { _ in },
        accessLog: AccessLogSink? = nil
    ) async throws -> Setup {
        let upstream = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("ok".utf8)), group: testGroup)
        let configuration = Configuration(
            upstreams: [Upstream(name: "backend", addresses: [Endpoint(parsing: upstream.address)!])],
            routes: [Route(name: "orders", path: "/", legacy: "backend", rateLimit: limit)]
        )
        let registry = PrometheusCollectorRegistry()
        let metrics = ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry))
        let harness = try await ProxyHarness.start(
            configuration: configuration, configure: configure, metrics: metrics, accessLogSink: accessLog)
        return Setup(harness: harness, upstream: upstream, metrics: metrics, registry: registry)
    }

    /// Runs `body` with a started setup and stops it whatever happens.
    static func with(
        _ limit: RateLimit,
        configure: @escaping (inout ProxyConfiguration) -> Void = { _ in },
        accessLog: AccessLogSink? = nil,
        _ body: (Setup) async throws -> Void
    ) async throws {
        let setup = try await Self.start(limit, configure: configure, accessLog: accessLog)
        do {
            try await body(setup)
        } catch {
            await setup.stop()
            throw error
        }
        await setup.stop()
    }

    /// The statuses of `count` GETs on one keep-alive connection.
    static func statuses(_ setup: Setup, _ count: Int, headers: [(String, String)] = []) async throws -> [Int] {
        let client = try await setup.harness.client()
        defer { client.close() }
        var statuses: [Int] = []
        for index in 0..<count {
            statuses.append(try await client.request(path: "/orders/\(index)", headers: headers).status)
        }
        return statuses
    }

    @Test func enforceAnswers429WithTheDraftsFieldsOnceTheBurstIsSpent() async throws {
        try await Self.with(RateLimit(requests: 3, per: "1h")) { setup in
            let client = try await setup.harness.client()
            var answers: [RawResponse] = []
            for index in 0..<4 {
                answers.append(try await client.request(path: "/orders/\(index)"))
            }
            // The connection stays usable after a 429 without a body; one with a body is answered and closed (its
            // body is not read), as every local answer to an unread body is.
            let after = try await client.request(path: "/orders/9")
            #expect(after.header("connection") == nil)
            let post = try await client.request(method: "POST", path: "/orders", body: Array("{\"a\":1}".utf8))
            #expect(post.header("connection") == "close")
            client.close()
            #expect(answers.map(\.status) == [200, 200, 200, 429])
            for limited in [answers[3], post, after] {
                #expect(limited.status == 429)
                #expect(limited.reason == "Too Many Requests")
                // A third of an hour for the next token, less the seconds this test took to get here (a loaded
                // machine may take a few): the value counts down, never up.
                let wait = Int(limited.header("retry-after") ?? "") ?? -1
                #expect((1140...1200).contains(wait), "retry-after \(wait)")
                #expect(limited.header("ratelimit-policy") == "\"orders\";q=3;w=3600")
                #expect(limited.header("ratelimit") == "\"orders\";r=0;t=\(wait)")
                #expect(limited.bodyString.contains("\"error\":\"rate_limited\""), "\(limited.bodyString)")
                #expect(!limited.bodyString.contains("backend"), "no upstream was involved")
            }
            #expect(answers[0].header("ratelimit") == nil, "fields only on 429s")
            #expect(setup.upstream.received.count == 3)
            #expect(setup.limited("enforce") == 3)
            await setup.harness.stop()  // every exchange recorded
            let windows = setup.metrics.takeWindows(proxy: "p", now: 1_000_000)
            #expect(windows.map(\.upstream) == ["backend"], "429s are in no upstream's window")
            #expect(windows.first?.requests == 3)
        }
    }

    @Test func observeLetsEverythingThroughAndCountsWhatWouldHaveBeenLimited() async throws {
        try await Self.with(RateLimit(requests: 2, per: "1h", mode: "observe")) { setup in
            let statuses1 = try await Self.statuses(setup, 5)
            #expect(statuses1 == [200, 200, 200, 200, 200])
            #expect(setup.upstream.received.count == 5)
            #expect(setup.limited("observe") == 3)
            #expect(setup.limited("enforce") == 0)
        }
    }

    @Test func clientAddressesBehindATrustedProxyHaveBucketsOfTheirOwn() async throws {
        try await Self.with(
            RateLimit(requests: 1, per: "1h", key: "client_ip"),
            configure: { $0.trustedProxies = [CIDR("127.0.0.0/8")!] }
        ) { setup in
            let first = [("X-Forwarded-For", "192.0.2.1")]
            let second = [("X-Forwarded-For", "198.51.100.7, 192.0.2.2")]
            let statuses2 = try await Self.statuses(setup, 2, headers: first)
            #expect(statuses2 == [200, 429])
            let statuses3 = try await Self.statuses(setup, 2, headers: second)
            #expect(statuses3 == [200, 429])
            // A client-written entry left of the real client is not believed: still 192.0.2.2's bucket.
            let statuses4 = try await Self.statuses(setup, 1, headers: [("X-Forwarded-For", "1.2.3.4, 192.0.2.2")])
            #expect(statuses4 == [429])
            // The trusted peer itself (no forwarded address) is one more client.
            let statuses5 = try await Self.statuses(setup, 2)
            #expect(statuses5 == [200, 429])
        }
    }

    @Test func untrustedPeersCannotPickTheirBucket() async throws {
        try await Self.with(RateLimit(requests: 1, per: "1h", key: "client_ip")) { setup in
            let statuses6 = try await Self.statuses(setup, 1, headers: [("X-Forwarded-For", "192.0.2.1")])
            #expect(statuses6 == [200])
            let statuses7 = try await Self.statuses(setup, 1, headers: [("X-Forwarded-For", "192.0.2.2")])
            #expect(statuses7 == [429])
        }
    }

    @Test func aHeaderKeyGivesEachValueItsBucketAndRequestsWithoutItShareOne() async throws {
        try await Self.with(RateLimit(requests: 1, per: "1h", key: "header:X-Api-Key")) { setup in
            let statuses8 = try await Self.statuses(setup, 2, headers: [("X-Api-Key", "alice")])
            #expect(statuses8 == [200, 429])
            let statuses9 = try await Self.statuses(setup, 2, headers: [("x-api-key", "bob")])
            #expect(statuses9 == [200, 429])
            let statuses10 = try await Self.statuses(setup, 2)
            #expect(statuses10 == [200, 429])
        }
    }

    @Test func aProxyEnforcesItsShareOfTheFleetsLimit() async throws {
        try await Self.with(RateLimit(requests: 4, per: "1h")) { setup in
            setup.harness.proxy.rateLimiter.setProxies(2)
            let statuses11 = try await Self.statuses(setup, 3)
            #expect(statuses11 == [200, 200, 429])
            let limited = try await HTTPTestClient.get(port: setup.harness.port, path: "/x", group: testGroup)
            #expect(limited.header("ratelimit-policy") == "\"orders\";q=4;w=3600", "the policy is the fleet's")
            #expect(limited.header("retry-after") == "1800", "this proxy refills at half the rate")
        }
    }

    @Test func theAccessLogShowsA429LikeAnyLocalAnswer() async throws {
        let log = RecordingAccessLog()
        try await Self.with(
            RateLimit(requests: 1, per: "1h"),
            configure: {
                $0.accessLog = true
                $0.accessLogSettings.format = .json
            },
            accessLog: log
        ) { setup in
            let statuses = try await Self.statuses(setup, 2)
            #expect(statuses == [200, 429])
            await setup.harness.stop()  // every exchange recorded
            let lines = log.lines.withLockedValue { $0 }
            #expect(lines.count == 2)
            let objects = try lines.map {
                try #require(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
            }
            #expect(objects.map { $0["status"] as? Int } == [200, 429])
            #expect(objects.last?["route"] as? String == "orders")
            #expect(objects.last?["upstream"] as? String == "-", "no upstream was involved")
        }
    }
}
