import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore: HistoryStore {
    public func exportHistory() async throws -> StoreHistory {
        let path = self.path
        return try await self.perform {
            try await self.pool.read { db in
                var history = StoreHistory()
                // A cache of its own: consecutive revisions share almost every object version, so each is decoded once.
                let cache = ObjectCache()
                history.revisions = try Row.fetchAll(db, sql: "SELECT * FROM revisions ORDER BY number").map { row in
                    let summary = Self.revisionSummary(row)
                    guard let resolved = try Self.fetchResolved(db, number: summary.number, path: path, cache: cache)
                    else {
                        throw StoreError.noSuchRevision(summary.number)
                    }
                    return StoreHistory.Revision(summary: summary, configuration: resolved.revision.configuration)
                }
                history.audit = try Row.fetchAll(db, sql: "SELECT * FROM audit ORDER BY id").map(Self.auditEntry)
                history.ruleNames = try Row.fetchAll(db, sql: "SELECT * FROM rule_names ORDER BY name").map { row in
                    StoreHistory.RuleName(name: row["name"], route: row["route"], firstRevision: row["first_revision"])
                }
                history.canaries = try Row.fetchAll(db, sql: "SELECT * FROM canary ORDER BY route").map(Self.canaryRow)
                history.blueGreen = try Row.fetchAll(db, sql: "SELECT * FROM bluegreen ORDER BY upstream").map { row in
                    let state: String = row["state_json"]
                    return StoreHistory.BlueGreen(
                        upstream: row["upstream"],
                        stateJSON: Data(state.utf8),
                        version: row["version"],
                        updatedAt: row["updated_at"]
                    )
                }
                return history
            }
        }
    }

    public func importHistory(_ history: StoreHistory) async throws {
        try history.check()
        let path = self.path
        try await self.perform {
            try await self.write { db in
            let revisions = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM revisions") ?? 0
            let audit = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM audit") ?? 0
            guard revisions == 0, audit == 0 else {
                throw StoreError.rejected(
                    "store '\(path)' is not empty (\(revisions) revisions, \(audit) audit entries): a copy goes into a "
                        + "new store only")
            }
            var previous: ResolvedRevision?
            for revision in history.revisions {
                let summary = revision.summary
                let draft = try RevisionDraft(revision.configuration, previous: previous, summary: nil, checked: false)
                let stored = try Self.storeObjects(db, draft, number: summary.number, previous: previous)
                try db.execute(
                    sql: """
                        INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint,
                            layout)
                        VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        summary.number, summary.author, summary.reason, summary.createdAt, summary.summary,
                        try Self.encodeNames(summary.routesChanged), stored.layout.checkpoint, stored.layout.json,
                    ]
                )
                previous = ResolvedRevision(copied: summary, draft: draft, stored: stored, previous: previous)
            }
            for entry in history.audit {
                try db.execute(
                    sql: """
                        INSERT INTO audit (id, revision, time, author, reason, action, detail)
                        VALUES (?, ?, ?, ?, ?, ?, ?)
                        """,
                    arguments: [
                        entry.id, entry.revision, entry.time, entry.author, entry.reason, entry.action, entry.detail,
                    ]
                )
            }
            for name in history.ruleNames {
                try db.execute(
                    sql: "INSERT INTO rule_names (name, route, first_revision) VALUES (?, ?, ?)",
                    arguments: [name.name, name.route, name.firstRevision]
                )
            }
            try db.execute(sql: "DELETE FROM canary")
            for canary in history.canaries {
                try Self.saveCanary(db, canary)
            }
            try db.execute(sql: "DELETE FROM bluegreen")
            for state in history.blueGreen {
                try db.execute(
                    sql: "INSERT INTO bluegreen (upstream, state_json, version, updated_at) VALUES (?, ?, ?, ?)",
                    arguments: [
                        state.upstream, String(decoding: state.stateJSON, as: UTF8.self), state.version,
                        state.updatedAt,
                    ]
                )
            }
            }
        }
    }
}
