import FicusCore
import Foundation
import PostgresNIO

extension PostgresConfigurationStore: HistoryStore {
    public func exportHistory() async throws -> StoreHistory {
        try await self.perform { session in
            // One snapshot of every table, however many commits land meanwhile.
            try await session.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            do {
                var history = StoreHistory()
                for row in try await session.rows("SELECT * FROM revisions ORDER BY number") {
                    let summary = try Self.revisionSummary(row)
                    guard let resolved = try await self.fetchResolved(session, number: summary.number) else {
                        throw StoreError.noSuchRevision(summary.number)
                    }
                    history.revisions.append(
                        StoreHistory.Revision(summary: summary, configuration: resolved.revision.configuration))
                }
                history.audit = try await session.rows("SELECT * FROM audit ORDER BY id").map(Self.auditEntry)
                history.ruleNames = try await session.rows("SELECT * FROM rule_names ORDER BY name").map { row in
                    StoreHistory.RuleName(
                        name: try row["name"].decode(String.self),
                        route: try row["route"].decode(String.self),
                        firstRevision: try row["first_revision"].decode(Int.self)
                    )
                }
                history.canaries = try await session.rows("SELECT * FROM canary ORDER BY route").map(Self.canaryRow)
                history.blueGreen = try await session.rows("SELECT * FROM bluegreen ORDER BY upstream").map { row in
                    StoreHistory.BlueGreen(
                        upstream: try row["upstream"].decode(String.self),
                        stateJSON: Data(try row["state_json"].decode(String.self).utf8),
                        version: try row["version"].decode(Int.self),
                        updatedAt: try row["updated_at"].decode(Date.self)
                    )
                }
                try await session.execute("COMMIT")
                return history
            } catch {
                try? await session.execute("ROLLBACK")
                throw error
            }
        }
    }

    /// See `HistoryStore.importHistory`; under the fleet's write lock, with one `NOTIFY` of the newest revision so
    /// that proxies already watching the empty database serve it at once.
    public func importHistory(_ history: StoreHistory) async throws {
        try history.check()
        let location = self.url.description
        try await self.write { session in
            let counts = try await session.row(
                "SELECT (SELECT COUNT(*) FROM revisions) AS revisions, (SELECT COUNT(*) FROM audit) AS audit")
            let revisions = try counts?["revisions"].decode(Int.self) ?? 0
            let audit = try counts?["audit"].decode(Int.self) ?? 0
            guard revisions == 0, audit == 0 else {
                throw StoreError.rejected(
                    "store '\(location)' is not empty (\(revisions) revisions, \(audit) audit entries): a copy goes "
                        + "into a new store only")
            }
            var previous: ResolvedRevision?
            for revision in history.revisions {
                let summary = revision.summary
                let draft = try RevisionDraft(revision.configuration, previous: previous, summary: nil, checked: false)
                let stored = try await Self.storeObjects(session, draft, number: summary.number, previous: previous)
                try await session.execute(
                    """
                    INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint,
                        layout)
                    VALUES (\(summary.number), \(summary.author), \(summary.reason), \(summary.createdAt),
                        \(summary.summary), \(summary.routesChanged), \(stored.layout.checkpoint),
                        \(stored.layout.json))
                    """
                )
                previous = ResolvedRevision(copied: summary, draft: draft, stored: stored, previous: previous)
            }
            for entry in history.audit {
                try await session.execute(
                    """
                    INSERT INTO audit (id, revision, time, author, reason, action, detail)
                    VALUES (\(entry.id), \(entry.revision), \(entry.time), \(entry.author), \(entry.reason),
                        \(entry.action), \(entry.detail))
                    """
                )
            }
            if let last = history.audit.map(\.id).max() {
                // Later entries continue after the copied ids.
                try await session.execute("SELECT setval('audit_id_seq', \(last))")
            }
            for name in history.ruleNames {
                try await session.execute(
                    """
                    INSERT INTO rule_names (name, route, first_revision)
                    VALUES (\(name.name), \(name.route), \(name.firstRevision))
                    """
                )
            }
            try await session.execute("DELETE FROM canary")
            for canary in history.canaries {
                try await session.execute(
                    """
                    INSERT INTO canary (route, state_json, active, rule_name, stickiness, version, updated_at)
                    VALUES (\(canary.route), \(String(decoding: canary.stateJSON, as: UTF8.self)), \(canary.active),
                        \(canary.ruleName), \(canary.stickiness?.description), \(canary.version), \(canary.updatedAt))
                    """
                )
            }
            try await session.execute("DELETE FROM bluegreen")
            for state in history.blueGreen {
                try await session.execute(
                    """
                    INSERT INTO bluegreen (upstream, state_json, version, updated_at)
                    VALUES (\(state.upstream), \(String(decoding: state.stateJSON, as: UTF8.self)), \(state.version),
                        \(state.updatedAt))
                    """
                )
            }
            if let newest = history.revisions.last?.number {
                try await session.execute("SELECT pg_notify(\(Self.channel), \(String(newest)))")
            }
        }
    }
}
