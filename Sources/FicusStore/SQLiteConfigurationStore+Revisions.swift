import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    public func latest() async throws -> StoredRevision? {
        try await self.perform {
            try await self.read { db, cache in
                try Self.fetchLatest(db, path: self.path, cache: cache)
            }
        }
    }

    public func revision(_ number: Int) async throws -> StoredRevision {
        try await self.perform {
            try await self.read { db, cache in
                guard let revision = try Self.fetchRevision(db, number: number, path: self.path, cache: cache) else {
                    throw StoreError.noSuchRevision(number)
                }
                return revision
            }
        }
    }

    public func history(limit: Int?, route: String?) async throws -> [RevisionSummary] {
        try await self.perform {
            try await self.pool.read { db in
                let rows = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT number, author, reason, created_at, summary, routes_changed
                        FROM revisions
                        WHERE :route IS NULL
                            OR EXISTS (SELECT 1 FROM json_each(revisions.routes_changed) WHERE value = :route)
                        ORDER BY number DESC
                        LIMIT :limit
                        """,
                    arguments: ["route": route, "limit": limit.map { max(0, $0) } ?? -1]
                )
                return rows.map(Self.revisionSummary)
            }
        }
    }

    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        change: @Sendable (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.perform {
            try await self.write { db, cache in
                let previous = try Self.fetchResolved(db, number: nil, path: self.path, cache: cache, forCommit: true)
                let actual = previous?.revision.number ?? 0
                if let expected = expectRevision, expected != actual {
                    throw StoreError.revisionMismatch(expected: expected, actual: actual)
                }
                let before = previous?.revision.configuration ?? FicusCore.Configuration()
                var configuration = before
                do {
                    try change(&configuration)
                } catch {
                    throw ChangeFailed(error: error)
                }
                try previous?.requireReadableRoutes(store: self.path)
                try self.refuseRetiredRuleNames(db, cache, configuration, previous: before, restoredFrom: restoredFrom)
                return try self.insertRevision(
                    db,
                    configuration,
                    number: actual + 1,
                    previous: previous,
                    author: author,
                    summary: nil
                )
            }
        }
    }

    @discardableResult
    public func rollback(to number: Int, _ author: ChangeAuthor) async throws -> StoredRevision {
        try await self.perform {
            try await self.write { db, cache in
                guard let target = try Self.fetchRevision(db, number: number, path: self.path, cache: cache) else {
                    throw StoreError.noSuchRevision(number)
                }
                // A newest revision that cannot be decoded must not block the way out of it: the rollback is then
                // compared with an empty configuration, which only affects its routes_changed and audit detail.
                let newest = try Self.fetchLatestNumber(db)
                let previous = try? Self.fetchResolved(db, number: nil, path: self.path, cache: cache, forCommit: true)
                return try self.insertRevision(
                    db,
                    target.configuration,
                    number: newest + 1,
                    previous: previous ?? nil,
                    author: author,
                    summary: "rollback to \(number)"
                )
            }
        }
    }

    /// Validates `configuration` and writes it as revision `number`, the one after `previous`, with its audit entry.
    ///
    /// Runs inside the caller's write transaction, so the check of the previous revision, the validation and every
    /// insert are one atomic step: an invalid or unchanged configuration throws and nothing is written. Only object
    /// versions the store does not hold are written, and the revision row holds their ids (whole at a checkpoint,
    /// otherwise as changes from it). The configuration is compared and returned as it reads back from its objects,
    /// so the returned revision equals what `revision(_:)` and watchers will load.
    func insertRevision(
        _ db: Database,
        _ configuration: FicusCore.Configuration,
        number: Int,
        previous: ResolvedRevision?,
        author: ChangeAuthor,
        summary: String?
    ) throws -> StoredRevision {
        let draft = try RevisionDraft(configuration, previous: previous, summary: summary)
        let stored = try Self.storeObjects(db, draft, number: number, previous: previous)
        try db.execute(
            sql: """
                INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint, layout)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                """,
            arguments: [
                number, author.author, author.reason, self.now(), draft.summary,
                try Self.encodeNames(draft.routesChanged), stored.layout.checkpoint, stored.layout.json,
            ]
        )
        try Self.recordRuleNames(db, routes: draft.newRoutes, revision: number)
        let createdAt = try Date.fetchOne(
            db,
            sql: "SELECT created_at FROM revisions WHERE number = ?",
            arguments: [number]
        )
        try db.execute(
            sql: "INSERT INTO audit (revision, time, author, reason, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
            arguments: [
                number, createdAt, author.author, author.reason, author.action, draft.detail,
            ]
        )
        return StoredRevision(
            number: number,
            author: author.author,
            reason: author.reason,
            createdAt: createdAt ?? self.now(),
            summary: draft.summary,
            configuration: draft.configuration
        )
    }
}
