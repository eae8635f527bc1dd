import FicusCore
import Foundation
import PostgresNIO

extension PostgresConfigurationStore: RolloutStore, BlueGreenStore {
    public func canary(route: String) async throws -> CanaryRow? {
        try await self.perform { session in
            try await session.row("SELECT * FROM canary WHERE route = \(route)").map(Self.canaryRow)
        }
    }

    public func canaries(activeOnly: Bool) async throws -> [CanaryRow] {
        try await self.perform { session in
            try await session.rows("SELECT * FROM canary WHERE active OR NOT \(activeOnly) ORDER BY route")
                .map(Self.canaryRow)
        }
    }

    @discardableResult
    public func writeCanary(
        _ row: CanaryRow,
        expectVersion: Int?,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> (row: CanaryRow, revision: StoredRevision?) {
        try await self.write { session in
            let stored = try await session.row("SELECT * FROM canary WHERE route = \(row.route)").map(Self.canaryRow)
            try CanaryConflict.check(route: row.route, stored: stored, expectVersion: expectVersion)
            var revision: StoredRevision?
            if let change {
                revision = try await self.commitInTransaction(session, author, restoredFrom: nil, change)
            }
            if revision == nil {
                try await self.insertAudit(session, author, revision: nil, detail: author.reason)
            }
            var written = row
            written.version = (stored?.version ?? 0) + 1
            written.updatedAt = try await self.saveCanary(session, written)
            try await self.notifyRollout(session)
            return (written, revision)
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
        try await self.write { session in
            let actual = try await self.latestNumber(session)
            if let expected = expectRevision, expected != actual {
                throw StoreError.revisionMismatch(expected: expected, actual: actual)
            }
            let active = try await self.activeCanaries(session)
            var outcomes: [(CanaryRow, CanaryOverrideOutcome)] = []
            let revision = try await self.commitInTransaction(session, author, restoredFrom: restoredFrom) {
                configuration in
                try change(&configuration)
                outcomes = try hook.outcomes(for: active, configuration: &configuration)
            }
            guard let revision else {
                throw StoreError.noChange
            }
            try await self.saveOverrides(session, outcomes, revision: revision.number, author: author)
            return revision
        }
    }

    @discardableResult
    public func rollback(
        to number: Int,
        _ author: ChangeAuthor,
        overridingCanaries hook: CanaryOverrideHook
    ) async throws -> StoredRevision {
        try await self.write { session in
            guard var scratch = try await self.fetchRevision(session, number: number)?.configuration else {
                throw StoreError.noSuchRevision(number)
            }
            let active = try await self.activeCanaries(session)
            let outcomes = try hook.outcomes(for: active, configuration: &scratch)
            let revision = try await self.rollbackInTransaction(session, to: number, author)
            try await self.saveOverrides(session, outcomes, revision: revision.number, author: author)
            return revision
        }
    }

    public func canaryLease(route: String) async throws -> CanaryLeaseRow? {
        try await self.perform { session in
            let row = try await session.row(
                "SELECT holder, expires_at, clock_timestamp() AS now FROM canary_lease WHERE route = \(route)"
            )
            guard let row else {
                self.leaseReads.withLockedValue { $0[route] = nil }
                return nil
            }
            let stored = try row["expires_at"].decode(Date.self)
            let databaseNow = try row["now"].decode(Date.self)
            // The remaining time by the database's clock, counted from this host's now.
            let shown = CanaryLeaseRow(
                holder: try row["holder"].decode(String.self),
                expiresAt: Date().addingTimeInterval(stored.timeIntervalSince(databaseNow))
            )
            self.leaseReads.withLockedValue { $0[route] = (shown, stored) }
            return shown
        }
    }

    public func writeCanaryLease(
        route: String,
        _ lease: CanaryLeaseRow,
        replacing: CanaryLeaseRow?
    ) async throws -> Bool {
        // The lease lasts what the controller asked for, counted on the database's clock.
        let seconds = lease.expiresAt.timeIntervalSince(Date())
        if let replacing {
            guard let read = self.leaseReads.withLockedValue({ $0[route] }), read.shown == replacing else {
                // Not the row this store handed out: the caller decided on something it did not read here.
                return false
            }
            return try await self.perform { session in
                let rows = try await session.rows(
                    """
                    UPDATE canary_lease
                    SET holder = \(lease.holder), expires_at = clock_timestamp() + make_interval(secs => \(seconds))
                    WHERE route = \(route) AND holder = \(replacing.holder) AND expires_at = \(read.stored)
                    RETURNING route
                    """
                )
                return rows.count == 1
            }
        }
        return try await self.perform { session in
            let rows = try await session.rows(
                """
                INSERT INTO canary_lease (route, holder, expires_at)
                VALUES (\(route), \(lease.holder), clock_timestamp() + make_interval(secs => \(seconds)))
                ON CONFLICT (route) DO NOTHING
                RETURNING route
                """
            )
            return rows.count == 1
        }
    }

    public func releaseCanaryLease(route: String, holder: String) async throws {
        try await self.perform { session in
            try await session.execute("DELETE FROM canary_lease WHERE route = \(route) AND holder = \(holder)")
            // Another proxy takes the canary over now rather than at its next lease check.
            try await self.notifyRollout(session)
        }
    }

    /// `NOTIFY` of a rollout write (delivered at commit; at once outside a transaction).
    func notifyRollout(_ session: PostgresSession) async throws {
        try await session.execute("SELECT pg_notify(\(Self.channel), \(Self.rolloutPayload))")
    }

    public func blueGreen(upstream: String) async throws -> BlueGreenRow? {
        try await self.perform { session in
            try await session.row("SELECT * FROM bluegreen WHERE upstream = \(upstream)").map(Self.blueGreenRow)
        }
    }

    @discardableResult
    public func writeBlueGreen(
        upstream: String,
        stateJSON: Data,
        expectVersion: Int,
        expectRevision: Int,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> StoredRevision? {
        try await self.write { session in
            let stored = try await session.row("SELECT * FROM bluegreen WHERE upstream = \(upstream)")
                .map(Self.blueGreenRow)
            guard (stored?.version ?? 0) == expectVersion else {
                throw BlueGreenConflict(upstream: upstream, detail: "its blue-green state changed meanwhile")
            }
            let latest = try await self.latestNumber(session)
            guard latest == expectRevision else {
                throw BlueGreenConflict(
                    upstream: upstream,
                    detail: "the configuration changed meanwhile (revision \(latest))"
                )
            }
            var revision: StoredRevision?
            if let change {
                revision = try await self.commitInTransaction(session, author, restoredFrom: nil, change)
            }
            if revision == nil {
                try await self.insertAudit(session, author, revision: nil, detail: author.reason)
            }
            try await session.execute(
                """
                INSERT INTO bluegreen (upstream, state_json, version, updated_at)
                VALUES (\(upstream), \(String(decoding: stateJSON, as: UTF8.self)), \(expectVersion + 1),
                    clock_timestamp())
                ON CONFLICT (upstream) DO UPDATE SET
                    state_json = excluded.state_json, version = excluded.version, updated_at = excluded.updated_at
                """
            )
            try await self.notifyRollout(session)
            return revision
        }
    }

    // MARK: - Helpers

    /// The active canaries, read in the operator's transaction (the hook picks its routes).
    func activeCanaries(_ session: PostgresSession) async throws -> [CanaryRow] {
        try await session.rows("SELECT * FROM canary WHERE active ORDER BY route").map(Self.canaryRow)
    }

    /// Stores the overridden canaries' states and their audit lines, tied to the operator's revision.
    func saveOverrides(
        _ session: PostgresSession,
        _ outcomes: [(CanaryRow, CanaryOverrideOutcome)],
        revision: Int,
        author: ChangeAuthor
    ) async throws {
        for (row, outcome) in outcomes {
            var written = row
            written.stateJSON = outcome.stateJSON
            written.active = outcome.active
            written.version += 1
            _ = try await self.saveCanary(session, written)
            if let line = outcome.auditLine {
                let override = ChangeAuthor(author: author.author, reason: line, action: "canary.override")
                try await self.insertAudit(session, override, revision: revision, detail: line)
            }
        }
    }

    /// Inserts or replaces `row` (the version check happened before, in the same transaction); returns the time
    /// written, the database's.
    func saveCanary(_ session: PostgresSession, _ row: CanaryRow) async throws -> Date {
        let written = try await session.row(
            """
            INSERT INTO canary (route, state_json, active, rule_name, stickiness, version, updated_at)
            VALUES (\(row.route), \(String(decoding: row.stateJSON, as: UTF8.self)), \(row.active), \(row.ruleName),
                \(row.stickiness?.description), \(row.version), clock_timestamp())
            ON CONFLICT (route) DO UPDATE SET
                state_json = excluded.state_json, active = excluded.active, rule_name = excluded.rule_name,
                stickiness = excluded.stickiness, version = excluded.version, updated_at = excluded.updated_at
            RETURNING updated_at
            """
        )
        return try written?["updated_at"].decode(Date.self) ?? Date()
    }

    /// A `canary` row; the stickiness is stored as its text form (`header:X-User`).
    static func canaryRow(_ row: PostgresRandomAccessRow) throws -> CanaryRow {
        CanaryRow(
            route: try row["route"].decode(String.self),
            stateJSON: Data(try row["state_json"].decode(String.self).utf8),
            active: try row["active"].decode(Bool.self),
            ruleName: try row["rule_name"].decode(String.self),
            stickiness: try row["stickiness"].decode(String?.self).flatMap(Attribute.init),
            version: try row["version"].decode(Int.self),
            updatedAt: try row["updated_at"].decode(Date.self)
        )
    }

    /// A `bluegreen` row.
    static func blueGreenRow(_ row: PostgresRandomAccessRow) throws -> BlueGreenRow {
        BlueGreenRow(
            upstream: try row["upstream"].decode(String.self),
            stateJSON: Data(try row["state_json"].decode(String.self).utf8),
            version: try row["version"].decode(Int.self)
        )
    }
}
