import FicusCore
import FicusProxy
import FicusRuntime
import FicusStore
import Foundation
import Logging
import NIOCore
import ServiceLifecycle

/// The proxy of `ficus demo`: the `FicusNode` that `ficus serve` runs, run inside the demo's process.
///
/// The same node as `ficus serve` (store feed, shadow comparer, metric windows, proxy), so what the demo shows is what
/// a deployment does; only the admin listener, the access log, the canary controller and the signal handling are left
/// out, because the demo drives its own shutdown.
final class DemoProxy: Sendable {
    let routing: RoutingState
    private let node: FicusNode
    private let serviceGroup: ServiceGroup
    private let running: Task<Void, any Error>

    /// Starts the proxy on 127.0.0.1 and a free port, serving the store's newest revision and following new ones.
    ///
    /// Returns once the listener is bound, so the caller can send traffic at once.
    static func start(
        store: SQLiteConfigurationStore,
        group: EventLoopGroup,
        logger: Logger
    ) async throws -> DemoProxy {
        guard try await store.latest() != nil else {
            throw CLIError.failed("the store has no configuration")
        }
        var configuration = FicusNode.Configuration()
        configuration.proxy.listenHost = "127.0.0.1"
        configuration.proxy.listenPort = 0
        configuration.proxy.threads = 1
        configuration.proxy.accessLog = false
        configuration.proxy.drainTimeout = .seconds(5)
        configuration.admin = nil
        configuration.canary.enabled = false
        // A short window: a half-minute demo should fill a few (flips show at once with the default 5 ms poll).
        configuration.windows.interval = .seconds(5)
        let node = try await FicusNode(
            configuration: configuration,
            source: .store(store),
            eventLoopGroup: group,
            logger: logger
        )
        let serviceGroup = ServiceGroup(services: [node], logger: logger)
        let running = Task { try await serviceGroup.run() }
        let demo = DemoProxy(routing: node.routing, node: node, serviceGroup: serviceGroup, running: running)
        try await demo.waitUntilListening()
        return demo
    }

    private init(
        routing: RoutingState,
        node: FicusNode,
        serviceGroup: ServiceGroup,
        running: Task<Void, any Error>
    ) {
        self.routing = routing
        self.node = node
        self.serviceGroup = serviceGroup
        self.running = running
    }

    /// Where the proxy listens.
    var port: Int { self.node.proxyAddress?.port ?? 0 }

    private func waitUntilListening() async throws {
        let deadline = ContinuousClock.now + .seconds(10)
        while self.node.proxyAddress == nil {
            guard ContinuousClock.now < deadline else {
                await self.stop()
                throw CLIError.failed("the proxy did not start listening within 10 s")
            }
            try await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Waits until the proxy serves `revision` (the store is polled every few milliseconds).
    func waitForRevision(_ revision: Int, timeout: Duration = .seconds(10)) async throws {
        let deadline = ContinuousClock.now + timeout
        while self.routing.current.revision != revision {
            guard ContinuousClock.now < deadline else {
                let serving = self.routing.current.revision
                throw CLIError.failed("the proxy still serves revision \(serving), not \(revision), after \(timeout)")
            }
            try await Task.sleep(for: .milliseconds(5))
        }
    }

    /// Drains the proxy, stores the comparisons and metric windows still queued, and stops following the store.
    ///
    /// Services stop in reverse order, as under `ficus serve`: the proxy first, so nothing is compared after the
    /// comparer has finished.
    func stop() async {
        await self.serviceGroup.triggerGracefulShutdown()
        _ = await self.running.result
    }
}
