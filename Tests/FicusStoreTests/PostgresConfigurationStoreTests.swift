import FicusCore
import Foundation
import Testing

@testable import FicusStore

@Suite("Store locations: paths, sqlite: and postgres:// URLs")
struct StoreLocationTests {
    @Test("a plain path or sqlite:PATH is SQLite; postgres:// and postgresql:// are PostgreSQL")
    func kinds() throws {
        #expect(try StoreLocation(parsing: "./ficus.sqlite") == .sqlite(path: "./ficus.sqlite"))
        #expect(try StoreLocation(parsing: "sqlite:/var/lib/ficus.db") == .sqlite(path: "/var/lib/ficus.db"))
        let url = PostgresStoreURL(
            user: "ficus", password: "p@ss:word", host: "db.internal", port: 6432, database: "rules",
            sslMode: .verifyFull
        )
        #expect(
            try StoreLocation(parsing: "postgres://ficus:p%40ss%3Aword@db.internal:6432/rules?sslmode=verify-full")
                == .postgres(url)
        )
        let defaults = try PostgresStoreURL(parsing: "postgresql://ficus@[::1]/rules")
        #expect(defaults.host == "::1")
        #expect(defaults.port == 5432)
        #expect(defaults.password == nil)
        #expect(defaults.sslMode == .prefer)
        #expect(defaults.description == "postgres://ficus@[::1]:5432/rules?sslmode=prefer")
    }

    @Test("an error names the part that is wrong and never shows the password")
    func errorsNameThePart() {
        let cases: [(String, String)] = [
            ("postgres://ficus:hunter2@db:99999/rules", "the port '99999'"),
            ("postgres://ficus:hunter2@db:5432", "the database is missing"),
            ("postgres://db:5432/rules", "the user is missing"),
            ("postgres://ficus:hunter2@:5432/rules", "the host is missing"),
            ("postgres://ficus:hunter2@db/rules?sslmode=maybe", "sslmode 'maybe' is not supported"),
            ("postgres://ficus:hunter2@db/rules?timeout=3", "unknown parameter 'timeout'"),
            ("mysql://ficus:hunter2@db/rules", "unknown store scheme 'mysql'"),
            ("sqlite:", "'sqlite:' needs a file path"),
        ]
        for (text, expected) in cases {
            do {
                _ = try StoreLocation(parsing: text)
                Issue.record("\(text) was accepted")
            } catch {
                #expect("\(error)".contains(expected), "\(text): \(error)")
                #expect(!"\(error)".contains("hunter2"), "\(text): \(error)")
            }
        }
        #expect(
            PostgresStoreURL.redacting("postgres://ficus:hunter2@db/rules?sslmode=x") == "postgres://ficus:***@db/rules?sslmode=x"
        )
        let parsed = try? PostgresStoreURL(parsing: "postgres://ficus:hunter2@db/rules")
        #expect(parsed?.description == "postgres://ficus:***@db:5432/rules?sslmode=prefer")
    }

    @Test("a server that does not answer fails at once with StoreError.unreachable")
    func unreachableFailsFast() async throws {
        // Port 1 on loopback: nothing listens there, so the connection is refused at once.
        let url = PostgresStoreURL(user: "ficus", password: "secret", host: "127.0.0.1", port: 1, database: "x",
            sslMode: .disable)
        let started = ContinuousClock.now
        let error = await #expect(throws: StoreError.self) {
            _ = try await PostgresConfigurationStore.open(url, creating: false)
        }
        #expect(ContinuousClock.now - started < .seconds(5))
        guard case .unreachable(let store, _) = error else {
            Issue.record("not unreachable: \(String(describing: error))")
            return
        }
        #expect(store == "postgres://ficus:***@127.0.0.1:1/x?sslmode=disable")
        #expect(error?.description.contains("secret") == false)
    }
}

/// What only the PostgreSQL store does: schema versions, database-enforced history, fleets of writers, LISTEN.
@Suite(
    "The PostgreSQL store",
    // FICUS_TEST_POSTGRES names the server; under CI=true the suite runs without it and fails (see PostgresTesting).
    .enabled(if: PostgresTesting.enabled, "needs FICUS_TEST_POSTGRES (a PostgreSQL server)")
)
struct PostgresConfigurationStoreTests {
    @Test("a database without the schema is refused unless creating; ficus_schema records every version")
    func schemaIsCreatedOnlyWhenAsked() async throws {
        try await PostgresTesting.withDatabase { url in
            let error = await #expect(throws: StoreError.self) {
                _ = try await PostgresConfigurationStore.open(url, creating: false)
            }
            #expect(error?.description.contains("has no Ficus schema: run 'ficus init --store") == true)
            let store = try await PostgresConfigurationStore.open(url, creating: true)
            #expect(try await store.schemaVersion() == PostgresConfigurationStore.knownVersion)
            await store.close()
            // Opening again, creating or not, changes nothing.
            let again = try await PostgresConfigurationStore.open(url, creating: true)
            #expect(try await again.schemaVersion() == 3)
            await again.close()
        }
    }

    @Test("a schema newer than this binary is refused before anything is written")
    func newerSchemaIsRefused() async throws {
        try await PostgresTesting.withDatabase { url in
            let store = try await PostgresConfigurationStore.open(url, creating: true)
            try await store.unsafeExecute("INSERT INTO ficus_schema (version, name) VALUES (99, 'v99-future')")
            await store.close()
            for creating in [false, true] {
                let error = await #expect(throws: StoreError.self) {
                    _ = try await PostgresConfigurationStore.open(url, creating: creating)
                }
                #expect(
                    error?.description.contains("its schema is version 99, newer than this ficus knows (3)") == true,
                    "\(String(describing: error))"
                )
            }
        }
    }

    @Test("revisions cannot be updated, deleted or truncated, even with SQL")
    func historyIsEnforcedByTheDatabase() async throws {
        try await StoreFixtures.Backend.postgres.withStore { store in
            // A rule, so that rule_names has a row to refuse deleting (row triggers see no rows in an empty table).
            try await store.commit(StoreFixtures.author("rule.add"), expectRevision: 1) { configuration in
                configuration.routes[0].rules.append(StoreFixtures.canary("orders-canary"))
            }
            for sql in [
                "UPDATE revisions SET reason = 'rewritten'", "DELETE FROM revisions", "TRUNCATE revisions CASCADE",
                "UPDATE audit SET author = 'x'", "DELETE FROM rule_names",
            ] {
                let error = await #expect(throws: StoreError.self, "\(sql)") {
                    try await store.unsafeExecute(sql)
                }
                #expect(error?.description.contains("this table is append-only") == true, "\(String(describing: error))")
            }
            let latest = try await store.latest()
            #expect(latest?.reason == "testing")
        }
    }

    @Test("two stores (two connections each) committing at once leave gapless numbers and lose nothing")
    func concurrentWritersAreGapless() async throws {
        try await PostgresTesting.withDatabase { url in
            let first = try await PostgresConfigurationStore.open(url, creating: true)
            let second = try await PostgresConfigurationStore.open(url, creating: false)
            try await StoreFixtures.seed(first, true)
            let perWriter = 25
            try await withThrowingTaskGroup(of: Void.self) { group in
                for (prefix, store) in [("a", first), ("b", second)] {
                    group.addTask {
                        for index in 0..<perWriter {
                            try await store.commit(StoreFixtures.author("flag.add"), expectRevision: nil) {
                                $0.flags.append(Flag(name: "\(prefix)-\(index)"))
                            }
                        }
                    }
                }
                try await group.waitForAll()
            }
            let history = try await first.history(limit: nil, route: nil)
            #expect(history.map(\.number) == Array((1...(1 + 2 * perWriter)).reversed()))
            #expect(try await second.latest()?.configuration.flags.count == 2 * perWriter)
            #expect(try await first.audit(limit: nil).count == 1 + 2 * perWriter)
            await first.close()
            await second.close()
        }
    }

    @Test("a watcher reports the newest revision, then each commit of another instance as it is notified")
    func watchFollowsNotifications() async throws {
        try await PostgresTesting.withDatabase { url in
            // No safety-net check within the test: every revision seen arrived by notification.
            let store = try await PostgresConfigurationStore.open(url, creating: true, safetyNet: .seconds(600))
            try await StoreFixtures.seed(store, true)
            let writer = try await PostgresConfigurationStore.open(url, creating: false)
            let collector = EventCollector(store.watch(pollInterval: 0.005))
            #expect(await collector.wait(timeout: 10) { $0.revisionNumber == 1 } != nil)
            for number in 2...4 {
                try await writer.commit(StoreFixtures.author("flag.add"), expectRevision: nil) {
                    $0.flags.append(Flag(name: "f\(number)"))
                }
                #expect(await collector.wait(timeout: 10) { $0.revisionNumber == number } != nil, "revision \(number)")
            }
            #expect(collector.events.allSatisfy { $0.failure == nil })
            collector.stop()
            await writer.close()
            await store.close()
        }
    }

    @Test("lease expiry is counted on the database's clock and handed out on this host's")
    func leasesUseTheDatabaseClock() async throws {
        try await StoreFixtures.Backend.postgres.withStore { store in
            let now = Date()
            let lease = CanaryLeaseRow(holder: "proxy-a", expiresAt: now.addingTimeInterval(15))
            #expect(try await store.writeCanaryLease(route: "orders", lease, replacing: nil))
            let stored = try #require(try await store.canaryLease(route: "orders"))
            #expect(stored.holder == "proxy-a")
            #expect(abs(stored.expiresAt.timeIntervalSince(now.addingTimeInterval(15))) < 2)
        }
    }
}

/// `ficus serve` keeps idle PostgreSQL connections between its store operations; commands keep none.
@Suite(
    "PostgreSQL connection reuse",
    .enabled(if: PostgresTesting.enabled, "needs FICUS_TEST_POSTGRES (a PostgreSQL server)")
)
struct PostgresConnectionReuseTests {
    static func beat(_ store: PostgresConfigurationStore, _ count: Int) async throws {
        for _ in 0..<count {
            try await store.heartbeat(
                ProxyHeartbeat(id: "p", listen: "127.0.0.1:1", revision: 0, startedAt: Date(), lastSeen: Date()))
        }
    }

    @Test func aKeptConnectionServesTheNextOperationsAndCloseEndsIt() async throws {
        try await PostgresTesting.withDatabase { url in
            let kept = try await PostgresConfigurationStore.open(url, creating: true, keepConnections: 2)
            let before = kept.pool.opened
            try await Self.beat(kept, 10)
            #expect(kept.pool.opened == before, "ten heartbeats opened \(kept.pool.opened - before) connections")
            // A failed operation closes its connection; the next one connects anew and works.
            await #expect(throws: (any Error).self) { try await kept.unsafeExecute("SELECT * FROM no_such_table") }
            try await Self.beat(kept, 1)
            #expect(kept.pool.opened == before + 1)
            await kept.close()

            let plain = try await PostgresConfigurationStore.open(url, creating: false)
            let plainBefore = plain.pool.opened
            try await Self.beat(plain, 3)
            #expect(plain.pool.opened == plainBefore + 3)
            await plain.close()
        }
    }
}
