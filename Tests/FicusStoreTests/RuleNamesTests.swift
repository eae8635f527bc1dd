import FicusCore
import Foundation
import Testing

@testable import FicusStore

extension StoreFixtures {
    /// Every schema migration, in order: what a new or fully migrated store reports.
    static let migrations = [
        "v1-revisions", "v1-audit", "v1-proxies", "v2-shadow", "v3-rule-names", "v4-canary", "v5-bluegreen",
        "v6-telemetry-file",
        "v7-objects",
    ]

    /// A 10% canary rule on `orders-v2`.
    static func canary(_ name: String, percent: Int = 10) -> Rule {
        Rule(name: name, condition: .percentage(percent), upstream: "orders-v2")
    }
}

@Suite("Rule names are never reused")
struct RuleNamesTests {
    /// Takes a seeded store to revision 3: `orders-canary` added to `orders` in revision 2 and removed in revision 3.
    static func retireCanary(_ store: any ConfigurationStore) async throws {
        try await store.commit(StoreFixtures.author("rule.add"), expectRevision: 1) { configuration in
            configuration.routes[0].rules.append(StoreFixtures.canary("orders-canary"))
        }
        try await store.commit(StoreFixtures.author("rule.rm"), expectRevision: 2) { configuration in
            configuration.routes[0].rules.removeAll()
        }
    }

    @Test("a retired name is refused, naming its first use, and nothing is written", arguments: StoreFixtures.backends)
    func retiredNameIsRefused(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await Self.retireCanary(store)
            let auditBefore = try await store.audit(limit: nil)
            await #expect(throws: StoreError.ruleNameRetired(name: "orders-canary", route: "orders", revision: 2)) {
                try await store.commit(StoreFixtures.author("rule.add"), expectRevision: nil) { configuration in
                    configuration.routes[1].rules.append(StoreFixtures.canary("orders-canary", percent: 50))
                }
            }
            #expect(try await store.latest()?.number == 3)
            #expect(try await store.history(limit: nil, route: nil).count == 3)
            #expect(try await store.audit(limit: nil) == auditBefore)
            let message = StoreError.ruleNameRetired(name: "orders-canary", route: "orders", revision: 12).description
            #expect(
                message == "rule name 'orders-canary' was used before (route 'orders', revision 12) and is retired: "
                    + "rule names are never reused, pick another"
            )
        }
    }

    @Test("names still in the configuration may move and change; new names are recorded with their first use", arguments: StoreFixtures.backends)
    func liveNamesMayMove(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await store.commit(StoreFixtures.author("rule.add"), expectRevision: 1) { configuration in
                configuration.routes[0].rules.append(StoreFixtures.canary("canary"))
            }
            let moved = try await store.commit(StoreFixtures.author("rule.move"), expectRevision: 2) { configuration in
                configuration.routes[0].rules.removeAll()
                configuration.routes[1].rules.append(StoreFixtures.canary("canary", percent: 20))
                configuration.routes[1].rules.append(StoreFixtures.canary("users-canary"))
            }
            #expect(moved.number == 3)
            #expect(try await store.ruleNamesEverUsed() == ["canary", "users-canary"])
        }
    }

    @Test("rolling back to a revision with a retired name restores it", arguments: StoreFixtures.backends)
    func rollbackRestoresRetiredNames(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await Self.retireCanary(store)
            let restored = try await store.rollback(to: 2, StoreFixtures.author("rollback"))
            #expect(restored.number == 4)
            #expect(restored.configuration.routes[0].rules == [StoreFixtures.canary("orders-canary")])
            #expect(try await store.ruleNamesEverUsed() == ["orders-canary"])
        }
    }

    @Test("a commit allowing names from an earlier revision restores its rules as they were, and only those", arguments: StoreFixtures.backends)
    func partialRollbackRestoresExactRules(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await Self.retireCanary(store)
            let author = StoreFixtures.author("rollback.route")
            await #expect(throws: StoreError.ruleNameRetired(name: "orders-canary", route: "orders", revision: 2)) {
                try await store.commit(author, expectRevision: 3, allowingRuleNamesFrom: 2) { configuration in
                    configuration.routes[0].rules.append(StoreFixtures.canary("orders-canary", percent: 90))
                }
            }
            await #expect(throws: StoreError.noSuchRevision(9)) {
                try await store.commit(author, expectRevision: 3, allowingRuleNamesFrom: 9) { configuration in
                    configuration.routes[0].rules.append(StoreFixtures.canary("orders-canary"))
                }
            }
            #expect(try await store.latest()?.number == 3)
            let old = try await store.revision(2).configuration.routes[0]
            let restored = try await store.commit(author, expectRevision: 3, allowingRuleNamesFrom: 2) { configuration in
                configuration.routes[0] = old
            }
            #expect(restored.number == 4)
            #expect(restored.configuration.routes[0] == old)
        }
    }

    @Test("the record of names is append-only", arguments: StoreFixtures.backends)
    func recordIsAppendOnly(backend: StoreFixtures.Backend) async throws {
        try await backend.withStore(seeded: true) { store in
            try await Self.retireCanary(store)
            await #expect(throws: (any Error).self) {
                try await store.unsafeExecute("DELETE FROM rule_names")
            }
            #expect(try await store.ruleNamesEverUsed() == ["orders-canary"])
        }
    }

    @Test("migrating a store made with the v2 schema records every name of its history")
    func migrationBackfillsHistory() async throws {
        let file = try TemporaryStoreFile()
        var first = StoreFixtures.configuration()
        first.routes[0].rules = [StoreFixtures.canary("orders-canary")]
        var second = StoreFixtures.configuration()
        second.routes[1].rules = [StoreFixtures.canary("users-canary"), StoreFixtures.canary("users-beta", percent: 5)]
        var third = second
        third.routes[1].rules.removeFirst()
        third.routes[0].rules = [StoreFixtures.canary("users-canary-2")]
        try SQLiteConfigurationStore.createStore(
            path: file.path,
            migratedUpTo: "v2-shadow",
            revisions: [first, second, third]
        )
        let store = try SQLiteConfigurationStore(path: file.path)
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
        #expect(
            try await store.ruleNamesEverUsed() == ["orders-canary", "users-canary", "users-beta", "users-canary-2"]
        )
        await #expect(throws: StoreError.ruleNameRetired(name: "orders-canary", route: "orders", revision: 1)) {
            try await store.commit(StoreFixtures.author(), expectRevision: 3) { configuration in
                configuration.routes[1].rules.append(StoreFixtures.canary("orders-canary"))
            }
        }
        await #expect(throws: StoreError.ruleNameRetired(name: "users-canary", route: "users", revision: 2)) {
            try await store.commit(StoreFixtures.author(), expectRevision: 3) { configuration in
                configuration.routes[0].rules.append(StoreFixtures.canary("users-canary"))
            }
        }
        let next = try await store.commit(StoreFixtures.author(), expectRevision: 3) { configuration in
            configuration.routes[0].rules.append(StoreFixtures.canary("orders-canary-2"))
        }
        #expect(next.number == 4)
        #expect(try await store.ruleNamesEverUsed().contains("orders-canary-2"))
    }
}
