import FicusCore
import FicusProxy
import FicusStore
import Foundation
import Prometheus
import Testing

@testable import FicusRuntime

@Suite struct StoreFeedTests {
    /// Builds a feed on a real store serving its newest revision, runs it, and stops it after `body`.
    func withFeed(
        clock: ManualClock,
        temporary: TemporaryStore,
        rateLimiter: RateLimiter? = nil,
        _ body: (StoreFeed) async throws -> Void
    ) async throws {
        let latest = try #require(try await temporary.store.latest())
        var configuration = FicusNode.Configuration.StoreFeed()
        configuration.advertisedListen = "127.0.0.1:8080"
        let feed = StoreFeed(
            store: temporary.store,
            routing: RoutingState(try RoutingTable(configuration: latest.configuration, revision: latest.number)),
            configuration: configuration,
            clock: clock,
            logger: RuntimeFixtures.logger,
            metrics: PrometheusMetricsFactory(registry: PrometheusCollectorRegistry()),
            rateLimiter: rateLimiter
        )
        try await RuntimeFixtures.running(feed) { try await body(feed) }
    }

    @Test func aNewRevisionIsServedWithoutRestarting() async throws {
        let clock = ManualClock()
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        try await self.withFeed(clock: clock, temporary: temporary) { feed in
            #expect(feed.routing.current.revision == 1)
            let revision = try await temporary.commit("orders to v2") { configuration in
                configuration.routes[0].defaultUpstream = "orders-v2"
            }
            // The store is polled on its own (real-time) poll; the feed swaps the table as soon as it sees it.
            #expect(try await RuntimeFixtures.eventually { feed.routing.current.revision == revision })
            #expect(feed.routing.current.configuration.routes[0].defaultUpstream == "orders-v2")
            #expect(feed.currentHealth.lastError == nil)
        }
    }

    @Test func heartbeatsFollowTheClock() async throws {
        let clock = ManualClock()
        let started = clock.now
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        try await self.withFeed(clock: clock, temporary: temporary) { feed in
            // The first beat goes out at once, then the feed waits a heartbeat interval on the clock.
            try await clock.waitForSleepers(1)
            var proxies = try await temporary.store.proxies(seenWithin: 60)
            #expect(proxies.map(\.id) == [feed.proxyID])
            #expect(proxies.first?.lastSeen == started)
            #expect(proxies.first?.listen == "127.0.0.1:8080")
            #expect(proxies.first?.revision == 1)

            try await clock.advance(by: .seconds(2))
            proxies = try await temporary.store.proxies(seenWithin: 60)
            #expect(proxies.first?.lastSeen == started, "no beat before the interval")

            try await clock.advance(by: .seconds(1))
            proxies = try await temporary.store.proxies(seenWithin: 60)
            #expect(proxies.first?.lastSeen == started.addingTimeInterval(3))
            #expect(proxies.first?.startedAt == started)
        }
    }

    /// Rate limits are divided by the proxies with a heartbeat at most three intervals old (issue 17 item 6): another
    /// proxy's beat halves this one's share, and its silence gives the share back.
    @Test func rateLimitSharesFollowTheLiveProxies() async throws {
        let clock = ManualClock()
        let started = clock.now
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        let limiter = RateLimiter()
        try await self.withFeed(clock: clock, temporary: temporary, rateLimiter: limiter) { _ in
            try await clock.waitForSleepers(1)
            #expect(limiter.proxies == 1)
            try await temporary.store.heartbeat(
                ProxyHeartbeat(id: "other", listen: "10.0.0.2:8080", revision: 1, startedAt: started, lastSeen: started))
            try await clock.advance(by: .seconds(3), thenWaitFor: 1)
            #expect(try await RuntimeFixtures.eventually { limiter.proxies == 2 })
            // The other proxy stops beating: 9 s (three 3 s intervals) after its last beat it no longer counts.
            try await clock.advance(by: .seconds(3), thenWaitFor: 1)
            try await clock.advance(by: .seconds(3), thenWaitFor: 1)
            #expect(limiter.proxies == 2, "9 s after its beat it is still alive")
            try await clock.advance(by: .seconds(3), thenWaitFor: 1)
            #expect(try await RuntimeFixtures.eventually { limiter.proxies == 1 })
        }
    }
}
