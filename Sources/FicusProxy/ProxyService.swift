import Logging
import ServiceLifecycle

/// The proxy and its admin listener as one service: started together, drained together on SIGTERM/SIGINT.
public struct ProxyService: Service {
    public let proxy: ProxyServer
    public let admin: AdminServer?
    public let logger: Logger
    /// Called once both listeners are bound (the runtime logs where they are).
    public let onStarted: @Sendable () -> Void

    public init(proxy: ProxyServer, admin: AdminServer?, logger: Logger, onStarted: @escaping @Sendable () -> Void = {}) {
        self.proxy = proxy
        self.admin = admin
        self.logger = logger
        self.onStarted = onStarted
    }

    public func run() async throws {
        try await self.proxy.start()
        do {
            try await self.admin?.start()
        } catch {
            await self.proxy.shutdown(drainTimeout: .zero)
            throw error
        }
        self.onStarted()
        // Runs until SIGTERM/SIGINT (graceful shutdown) or cancellation; either way the drain below happens.
        try? await gracefulShutdown()
        self.logger.info("draining: no new connections; finishing requests in flight")
        await self.proxy.shutdown()
        await self.admin?.shutdown()
        self.logger.info("stopped")
    }
}
