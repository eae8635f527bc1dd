import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore: RolloutStore {
    /// Migration "v4-canary": one row per route's canary, and one lease row per driven canary.
    ///
    /// `version` makes every canary write a compare-and-swap, so the CLI and the driving proxy can both apply events
    /// without a lock; the lease's `expires_at` is compared as stored, so a lease write is a compare-and-swap too.
    static func migrateCanary(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE canary (
                    route TEXT PRIMARY KEY,
                    state_json TEXT NOT NULL CHECK (json_valid(state_json)),
                    active INTEGER NOT NULL,
                    rule_name TEXT NOT NULL,
                    stickiness TEXT,
                    version INTEGER NOT NULL,
                    updated_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                CREATE TABLE canary_lease (
                    route TEXT PRIMARY KEY,
                    holder TEXT NOT NULL,
                    expires_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                """
        )
    }

    public func canary(route: String) async throws -> CanaryRow? {
        try await self.perform {
            try await self.pool.read { db in
                try Self.fetchCanary(db, route: route)
            }
        }
    }

    public func canaries(activeOnly: Bool) async throws -> [CanaryRow] {
        try await self.perform {
            try await self.pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM canary WHERE active = 1 OR ? = 0 ORDER BY route",
                    arguments: [activeOnly]
                )
                .map(Self.canaryRow)
            }
        }
    }

    @discardableResult
    public func writeCanary(
        _ row: CanaryRow,
        expectVersion: Int?,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> (row: CanaryRow, revision: StoredRevision?) {
        try await self.perform {
            try await self.write { db, cache in
                let stored = try Self.fetchCanary(db, route: row.route)
                try CanaryConflict.check(route: row.route, stored: stored, expectVersion: expectVersion)
                var revision: StoredRevision?
                if let change {
                    revision = try self.commitInTransaction(db, cache, author, restoredFrom: nil, change: change)
                }
                if revision == nil {
                    try db.execute(
                        sql: """
                            INSERT INTO audit (revision, time, author, reason, action, detail)
                            VALUES (NULL, ?, ?, ?, ?, ?)
                            """,
                        arguments: [self.now(), author.author, author.reason, author.action, author.reason]
                    )
                }
                var written = row
                written.version = (stored?.version ?? 0) + 1
                written.updatedAt = self.now()
                try Self.saveCanary(db, written)
                return (written, revision)
            }
        }
    }

    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        overridingCanaries hook: CanaryOverrideHook,
        change: @Sendable (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.perform {
            try await self.write { db, cache in
                let actual = try Self.fetchLatestNumber(db)
                if let expected = expectRevision, expected != actual {
                    throw StoreError.revisionMismatch(expected: expected, actual: actual)
                }
                var outcomes: [(CanaryRow, CanaryOverrideOutcome)] = []
                let revision = try self.commitInTransaction(db, cache, author, restoredFrom: restoredFrom) { configuration in
                    try change(&configuration)
                    outcomes = try Self.applyOverride(db, hook, to: &configuration)
                }
                guard let revision else {
                    throw StoreError.noChange
                }
                try self.saveOverrides(db, outcomes, revision: revision.number, author: author)
                return revision
            }
        }
    }

    @discardableResult
    public func rollback(
        to number: Int,
        _ author: ChangeAuthor,
        overridingCanaries hook: CanaryOverrideHook
    ) async throws -> StoredRevision {
        try await self.perform {
            try await self.write { db, cache in
                guard let target = try Self.fetchRevision(db, number: number, path: self.path, cache: cache) else {
                    throw StoreError.noSuchRevision(number)
                }
                let newest = try Self.fetchLatestNumber(db)
                let previous = try? Self.fetchResolved(db, number: nil, path: self.path, cache: cache, forCommit: true)
                var scratch = target.configuration
                let outcomes = try Self.applyOverride(db, hook, to: &scratch)
                let revision = try self.insertRevision(
                    db,
                    target.configuration,
                    number: newest + 1,
                    previous: previous ?? nil,
                    author: author,
                    summary: "rollback to \(number)"
                )
                try self.saveOverrides(db, outcomes, revision: revision.number, author: author)
                return revision
            }
        }
    }

    public func canaryLease(route: String) async throws -> CanaryLeaseRow? {
        try await self.perform {
            try await self.pool.read { db in
                try Row.fetchOne(db, sql: "SELECT * FROM canary_lease WHERE route = ?", arguments: [route]).map {
                    CanaryLeaseRow(holder: $0["holder"], expiresAt: $0["expires_at"])
                }
            }
        }
    }

    public func writeCanaryLease(
        route: String,
        _ lease: CanaryLeaseRow,
        replacing: CanaryLeaseRow?
    ) async throws -> Bool {
        try await self.perform {
            try await self.write { db in
                if let replacing {
                    try db.execute(
                        sql: """
                            UPDATE canary_lease SET holder = ?, expires_at = ?
                            WHERE route = ? AND holder = ? AND expires_at = ?
                            """,
                        arguments: [lease.holder, lease.expiresAt, route, replacing.holder, replacing.expiresAt]
                    )
                } else {
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO canary_lease (route, holder, expires_at) VALUES (?, ?, ?)",
                        arguments: [route, lease.holder, lease.expiresAt]
                    )
                }
                return db.changesCount == 1
            }
        }
    }

    public func releaseCanaryLease(route: String, holder: String) async throws {
        try await self.perform {
            try await self.write { db in
                try db.execute(
                    sql: "DELETE FROM canary_lease WHERE route = ? AND holder = ?",
                    arguments: [route, holder]
                )
            }
        }
    }

    // MARK: - Helpers

    /// Applies `change` to the newest configuration and writes it as the next revision, inside the caller's
    /// transaction; nil when nothing changed.
    ///
    /// The body of `commit`, shared so that a canary step and an operator's override commit with their own rows.
    func commitInTransaction(
        _ db: Database,
        _ cache: ObjectCache,
        _ author: ChangeAuthor,
        restoredFrom: Int?,
        change: (inout FicusCore.Configuration) throws -> Void
    ) throws -> StoredRevision? {
        let previous = try Self.fetchResolved(db, number: nil, path: self.path, cache: cache, forCommit: true)
        let before = previous?.revision.configuration ?? FicusCore.Configuration()
        var configuration = before
        do {
            try change(&configuration)
        } catch {
            throw ChangeFailed(error: error)
        }
        try previous?.requireReadableRoutes(store: self.path)
        try self.refuseRetiredRuleNames(db, cache, configuration, previous: before, restoredFrom: restoredFrom)
        do {
            return try self.insertRevision(
                db,
                configuration,
                number: (previous?.revision.number ?? 0) + 1,
                previous: previous,
                author: author,
                summary: nil
            )
        } catch StoreError.noChange {
            return nil
        }
    }

    /// Runs `hook` on every active canary of its routes; errors of the hook pass unchanged.
    ///
    /// Called inside the operator's transaction, so the rows read here are the rows overwritten.
    static func applyOverride(
        _ db: Database,
        _ hook: CanaryOverrideHook,
        to configuration: inout FicusCore.Configuration
    ) throws -> [(CanaryRow, CanaryOverrideOutcome)] {
        let rows = try Row.fetchAll(db, sql: "SELECT * FROM canary WHERE active = 1 ORDER BY route")
            .map(Self.canaryRow)
        return try hook.outcomes(for: rows, configuration: &configuration)
    }

    /// Stores the overridden canaries' states and their audit lines, tied to the operator's revision.
    ///
    /// The last step of the operator's transaction.
    func saveOverrides(
        _ db: Database,
        _ outcomes: [(CanaryRow, CanaryOverrideOutcome)],
        revision: Int,
        author: ChangeAuthor
    ) throws {
        for (row, outcome) in outcomes {
            var written = row
            written.stateJSON = outcome.stateJSON
            written.active = outcome.active
            written.version += 1
            written.updatedAt = self.now()
            try Self.saveCanary(db, written)
            if let line = outcome.auditLine {
                try db.execute(
                    sql: "INSERT INTO audit (revision, time, author, reason, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [revision, self.now(), author.author, line, "canary.override", line]
                )
            }
        }
    }

    /// The canary row of `route`, read in the caller's transaction.
    ///
    /// Shared by reads and compare-and-swap writes.
    static func fetchCanary(_ db: Database, route: String) throws -> CanaryRow? {
        try Row.fetchOne(db, sql: "SELECT * FROM canary WHERE route = ?", arguments: [route]).map(Self.canaryRow)
    }

    /// Inserts or replaces `row`.
    ///
    /// The version check happened before, in the same transaction.
    static func saveCanary(_ db: Database, _ row: CanaryRow) throws {
        try db.execute(
            sql: """
                INSERT OR REPLACE INTO canary (route, state_json, active, rule_name, stickiness, version, updated_at)
                VALUES (?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                row.route, String(decoding: row.stateJSON, as: UTF8.self), row.active, row.ruleName,
                row.stickiness?.description, row.version, row.updatedAt,
            ]
        )
    }

    /// Decodes a `canary` table row.
    ///
    /// The stickiness is stored as its text form (`header:X-User`).
    static func canaryRow(_ row: Row) -> CanaryRow {
        let stickiness: String? = row["stickiness"]
        let state: String = row["state_json"]
        return CanaryRow(
            route: row["route"],
            stateJSON: Data(state.utf8),
            active: row["active"],
            ruleName: row["rule_name"],
            stickiness: stickiness.flatMap(Attribute.init),
            version: row["version"],
            updatedAt: row["updated_at"]
        )
    }
}
