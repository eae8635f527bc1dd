import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Prometheus
import Testing

@testable import FicusProxy

/// `stale_if_error` (issue 17 item 8) through a real proxy: recent 200 answers to GETs stand in when the upstream
/// fails, with `Age` and `X-Ficus-Stale: 1`, never for what may not be shared.
@Suite("Stale answers through a real proxy", .serialized)
struct ProxyStaleTests {
    /// A proxy whose route `orders` (fallback off) goes to `upstream` with `stale_if_error: maxAge`.
    static func with(
        _ upstream: TestUpstream, maxAge: String = "60s",
        _ body: (ProxyHarness, PrometheusCollectorRegistry) async throws -> Void
    ) async throws {
        var orders = Route(name: "orders", path: "/", legacy: "orders", defaultUpstream: "orders")
        orders.staleIfError = maxAge
        let configuration = Configuration(
            upstreams: [Upstream(name: "orders", addresses: [Endpoint(parsing: upstream.address)!])],
            routes: [orders]
        )
        let registry = PrometheusCollectorRegistry()
        let harness = try await ProxyHarness.start(
            configuration: configuration, metrics: ProxyMetrics(factory: PrometheusMetricsFactory(registry: registry)))
        do {
            try await body(harness, registry)
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
    }

    static func answering(_ status: Int, _ body: String, headers: [(String, String)] = []) -> TestUpstream.Behavior {
        .fixed(status: status, headers: headers, body: Array(body.utf8))
    }

    /// A kept answer stands in for a 503 and for a refused connect, with `Age` and `X-Ficus-Stale: 1`; another URL
    /// has none; the upstream's metrics still record the failure.
    @Test func aRecentAnswerStandsInForFailures() async throws {
        let upstream = try await TestUpstream.start(
            Self.answering(200, "fresh", headers: [("Content-Type", "text/plain"), ("ETag", "\"v1\"")]), group: testGroup)
        try await Self.with(upstream) { harness, registry in
            let client = try await harness.client()
            let first = try await client.request(path: "/orders/1?x=1")
            #expect(first.status == 200 && first.header("x-ficus-stale") == nil)
            upstream.setBehavior(Self.answering(503, "down"))
            let stale = try await client.request(path: "/orders/1?x=1")
            #expect(stale.status == 200 && stale.bodyString == "fresh")
            #expect(stale.header("x-ficus-stale") == "1")
            // Whole seconds since the copy arrived: 0 on a quick machine, a few under ThreadSanitizer.
            #expect((0...30).contains(Int(stale.header("age") ?? "") ?? -1), "\(stale.header("age") ?? "none")")
            #expect(stale.header("etag") == "\"v1\"" && stale.header("content-type") == "text/plain")
            let other = try await client.request(path: "/orders/2")
            #expect(other.status == 503 && other.bodyString == "down", "no copy of another URL")
            try await upstream.shutdown()
            let refused = try await client.request(path: "/orders/1?x=1")
            #expect(refused.status == 200 && refused.bodyString == "fresh" && refused.header("x-ficus-stale") == "1")
            client.close()
            await harness.stop()
            let text = String(decoding: registry.emitToBuffer(), as: UTF8.self)
            #expect(text.contains(#"ficus_stale_answers_total{route="orders",upstream="orders"} 2"#), "\(text)")
            #expect(text.contains(#"ficus_requests_total{route="orders",upstream="orders",status="5xx"} 3"#), "the two stale answers count as failures: \(text)")
        }
    }

    /// Answers that may not be shared are not kept: `no-store`, `private`, `Set-Cookie`; requests with
    /// `Authorization` neither keep nor get copies; a copy older than the route allows is not served.
    @Test func whatMayNotBeSharedIsNeverServed() async throws {
        let upstream = try await TestUpstream.start(Self.answering(200, "ok"), group: testGroup)
        try await Self.with(upstream) { harness, _ in
            let client = try await harness.client()
            for (path, headers) in [
                ("/no-store", [("Cache-Control", "no-store")]), ("/private", [("Cache-Control", "max-age=5, private")]),
                ("/cookie", [("Set-Cookie", "session=abc")]),
            ] {
                upstream.setBehavior(Self.answering(200, "ok", headers: headers))
                #expect(try await client.request(path: path).status == 200)
                upstream.setBehavior(Self.answering(503, "down"))
                #expect(try await client.request(path: path).status == 503, "\(path) was kept")
            }
            upstream.setBehavior(Self.answering(200, "mine"))
            _ = try await client.request(path: "/auth", headers: [("Authorization", "Bearer a")])
            upstream.setBehavior(Self.answering(503, "down"))
            #expect(try await client.request(path: "/auth").status == 503, "an authorised answer was kept")
            upstream.setBehavior(Self.answering(200, "shared"))
            _ = try await client.request(path: "/shared")
            upstream.setBehavior(Self.answering(503, "down"))
            let asked = try await client.request(path: "/shared", headers: [("Authorization", "Bearer a")])
            #expect(asked.status == 503, "an authorised request got a shared copy")
            client.close()
        }
        try await upstream.shutdown()
    }

    /// `Vary`: a copy is served only to a request with the same values of the fields it varies on.
    @Test func varyIsRespected() async throws {
        let upstream = try await TestUpstream.start(
            Self.answering(200, "english", headers: [("Vary", "Accept-Language")]), group: testGroup)
        try await Self.with(upstream) { harness, _ in
            let client = try await harness.client()
            _ = try await client.request(path: "/page", headers: [("Accept-Language", "en")])
            upstream.setBehavior(Self.answering(503, "down"))
            let same = try await client.request(path: "/page", headers: [("Accept-Language", "en")])
            #expect(same.status == 200 && same.bodyString == "english")
            let other = try await client.request(path: "/page", headers: [("Accept-Language", "fr")])
            #expect(other.status == 503)
            client.close()
        }
        try await upstream.shutdown()
    }

    /// Past its age a copy is not served.
    @Test func anOldCopyIsNotServed() async throws {
        let upstream = try await TestUpstream.start(Self.answering(200, "ok"), group: testGroup)
        try await Self.with(upstream, maxAge: "1ms") { harness, _ in
            let client = try await harness.client()
            _ = try await client.request(path: "/a")
            upstream.setBehavior(Self.answering(503, "down"))
            try await Task.sleep(for: .milliseconds(20))  // the copy must be older than 1 ms: time has to pass
            #expect(try await client.request(path: "/a").status == 503)
            client.close()
        }
        try await upstream.shutdown()
    }

    /// A copy keeps the answer's own fields and drops framing, hop-by-hop fields (also those its `Connection` names,
    /// with or without spaces and tabs around them) and `Age`; `Vary` names and `Cache-Control` directives are
    /// trimmed the same way.
    @Test func aCopyKeepsTheEndToEndFields() throws {
        let head = try HTTP1Parser.parseResponseHead(
            ByteBuffer(
                string: "HTTP/1.1 200 OK\r\nConnection: keep-alive,\t X-Hop \r\nX-Hop: 1\r\nKeep-Alive: timeout=5\r\n"
                    + "Content-Length: 2\r\nAge: 3\r\nETag: \"a\"\r\nVary:  Accept-Encoding ,\tX-User\r\n\r\n"),
            limits: .response, method: .get)
        #expect(StaleAnswer.keptFields(head).map { "\($0.0): \($0.1)" } == [
            "ETag: \"a\"", "Vary: Accept-Encoding ,\tX-User",
        ])
        #expect(StaleAnswer.varyNames(head) == ["accept-encoding", "x-user"])
        #expect(StaleAnswer.trimmedOWS(" \t a b\t ") == "a b")
        #expect(StaleAnswer.trimmedOWS(" \t ") == "")
        let noStore = try HTTP1Parser.parseResponseHead(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nCache-Control: max-age=5,\tno-store \r\nContent-Length: 0\r\n\r\n"),
            limits: .response, method: .get)
        #expect(!StaleAnswer.mayKeep(noStore))
        #expect(StaleAnswer.mayKeep(head))
    }

    /// The view of the request head `request` (parsed as Ficus parses it).
    static func view(_ request: String) throws -> RequestView {
        var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
        var buffer = ByteBuffer(string: request)
        guard case .head(let head) = try parser.next(&buffer) else { throw CancellationError() }
        return RequestView(head: head, clientAddress: nil)
    }

    private func key(_ target: String) -> StaleKey {
        StaleKey(route: "orders", host: "shop.example", target: target)
    }

    /// The key is made of the request head's bytes: the host lower-cased and without its port, the target as received.
    /// Keys from the head equal keys from strings; any part that differs makes another key; a kept (detached) key
    /// owns its bytes and is still equal.
    @Test func aKeyIsTheRouteHostAndTargetFromTheHeadsBytes() throws {
        let view = Self.view
        let plain = StaleKey(route: "orders", view: try view("GET /a?x=1 HTTP/1.1\r\nHost: shop.example\r\n\r\n"))
        let capitals = StaleKey(
            route: "orders", view: try view("GET /a?x=1 HTTP/1.1\r\nX-A: 1\r\nHost: Shop.EXAMPLE:8080\r\n\r\n"))
        let otherHost = StaleKey(
            route: "orders", view: try view("GET /a?x=1 HTTP/1.1\r\nHost: other\r\n\r\n"))
        #expect(plain == key("/a?x=1"))
        #expect(capitals == plain && capitals.hashValue == plain.hashValue)
        #expect(otherHost != plain, "another host")
        #expect(StaleKey(route: "orders", view: try view("GET /a?x=2 HTTP/1.1\r\nHost: shop.example\r\n\r\n")) != plain)
        #expect(StaleKey(route: "other", host: "shop.example", target: "/a?x=1") != plain)
        #expect(StaleKey(route: "orders", host: "shop.exampl", target: "e/a?x=1") != plain, "parts are kept apart")
        #expect(StaleKey(route: "orders", view: try view("GET /a?x=1 HTTP/1.0\r\n\r\n")) != plain, "no host")
        let kept = capitals.detached()
        #expect(kept == plain && kept.hashValue == plain.hashValue)
        let address = { (buffer: ByteBuffer) in buffer.withUnsafeReadableBytes { UInt(bitPattern: $0.baseAddress) } }
        #expect(address(kept.target) != address(capitals.target), "a kept key does not hold the head's buffer")
        let cache = StaleAnswers(limits: .init(maxBytes: 1000, maxEntryBytes: 300))
        cache.store(capitals, StaleAnswer(reason: "OK", fields: [], body: ByteBuffer(), stored: .now(), vary: []))
        #expect(cache.lookup(key("/a?x=1"), now: .now(), maxAge: .seconds(1), value: { _ in nil }) != nil)
        #expect(cache.lookup(key("/a?x=2"), now: .now(), maxAge: .seconds(1), value: { _ in nil }) == nil)
    }

    /// A copy younger than a second is fresh: the next answer is not copied over it (unless its request varies).
    /// Each capture here gets a memo of its own, so the cache itself is asked.
    @Test func aFreshCopyIsNotReplaced() throws {
        let cache = StaleAnswers(limits: .init(maxBytes: 1000, maxEntryBytes: 300))
        let now = NIODeadline.now()
        cache.store(
            key("k"), StaleAnswer(reason: "OK", fields: [], body: ByteBuffer(), stored: now, vary: [("accept-language", "en")]))
        func view(_ language: String) throws -> RequestView {
            try Self.view("GET /k HTTP/1.1\r\nHost: shop.example\r\nAccept-Language: \(language)\r\n\r\n")
        }
        let answer = try HTTP1Parser.parseResponseHead(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nVary: Accept-Language\r\nContent-Length: 0\r\n\r\n"),
            limits: .response, method: .get)
        func captures(_ key: StaleKey, _ language: String, at time: NIODeadline) throws -> Bool {
            cache.capture(answer, key: key, view: try view(language), freshness: StaleFreshness(), now: time) != nil
        }
        #expect(try !captures(key("k"), "en", at: now + .milliseconds(500)))
        #expect(try captures(key("k"), "fr", at: now + .milliseconds(500)), "another variant")
        #expect(try captures(key("k"), "en", at: now + .seconds(2)), "a second old: refreshed")
        #expect(try captures(key("other"), "en", at: now))
    }

    /// An event loop's memo of fresh copies answers "fresh" for less than `refreshAfter` after a copy was kept, only
    /// for the key it remembers, and never for a copy that varies on request fields; a capture asks it first.
    @Test func theLoopsMemoOfFreshCopies() throws {
        let memo = StaleFreshness()
        let now = NIODeadline.now()
        memo.remember(key("/a"), stored: now)
        #expect(memo.isFresh(key("/a"), now: now))
        #expect(memo.isFresh(key("/a"), now: now + .milliseconds(900)))
        #expect(!memo.isFresh(key("/a"), now: now + .milliseconds(995)), "never fresh longer than the cache says")
        #expect(!memo.isFresh(key("/a"), now: now + .seconds(2)))
        #expect(!memo.isFresh(key("/b"), now: now), "another key")
        #expect(!memo.isFresh(StaleKey(route: "other", host: "shop.example", target: "/a"), now: now))

        let cache = StaleAnswers(limits: .init(maxBytes: 10_000, maxEntryBytes: 3_000))
        let loop = StaleFreshness()
        let view = try Self.view("GET /a HTTP/1.1\r\nHost: shop.example\r\nAccept-Language: en\r\n\r\n")
        let plain = try HTTP1Parser.parseResponseHead(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"), limits: .response, method: .get)
        let varied = try HTTP1Parser.parseResponseHead(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nVary: Accept-Language\r\nContent-Length: 0\r\n\r\n"),
            limits: .response, method: .get)
        let first = try #require(cache.capture(plain, key: key("/a"), view: view, freshness: loop, now: now))
        cache.store(key("/a"), first.answer, freshness: loop)
        #expect(loop.isFresh(key("/a"), now: now + .milliseconds(10)), "a kept copy is remembered")
        #expect(cache.capture(plain, key: key("/a"), view: view, freshness: loop, now: now + .milliseconds(10)) == nil)
        // Another loop learns of the copy from the cache, once.
        let other = StaleFreshness()
        #expect(cache.capture(plain, key: key("/a"), view: view, freshness: other, now: now + .milliseconds(10)) == nil)
        #expect(other.isFresh(key("/a"), now: now + .milliseconds(10)))
        // A copy that varies is fresh for the cache, but not remembered by the loop.
        let variant = try #require(cache.capture(varied, key: key("/v"), view: view, freshness: loop, now: now))
        cache.store(key("/v"), variant.answer, freshness: loop)
        #expect(!loop.isFresh(key("/v"), now: now))
        #expect(cache.capture(varied, key: key("/v"), view: view, freshness: loop, now: now) == nil)
        #expect(!loop.isFresh(key("/v"), now: now))
        #expect(cache.capture(plain, key: key("/a"), view: view, freshness: loop, now: now + .seconds(2)) != nil)
        // An answer the cache does not keep (larger than all of it) is not remembered either.
        let tiny = StaleAnswers(limits: .init(maxBytes: 10, maxEntryBytes: 300))
        tiny.store(
            key("/big"),
            StaleAnswer(reason: "OK", fields: [], body: ByteBuffer(repeating: 0x61, count: 100), stored: now, vary: []),
            freshness: loop)
        #expect(tiny.usage.answers == 0 && !loop.isFresh(key("/big"), now: now))
    }

    /// The cache is bounded in bytes: the least recently used answers go first; a body over the entry limit is
    /// never kept.
    @Test func theCacheIsBoundedInBytes() {
        let cache = StaleAnswers(limits: .init(maxBytes: 1000, maxEntryBytes: 300))
        func answer(_ size: Int) -> StaleAnswer {
            StaleAnswer(reason: "OK", fields: [], body: ByteBuffer(repeating: 0x61, count: size), stored: .now(), vary: [])
        }
        for index in 0..<5 { cache.store(key("k\(index)"), answer(200)) }
        #expect(cache.usage.answers == 3, "five of 264 bytes do not fit in 1000")
        #expect(cache.lookup(key("k0"), now: .now(), maxAge: .seconds(60), value: { _ in nil }) == nil)
        #expect(cache.lookup(key("k4"), now: .now(), maxAge: .seconds(60), value: { _ in nil }) != nil)
        cache.store(key("k4"), answer(100))
        #expect(cache.usage.bytes == 264 + 264 + 164)
        let capture = StaleCapture(answer: answer(0), limit: 300)
        let fits = capture.append(ByteBuffer(repeating: 0x62, count: 300))
        let over = capture.append(ByteBuffer(repeating: 0x62, count: 1))
        #expect(fits && !over, "over the entry limit")
    }
}
