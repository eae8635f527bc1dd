import FicusCore
import FicusProxy
import FicusTesting
import Logging
import NIOCore
import NIOPosix

/// One event-loop group for every proxy test: on 2 cores, more threads only add contention.
let testGroup: MultiThreadedEventLoopGroup = .singleton

/// A real proxy on a loopback port in front of real loopback upstreams.
struct ProxyHarness {
    let proxy: ProxyServer
    let routing: RoutingState
    let port: Int

    /// Starts a proxy whose every request goes to `upstreams[defaultUpstream]`.
    static func start(
        upstreams: [(String, [String])],
        defaultUpstream: String,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        metrics: ProxyMetrics? = nil
    ) async throws -> ProxyHarness {
        let configuration = Configuration.catchAll(
            upstreams: upstreams.map { name, addresses in
                Upstream(name: name, addresses: addresses.map { Endpoint(parsing: $0)! })
            },
            defaultUpstream: defaultUpstream
        )
        return try await Self.start(configuration: configuration, configure: configure, metrics: metrics)
    }

    static func start(
        configuration: Configuration,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        metrics: ProxyMetrics? = nil,
        accessLogSink: AccessLogSink? = nil
    ) async throws -> ProxyHarness {
        var proxyConfiguration = ProxyConfiguration()
        proxyConfiguration.listenHost = "127.0.0.1"
        proxyConfiguration.listenPort = 0
        proxyConfiguration.accessLog = false
        configure(&proxyConfiguration)
        let routing = RoutingState(try RoutingTable(configuration: configuration, revision: 1))
        var logger = Logger(label: "ficus-test")
        // Access log lines are info lines: a test that collects them lowers the level (its sink gets only those).
        logger.logLevel = accessLogSink == nil ? .critical : .info
        let proxy = ProxyServer(
            configuration: proxyConfiguration,
            routing: routing,
            metrics: metrics,
            logger: logger,
            group: testGroup,
            accessLogSink: accessLogSink
        )
        try await proxy.start()
        return ProxyHarness(proxy: proxy, routing: routing, port: proxy.localAddress!.port!)
    }

    /// Starts one upstream with `behavior` and a proxy in front of it.
    static func start(
        _ behavior: TestUpstream.Behavior,
        configure: (inout ProxyConfiguration) -> Void = { _ in }
    ) async throws -> (ProxyHarness, TestUpstream) {
        let upstream = try await TestUpstream.start(behavior, group: testGroup)
        let harness = try await Self.start(
            upstreams: [("backend", [upstream.address])],
            defaultUpstream: "backend",
            configure: configure
        )
        return (harness, upstream)
    }

    /// Starts one upstream with `behavior` and a proxy in front of it, runs `body`, and stops both whatever happens:
    /// awaited, so that one test's servers are gone before the next test starts.
    static func with(
        _ behavior: TestUpstream.Behavior,
        configure: (inout ProxyConfiguration) -> Void = { _ in },
        _ body: (ProxyHarness, TestUpstream) async throws -> Void
    ) async throws {
        let (harness, upstream) = try await Self.start(behavior, configure: configure)
        do {
            try await body(harness, upstream)
        } catch {
            await harness.stop()
            try? await upstream.shutdown()
            throw error
        }
        await harness.stop()
        try? await upstream.shutdown()
    }

    func client() async throws -> RawClient {
        try await RawClient.connect(port: self.port, group: testGroup)
    }

    func stop() async {
        await self.proxy.shutdown(drainTimeout: .seconds(1))
    }
}
