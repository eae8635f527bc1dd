import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// The canary and lease tables: versioned canary writes with their revision, and compare-and-swap leases.
@Suite struct RolloutStoreTests {
    static func store(_ file: TemporaryStoreFile) async throws -> SQLiteConfigurationStore {
        let store = try SQLiteConfigurationStore(path: file.path)
        try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
            configuration = StoreFixtures.configuration()
        }
        return store
    }

    static func row(_ state: String, active: Bool = true, version: Int = 0) -> CanaryRow {
        CanaryRow(
            route: "orders",
            stateJSON: Data("{\"s\":\"\(state)\"}".utf8),
            active: active,
            ruleName: "canary-orders-1",
            stickiness: Attribute("header:X-User"),
            version: version,
            updatedAt: Date()
        )
    }

    @Test func migrationIsAppended() async throws {
        let file = try TemporaryStoreFile()
        let store = try await Self.store(file)
        #expect(try await store.appliedMigrations().contains("v4-canary"))
    }

    @Test(arguments: StoreFixtures.backends)
    func aStepWritesStateRevisionAndReasonTogether(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            let author = ChangeAuthor(author: "ficus", reason: "step 1 at 10%", action: "canary.start")
            let (row, revision) = try await store.writeCanary(Self.row("one"), expectVersion: nil, author: author) {
                $0.routes[0].rules.append(Rule(name: "canary-orders-1", condition: .percentage(10), upstream: "orders-v2"))
            }
            #expect(row.version == 1)
            #expect(revision?.number == 2)
            #expect(revision?.reason == "step 1 at 10%")
            let stored = try await store.canary(route: "orders")
            #expect(stored?.stateJSON == Data("{\"s\":\"one\"}".utf8))
            #expect(stored?.stickiness == Attribute("header:X-User"))
            #expect(try await store.canaries(activeOnly: true).map(\.route) == ["orders"])

            // A second start is refused while the first is active; a stale version is refused; nothing is written.
            await #expect(throws: CanaryConflict.self) {
                try await store.writeCanary(Self.row("two"), expectVersion: nil, author: author, change: nil)
            }
            await #expect(throws: CanaryConflict.self) {
                try await store.writeCanary(Self.row("two"), expectVersion: 0, author: author, change: nil)
            }
            #expect(try await store.latest()?.number == 2)

            // Without a change, an audit line and the state; finished canaries are not active.
            let audit = ChangeAuthor(author: "ficus", reason: "paused", action: "canary.pause")
            let paused = try await store.writeCanary(Self.row("done", active: false), expectVersion: 1, author: audit, change: nil)
            #expect(paused.revision == nil)
            #expect(paused.row.version == 2)
            #expect(try await store.audit(limit: 1).first?.detail == "paused")
            #expect(try await store.canaries(activeOnly: true).isEmpty)
            #expect(try await store.canaries(activeOnly: false).count == 1)
        }
    }

    @Test(arguments: StoreFixtures.backends)
    func anOperatorCommitOverridesTheCanaryInItsTransaction(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            let author = ChangeAuthor(author: "ficus", reason: "start", action: "canary.start")
            try await store.writeCanary(Self.row("running"), expectVersion: nil, author: author) {
                $0.routes[0].rules.append(Rule(name: "canary-orders-1", condition: .percentage(10), upstream: "orders-v2"))
            }
            let hook = CanaryOverrideHook(routes: ["orders"]) { row, configuration in
                let index = configuration.routes.firstIndex { $0.name == row.route }!
                configuration.routes[index].rules.removeAll { $0.name == row.ruleName }
                return CanaryOverrideOutcome(stateJSON: Data("{\"s\":\"aborted\"}".utf8), active: false, auditLine: "gone")
            }
            let revision = try await store.commit(
                StoreFixtures.author("flip"),
                expectRevision: nil,
                allowingRuleNamesFrom: nil,
                overridingCanaries: hook
            ) { configuration in
                configuration.routes[0].defaultUpstream = "orders-v2"
            }
            #expect(revision.configuration.routes[0].rules.isEmpty)
            let stored = try await store.canary(route: "orders")
            #expect(stored?.active == false)
            #expect(stored?.version == 2)
            let entry = try await store.audit(limit: 1).first
            #expect(entry?.action == "canary.override")
            #expect(entry?.revision == revision.number)
        }
    }

    @Test(arguments: StoreFixtures.backends)
    func leaseWritesAreCompareAndSwap(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            let now = Date()
            let first = CanaryLeaseRow(holder: "a", expiresAt: now.addingTimeInterval(10))
            #expect(try await store.writeCanaryLease(route: "orders", first, replacing: nil))
            // A second insert loses; a swap against a row that is not stored loses.
            let other = CanaryLeaseRow(holder: "b", expiresAt: now.addingTimeInterval(10))
            #expect(try await store.writeCanaryLease(route: "orders", other, replacing: nil) == false)
            let stored = try #require(try await store.canaryLease(route: "orders"))
            #expect(stored.holder == "a")
            #expect(try await store.writeCanaryLease(route: "orders", other, replacing: other) == false)
            // Swapping against exactly what was read wins, once.
            let renewed = CanaryLeaseRow(holder: "a", expiresAt: now.addingTimeInterval(20))
            #expect(try await store.writeCanaryLease(route: "orders", renewed, replacing: stored))
            #expect(try await store.writeCanaryLease(route: "orders", other, replacing: stored) == false)
            // Only the holder releases.
            try await store.releaseCanaryLease(route: "orders", holder: "b")
            #expect(try await store.canaryLease(route: "orders")?.holder == "a")
            try await store.releaseCanaryLease(route: "orders", holder: "a")
            #expect(try await store.canaryLease(route: "orders") == nil)
        }
    }
}
