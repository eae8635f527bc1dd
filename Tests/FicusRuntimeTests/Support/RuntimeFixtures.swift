import FicusCore
import FicusStore
import Foundation
import Logging
import ServiceLifecycle

/// A real SQLite store in a directory of its own, removed with everything SQLite put beside it.
final class TemporaryStore: Sendable {
    let directory: URL
    let store: SQLiteConfigurationStore

    /// A new store whose own clock (audit times, heartbeat queries) reads `clock`.
    init(clock: ManualClock) throws {
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ficus-runtime-tests", isDirectory: true)
            .appendingPathComponent(UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        let path = self.directory.appendingPathComponent("ficus.sqlite").path
        self.store = try SQLiteConfigurationStore(path: path) { clock.now }
    }

    deinit {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// Commits `change` as the next revision and returns its number.
    @discardableResult
    func commit(
        _ reason: String,
        _ change: @escaping @Sendable (inout Configuration) throws -> Void
    ) async throws -> Int {
        let author = ChangeAuthor(author: "runtime-tests", reason: reason, action: "test")
        return try await self.store.commit(author, expectRevision: nil, change: change).number
    }
}

enum RuntimeFixtures {
    /// A logger that drops everything: the tests read the store and the routing state, not the log.
    static let logger = Logger(label: "ficus.runtime-tests") { _ in SwiftLogNoOpLogHandler() }

    /// `legacy` and `orders-v2` upstreams (nothing listens there) and an `orders` route served by legacy.
    static func orders(_ configuration: inout Configuration) {
        configuration.upstreams = [
            Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 9)]),
            Upstream(name: "orders-v2", addresses: [Endpoint(host: "127.0.0.1", port: 9)]),
        ]
        configuration.routes = [Route(name: "orders", path: "/orders", legacy: "legacy")]
    }

    /// Runs `service` in a service group while `body` runs, then shuts it down gracefully (also when `body` throws)
    /// and waits until it has stopped.
    static func running(_ service: some Service, _ body: () async throws -> Void) async throws {
        let group = ServiceGroup(services: [service], logger: Self.logger)
        let running = Task { try await group.run() }
        do {
            try await body()
        } catch {
            await group.triggerGracefulShutdown()
            _ = await running.result
            throw error
        }
        await group.triggerGracefulShutdown()
        try await running.value
    }

    /// Waits until `condition` holds, for work that runs on the store's own poll; the minute of real time it allows
    /// is a bound for a hang, not a timing.
    static func eventually(_ condition: @Sendable () async throws -> Bool) async throws -> Bool {
        let deadline = ContinuousClock.now + .seconds(60)
        while ContinuousClock.now < deadline {
            if try await condition() { return true }
            try await Task.sleep(for: .milliseconds(2))
        }
        return try await condition()
    }
}
