import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// `ficus store copy`'s two halves: the whole history read from one backend and written into another.
@Suite("Store history copy")
struct StoreHistoryTests {
    /// A store with five revisions (a rule among them), audit entries that name no revision, a finished canary and a
    /// blue-green state.
    static func fill(_ store: any StoreBackend) async throws {
        try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.routes[0].defaultUpstream = "orders-v2"
        }
        try await store.commit(StoreFixtures.author("rule.add"), expectRevision: 2) { configuration in
            configuration.routes[1].rules = [Rule(name: "beta-users", condition: .percentage(10), upstream: "orders-v2")]
        }
        try await store.appendAudit(StoreFixtures.author("canary.note"), revision: nil, detail: "a note")
        try await store.writeCanary(
            CanaryRow(
                route: "orders", stateJSON: Data(#"{"s":"done"}"#.utf8), active: false, ruleName: "canary-orders-1",
                stickiness: Attribute("header:X-User"), version: 0, updatedAt: Date()),
            expectVersion: nil, author: StoreFixtures.author("canary.start")
        ) { configuration in
            configuration.routes[0].defaultUpstream = "legacy"
        }
        try await store.writeBlueGreen(
            upstream: "legacy", stateJSON: Data(#"{"previous":"blue"}"#.utf8), expectVersion: 0, expectRevision: 4,
            author: StoreFixtures.author("bluegreen.check"), change: nil)
        try await store.rollback(to: 2, StoreFixtures.author("rollback"))
    }

    /// `history` with times cut to milliseconds (SQLite keeps milliseconds, PostgreSQL microseconds).
    static func normalised(_ history: StoreHistory) -> StoreHistory {
        func cut(_ date: Date) -> Date {
            Date(timeIntervalSince1970: (date.timeIntervalSince1970 * 1000).rounded(.down) / 1000)
        }
        var copy = history
        copy.revisions = copy.revisions.map { var r = $0; r.summary.createdAt = cut(r.summary.createdAt); return r }
        copy.audit = copy.audit.map { var a = $0; a.time = cut(a.time); return a }
        copy.canaries = copy.canaries.map { var c = $0; c.updatedAt = cut(c.updatedAt); return c }
        copy.blueGreen = copy.blueGreen.map { var b = $0; b.updatedAt = cut(b.updatedAt); return b }
        return copy
    }

    @Test(arguments: StoreFixtures.backends)
    func aHistoryCopiedIntoAnEmptyStoreReadsBackTheSame(to destination: StoreFixtures.Backend) async throws {
        let file = try TemporaryStoreFile()
        let source = try await StoreFixtures.store(file)
        try await Self.fill(source)
        let history = try await source.exportHistory()
        #expect(history.revisions.map(\.number) == [1, 2, 3, 4, 5])
        #expect(history.ruleNames.contains(StoreHistory.RuleName(name: "beta-users", route: "users", firstRevision: 3)))
        #expect(history.canaries.count == 1)
        #expect(history.blueGreen.count == 1)
        #expect(history.audit.contains { $0.revision == nil && $0.detail == "a note" })

        try await destination.withStore(seeded: false) { store in
            try await store.importHistory(history)
            let copied = try await store.exportHistory()
            #expect(Self.normalised(copied) == Self.normalised(history))
            // What commands read is the same too: the newest revision, a diffable older one, the audit log.
            #expect(try await store.latest()?.configuration == (try await source.latest()?.configuration))
            #expect(try await store.revision(3).configuration == (try await source.revision(3).configuration))
            #expect(try await store.audit(limit: nil).map(\.id) == (try await source.audit(limit: nil).map(\.id)))
            #expect(try await store.ruleNamesEverUsed() == (try await source.ruleNamesEverUsed()))
            // The copy goes on where the source stopped: the next revision is 6, the next audit id follows.
            let next = try await store.commit(StoreFixtures.author("flag.on"), expectRevision: 5) { configuration in
                configuration.flags.append(Flag(name: "after-copy", enabled: true))
            }
            #expect(next.number == 6)
            let audit = try await store.audit(limit: 1)
            #expect(audit.first?.id == (history.audit.map(\.id).max() ?? 0) + 1)
            // A second copy into it is refused, and changes nothing.
            await #expect(throws: StoreError.self) { try await store.importHistory(history) }
            #expect(try await store.latest()?.number == 6)
        }
    }

    @Test func aHistoryThatDoesNotCheckIsRefusedWithTheRow() async throws {
        let file = try TemporaryStoreFile()
        let source = try await StoreFixtures.store(file)
        try await Self.fill(source)
        var gap = try await source.exportHistory()
        gap.revisions.remove(at: 2)
        #expect(throws: StoreError.rejected("revision 4 is out of order: expected 3 (no gaps)")) { try gap.check() }
        var dangling = try await source.exportHistory()
        dangling.revisions.removeLast(4)
        dangling.ruleNames.removeAll()
        #expect(throws: StoreError.self) { try dangling.check() }

        let empty = try TemporaryStoreFile()
        let destination = try await StoreFixtures.store(empty, seeded: false)
        await #expect(throws: StoreError.self) { try await destination.importHistory(gap) }
        #expect(try await destination.latest() == nil)
    }
}
