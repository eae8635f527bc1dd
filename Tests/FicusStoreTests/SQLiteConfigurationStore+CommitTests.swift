import FicusCore
import Foundation
import Testing

@testable import FicusStore

@Suite("Committing and rolling back")
struct SQLiteConfigurationStoreCommitTests {
    @Test("the first commit writes revision 1, its summary, routes changed and an audit entry")
    func firstCommit() async throws {
        let file = try TemporaryStoreFile()
        let clock = TestClock()
        let store = try await StoreFixtures.store(file, seeded: false, now: { clock.now })
        let revision = try await store.commit(StoreFixtures.author("init", reason: "first"), expectRevision: 0) {
            configuration in
            configuration = StoreFixtures.configuration()
        }
        #expect(revision.number == 1)
        #expect(revision.author == "tester")
        #expect(revision.reason == "first")
        #expect(revision.createdAt == clock.now)
        #expect(revision.configuration == StoreFixtures.configuration())
        #expect(revision.summary.hasPrefix("+ upstream legacy: [127.0.0.1:8080]; + upstream orders-v2"))
        #expect(try await store.revision(1) == revision)
        #expect(try await store.latest() == revision)
        let history = try await store.history(limit: nil, route: nil)
        #expect(history.map(\.number) == [1])
        #expect(history.first?.routesChanged == ["orders", "users"])
        let audit = try await store.audit(limit: nil)
        #expect(audit.count == 1)
        #expect(audit.first?.revision == 1)
        #expect(audit.first?.action == "init")
        #expect(audit.first?.time == clock.now)
        #expect(audit.first?.detail.contains("+ route orders: /orders → legacy") == true)
    }

    @Test("an invalid result throws every validation error and writes nothing", arguments: StoreFixtures.backends)
    func invalidChangeWritesNothing(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            let latestBefore = try await store.latest()
            let auditBefore = try await store.audit(limit: nil)
            let error = await #expect(throws: ConfigurationInvalid.self) {
                try await store.commit(StoreFixtures.author(), expectRevision: 1) { configuration in
                    configuration.routes[0].defaultUpstream = "nowhere"
                    configuration.routes[1].rules.append(
                        Rule(name: "beta", condition: .flag("beta"), upstream: "orders-v2")
                    )
                }
            }
            #expect((error?.errors.count ?? 0) >= 2)
            #expect(error?.description.contains("route 'orders'") == true)
            #expect(error?.description.contains("nowhere") == true)
            #expect(try await store.history(limit: nil, route: nil).count == 1)
            #expect(try await store.latest() == latestBefore)
            #expect(try await store.audit(limit: nil) == auditBefore)
        }
    }

    @Test("an error thrown by the change comes out unchanged and writes nothing", arguments: StoreFixtures.backends)
    func closureErrorPropagates(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            await #expect(throws: ClosureFailed(reason: "no route 'payments'")) {
                try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                    configuration.flags.append(Flag(name: "half-done"))
                    throw ClosureFailed(reason: "no route 'payments'")
                }
            }
            let latest = try await store.latest()
            #expect(latest?.number == 1)
            #expect(latest?.configuration.flags.isEmpty == true)
            #expect(try await store.audit(limit: nil).count == 1)
        }
    }

    @Test("expectRevision must match the newest revision, 0 meaning an empty store", arguments: StoreFixtures.backends)
    func expectRevision(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: false) { store in
            await #expect(throws: StoreError.revisionMismatch(expected: 3, actual: 0)) {
                try await store.commit(StoreFixtures.author(), expectRevision: 3) { configuration in
                    configuration = StoreFixtures.configuration()
                }
            }
            try await store.commit(StoreFixtures.author(), expectRevision: 0) { configuration in
                configuration = StoreFixtures.configuration()
            }
            await #expect(throws: StoreError.revisionMismatch(expected: 0, actual: 1)) {
                try await store.commit(StoreFixtures.author(), expectRevision: 0) { configuration in
                    configuration.killed = true
                }
            }
            let second = try await store.commit(StoreFixtures.author(), expectRevision: 1) { configuration in
                configuration.killed = true
            }
            #expect(second.number == 2)
            #expect(second.summary == "~ killed: off → on")
        }
    }

    @Test("a change that changes nothing writes no revision", arguments: StoreFixtures.backends)
    func noChange(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: false) { store in
            await #expect(throws: StoreError.noChange) {
                try await store.commit(StoreFixtures.author(), expectRevision: nil) { _ in }
            }
            try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                configuration = StoreFixtures.configuration()
            }
            await #expect(throws: StoreError.noChange) {
                try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                    configuration.routes[0].defaultUpstream = "orders-v2"
                    configuration.routes[0].defaultUpstream = "legacy"
                }
            }
            #expect(try await store.history(limit: nil, route: nil).count == 1)
            #expect(try await store.audit(limit: nil).count == 1)
        }
    }

    @Test("rollback writes a new revision equal to an earlier one", arguments: StoreFixtures.backends)
    func rollback(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
                configuration.routes[0].defaultUpstream = "orders-v2"
            }
            try await store.commit(StoreFixtures.author("flag.add"), expectRevision: 2) { configuration in
                configuration.flags.append(Flag(name: "beta", enabled: true))
            }
            let rolledBack = try await store.rollback(to: 1, StoreFixtures.author("rollback", reason: "5xx on orders-v2"))
            #expect(rolledBack.number == 4)
            #expect(rolledBack.summary == "rollback to 1")
            #expect(rolledBack.configuration == (try await store.revision(1)).configuration)
            #expect(try await store.latest() == rolledBack)
            let history = try await store.history(limit: nil, route: nil)
            #expect(history.map(\.number) == [4, 3, 2, 1])
            #expect(history.first?.routesChanged == ["orders"])
            let audit = try #require(try await store.audit(limit: 1).first)
            #expect(audit.action == "rollback")
            #expect(audit.revision == 4)
            #expect(audit.reason == "5xx on orders-v2")
            #expect(audit.detail.split(separator: "\n") == [
                "rollback to 1", "~ route orders: default orders-v2 → legacy", "- flag beta",
            ])
            await #expect(throws: StoreError.noChange) {
                try await store.rollback(to: 1, StoreFixtures.author("rollback"))
            }
            await #expect(throws: StoreError.noSuchRevision(99)) {
                try await store.rollback(to: 99, StoreFixtures.author("rollback"))
            }
            await #expect(throws: StoreError.noSuchRevision(0)) {
                try await store.revision(0)
            }
        }
    }

    @Test("a rollback still works when the newest snapshot cannot be decoded")
    func rollbackPastUndecodableRevision() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        try await store.unsafeExecute(
            """
            INSERT INTO config_objects (id, digest, kind, name, body) VALUES (900001, 'future', 'route', 'x', '{"routes": 5}');
            INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint, layout)
            VALUES (2, 'future', 'newer model', '2025-01-01 00:00:00.000', 'x', '[]', 2, '{"objects": [900001]}')
            """
        )
        let error = await #expect(throws: StoreError.self) {
            try await store.latest()
        }
        #expect(error?.description.contains("revision 2 cannot be decoded") == true)
        let rolledBack = try await store.rollback(to: 1, StoreFixtures.author("rollback"))
        #expect(rolledBack.number == 3)
        #expect(try await store.latest()?.configuration == StoreFixtures.configuration())
    }

    @Test("history lists newest first, filtered by route and limited", arguments: StoreFixtures.backends)
    func historyFilters(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await store.commit(StoreFixtures.author("flip"), expectRevision: nil) { configuration in
                configuration.routes[0].defaultUpstream = "orders-v2"
            }
            try await store.commit(StoreFixtures.author("rule.add"), expectRevision: nil) { configuration in
                configuration.routes[1].rules.append(
                    Rule(name: "users-canary", condition: .percentage(10), upstream: "orders-v2")
                )
            }
            try await store.commit(StoreFixtures.author("flag.add"), expectRevision: nil) { configuration in
                configuration.flags.append(Flag(name: "beta"))
            }
            #expect(try await store.history(limit: nil, route: nil).map(\.number) == [4, 3, 2, 1])
            #expect(try await store.history(limit: nil, route: "orders").map(\.number) == [2, 1])
            #expect(try await store.history(limit: nil, route: "users").map(\.number) == [3, 1])
            #expect(try await store.history(limit: nil, route: "payments").isEmpty)
            #expect(try await store.history(limit: 2, route: nil).map(\.number) == [4, 3])
            #expect(try await store.history(limit: 1, route: "orders").map(\.number) == [2])
            let third = try #require(try await store.history(limit: nil, route: "users").first)
            #expect(third.routesChanged == ["users"])
            #expect(third.summary == "+ rule users-canary in route users: percentage 10 → orders-v2")
        }
    }

    @Test("audit entries are appended, newest first, and may name an existing revision", arguments: StoreFixtures.backends)
    func auditLog(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await store.appendAudit(StoreFixtures.author("canary.step"), revision: 1, detail: "orders-v2 at 10%")
            try await store.appendAudit(StoreFixtures.author("canary.abort"), revision: nil, detail: "p99 over budget")
            await #expect(throws: StoreError.noSuchRevision(42)) {
                try await store.appendAudit(StoreFixtures.author("canary.step"), revision: 42, detail: "")
            }
            let audit = try await store.audit(limit: nil)
            #expect(audit.map(\.action) == ["canary.abort", "canary.step", "init"])
            #expect(audit.map(\.revision) == [nil, 1, 1])
            #expect(audit[0].detail == "p99 over budget")
            #expect(audit[0].id > audit[1].id)
            #expect(try await store.audit(limit: 1).map(\.action) == ["canary.abort"])
        }
    }

    @Test("revisions and the audit log cannot be rewritten, even with SQL", arguments: StoreFixtures.backends)
    func appendOnly(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            await #expect(throws: StoreError.self) {
                try await store.unsafeExecute("UPDATE revisions SET author = 'someone else'")
            }
            await #expect(throws: StoreError.self) {
                try await store.unsafeExecute("DELETE FROM audit")
            }
            let latest = try await store.latest()
            #expect(latest?.author == "tester")
            #expect(try await store.audit(limit: nil).count == 1)
        }
    }

    @Test("heartbeats are upserted and listed when seen within the window")
    func heartbeats() async throws {
        let file = try TemporaryStoreFile()
        let clock = TestClock()
        let store = try await StoreFixtures.store(file, now: { clock.now })
        let started = clock.now
        let first = ProxyHeartbeat(
            id: "proxy-a",
            listen: "0.0.0.0:8080",
            revision: 1,
            startedAt: started,
            lastSeen: started
        )
        let second = ProxyHeartbeat(
            id: "proxy-b",
            listen: "0.0.0.0:8081",
            revision: 1,
            startedAt: started,
            lastSeen: started
        )
        try await store.heartbeat(first)
        try await store.heartbeat(second)
        #expect(try await store.proxies(seenWithin: 10) == [first, second])
        clock.advance(by: 30)
        var updated = first
        updated.revision = 2
        updated.lastSeen = clock.now
        try await store.heartbeat(updated)
        #expect(try await store.proxies(seenWithin: 10) == [updated])
        #expect(try await store.proxies(seenWithin: 3600) == [updated, second])
    }
}
