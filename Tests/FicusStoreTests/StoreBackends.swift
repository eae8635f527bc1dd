import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// The PostgreSQL server the tests may use: `FICUS_TEST_POSTGRES` (`.ci/run` starts a throwaway cluster with
/// `scripts/postgres-test-cluster.sh` and sets it).
///
/// Without it the PostgreSQL cases are skipped, visibly; under `CI=true` they run anyway and fail, so that CI can
/// never pass without having tested the PostgreSQL store.
enum PostgresTesting {
    static let url: PostgresStoreURL? = ProcessInfo.processInfo.environment["FICUS_TEST_POSTGRES"].flatMap {
        try? PostgresStoreURL(parsing: $0)
    }

    /// Whether the PostgreSQL tests run: a server is named, or CI requires them (and they then fail without one).
    static let enabled = url != nil || ProcessInfo.processInfo.environment["CI"] == "true"

    /// The server's URL, or a failure saying how to name one.
    static func requireURL() throws -> PostgresStoreURL {
        guard let url else {
            throw StoreError.unreachable(
                store: "FICUS_TEST_POSTGRES",
                detail: "not set (CI=true requires it): run scripts/postgres-test-cluster.sh start DIR and export it"
            )
        }
        return url
    }

    /// Runs `body` with a new, empty database of its own on the test server, dropped afterwards.
    static func withDatabase<Value>(_ body: (PostgresStoreURL) async throws -> Value) async throws -> Value {
        let server = try self.requireURL()
        let name = "ficus_test_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        try await self.admin(server, "CREATE DATABASE \(name)")
        do {
            let value = try await body(server.database(name))
            try await self.admin(server, "DROP DATABASE \(name) WITH (FORCE)")
            return value
        } catch {
            try? await self.admin(server, "DROP DATABASE \(name) WITH (FORCE)")
            throw error
        }
    }

    /// Runs one statement on the server's own database (CREATE and DROP DATABASE cannot run in a transaction).
    static func admin(_ server: PostgresStoreURL, _ sql: String) async throws {
        let pool = PostgresConnectionPool(
            configuration: try PostgresConfigurationStore.connectionConfiguration(server, connectTimeout: .seconds(5)),
            location: server.description,
            logger: .init(label: "ficus.test")
        )
        defer {
            Task { await pool.close() }
        }
        try await pool.withConnection { connection in
            try await PostgresSession(connection: connection, logger: .init(label: "ficus.test")).execute(
                .init(unsafeSQL: sql))
        }
    }
}

/// Lets the shared tests run raw SQL on either backend (both stores have `unsafeExecute`).
protocol UnsafeSQLStore: StoreBackend {
    func unsafeExecute(_ sql: String) async throws
}

extension SQLiteConfigurationStore: UnsafeSQLStore {}
extension PostgresConfigurationStore: UnsafeSQLStore {}

extension StoreFixtures {
    /// A backend the shared store tests run on.
    enum Backend: String, Sendable, CaseIterable, CustomTestStringConvertible {
        case sqlite
        case postgres

        var testDescription: String { self.rawValue }

        /// Runs `body` on a new store of this backend (a temporary file, or a database of its own), seeded with the
        /// fixture configuration as revision 1 when `seeded`, and removes the store afterwards.
        ///
        /// Not generic over a result: a closure whose only `try` is inside `#expect` is then still a throwing one.
        func withStore(
            seeded: Bool = true,
            _ body: (any UnsafeSQLStore) async throws -> Void
        ) async throws {
            switch self {
            case .sqlite:
                let file = try TemporaryStoreFile()
                try await body(try await StoreFixtures.store(file, seeded: seeded))
            case .postgres:
                try await PostgresTesting.withDatabase { url in
                    let store = try await PostgresConfigurationStore.open(url, creating: true)
                    do {
                        try await StoreFixtures.seed(store, seeded)
                        try await body(store)
                        await store.close()
                    } catch {
                        await store.close()
                        throw error
                    }
                }
            }
        }
    }

    /// SQLite always; PostgreSQL where a server is named or CI requires it (see `PostgresTesting`).
    static let backends: [Backend] = PostgresTesting.enabled ? [.sqlite, .postgres] : [.sqlite]

    /// Commits the fixture configuration as revision 1 when `seeded`.
    static func seed(_ store: any ConfigurationStore, _ seeded: Bool) async throws {
        if seeded {
            try await store.commit(self.author("init"), expectRevision: 0) { configuration in
                configuration = Self.configuration()
            }
        }
    }
}

/// A store the telemetry tests can count rows of (both stores have `shadowTableSizes`).
protocol TelemetryTestStore: StoreBackend {
    func shadowTableSizes() async throws -> [String: Int]
}

extension SQLiteConfigurationStore: TelemetryTestStore {}
extension PostgresConfigurationStore: TelemetryTestStore {}

extension StoreFixtures.Backend {
    /// Runs `body` on a new, empty store of this backend whose telemetry retention counts from `clock` (by default
    /// a test clock at the fixtures' start, so that retention keeps their records), and removes the store afterwards.
    ///
    /// The shadow store tests run on both backends through this: the same calls must give the same results.
    func withShadowStore(
        clock: TestClock = TestClock(ShadowFixtures.start),
        _ body: (any TelemetryTestStore) async throws -> Void
    ) async throws {
        switch self {
        case .sqlite:
            let file = try TemporaryStoreFile()
            try await body(try ShadowFixtures.store(file, clock: clock))
        case .postgres:
            try await PostgresTesting.withDatabase { url in
                let store = try await PostgresConfigurationStore.open(url, creating: true, now: { clock.now })
                do {
                    try await body(store)
                    await store.close()
                } catch {
                    await store.close()
                    throw error
                }
            }
        }
    }
}
