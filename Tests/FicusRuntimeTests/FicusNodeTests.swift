import FicusCore
import FicusProxy
import FicusStore
import Foundation
import Testing

@testable import FicusRuntime

@Suite struct FicusNodeTests {
    /// The defaults are `ficus serve`'s (docs/CLI.md), so that a caller sets only what it changes.
    @Test func theDefaultsAreServesDefaults() {
        let configuration = FicusNode.Configuration()
        #expect(configuration.proxy.listenHost == "127.0.0.1")
        #expect(configuration.proxy.listenPort == 8080)
        #expect(configuration.proxy.threads == 0)
        #expect(configuration.admin?.host == "127.0.0.1")
        #expect(configuration.admin?.port == 9901)
        #expect(configuration.storeFeed.pollInterval == .milliseconds(5))
        #expect(configuration.storeFeed.heartbeatInterval == .seconds(3))
        #expect(configuration.storeFeed.advertisedListen == nil)
        #expect(configuration.windows.interval == .seconds(10))
        #expect(configuration.canary.enabled)
        #expect(configuration.canary.leaseTTL == .seconds(15))
        #expect(configuration.canary.pollInterval == .milliseconds(250))
        #expect(configuration.shadow.queueLimit == 1000)
    }

    /// A node on loopback and free ports, with one event loop.
    func loopbackConfiguration() -> FicusNode.Configuration {
        var configuration = FicusNode.Configuration()
        configuration.proxy.listenPort = 0
        configuration.proxy.threads = 1
        configuration.proxy.accessLog = false
        configuration.admin?.port = 0
        return configuration
    }

    @Test func aNodeFollowsItsStoreAndStopsOnGracefulShutdown() async throws {
        let clock = ManualClock()
        let temporary = try TemporaryStore(clock: clock)
        try await temporary.commit("orders", RuntimeFixtures.orders)
        let node = try await FicusNode(
            configuration: self.loopbackConfiguration(),
            source: .store(temporary.store),
            clock: clock,
            logger: RuntimeFixtures.logger
        )
        #expect(node.sourceName == temporary.store.path)
        #expect(node.routing.current.revision == 1)
        try await RuntimeFixtures.running(node) {
            // The heartbeat, the metric windows, the canary controller and the TLS file watch each wait on the clock.
            try await clock.waitForSleepers(4)
            #expect(try await RuntimeFixtures.eventually { node.proxyAddress != nil && node.adminAddress != nil })
            let proxies = try await temporary.store.proxies(seenWithin: 60)
            #expect(proxies.map(\.listen) == ["127.0.0.1:0"])

            let revision = try await temporary.commit("orders to v2") { configuration in
                configuration.routes[0].defaultUpstream = "orders-v2"
            }
            #expect(try await RuntimeFixtures.eventually { node.routing.current.revision == revision })
        }
        #expect(node.proxyAddress == nil, "the listener is closed")
    }

    @Test func anInMemoryNodeServesItsConfigurationAsRevisionZero() async throws {
        var configuration = self.loopbackConfiguration()
        configuration.admin = nil
        let node = try await FicusNode(
            configuration: configuration,
            source: .inMemory(
                .catchAll(
                    upstreams: [Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 9)])],
                    defaultUpstream: "legacy"
                )
            ),
            logger: RuntimeFixtures.logger
        )
        #expect(node.sourceName == "in-memory")
        #expect(node.routing.current.revision == 0)
        let health = FicusNode.health(draining: true, feed: nil, routing: node.routing, source: node.sourceName)
        #expect(health.0 == 503)
        #expect(health.1 == "{\"status\":\"draining\",\"revision\":0,\"source\":\"in-memory\"}\n")
        try await RuntimeFixtures.running(node) {
            let listening = try await RuntimeFixtures.eventually { node.proxyAddress != nil }
            #expect(listening)
            #expect(node.adminAddress == nil)
        }
    }
}
