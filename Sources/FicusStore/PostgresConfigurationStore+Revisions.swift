import FicusCore
import Foundation
import PostgresNIO

extension PostgresConfigurationStore: ConfigurationStore {
    public func latest() async throws -> StoredRevision? {
        try await self.perform { session in
            try await self.fetchLatest(session)
        }
    }

    public func revision(_ number: Int) async throws -> StoredRevision {
        try await self.perform { session in
            guard let revision = try await self.fetchRevision(session, number: number) else {
                throw StoreError.noSuchRevision(number)
            }
            return revision
        }
    }

    public func history(limit: Int?, route: String?) async throws -> [RevisionSummary] {
        try await self.perform { session in
            let rows = try await session.rows(
                """
                SELECT number, author, reason, created_at, summary, routes_changed FROM revisions
                WHERE \(route)::text IS NULL OR \(route) = ANY (routes_changed)
                ORDER BY number DESC
                LIMIT \(limit.map { max(0, $0) })
                """
            )
            return try rows.map(Self.revisionSummary)
        }
    }

    /// A `revisions` row without its snapshot, for history listings and `exportHistory`.
    static func revisionSummary(_ row: PostgresRandomAccessRow) throws -> RevisionSummary {
        RevisionSummary(
            number: try row["number"].decode(Int.self),
            author: try row["author"].decode(String.self),
            reason: try row["reason"].decode(String.self),
            createdAt: try row["created_at"].decode(Date.self),
            summary: try row["summary"].decode(String.self),
            routesChanged: try row["routes_changed"].decode([String].self)
        )
    }

    @discardableResult
    public func commit(
        _ author: ChangeAuthor,
        expectRevision: Int?,
        allowingRuleNamesFrom restoredFrom: Int?,
        change: @Sendable (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision {
        try await self.write { session in
            if let expected = expectRevision {
                let actual = try await self.latestNumber(session)
                guard expected == actual else {
                    throw StoreError.revisionMismatch(expected: expected, actual: actual)
                }
            }
            guard let revision = try await self.commitInTransaction(session, author, restoredFrom: restoredFrom, change)
            else {
                throw StoreError.noChange
            }
            return revision
        }
    }

    @discardableResult
    public func rollback(to number: Int, _ author: ChangeAuthor) async throws -> StoredRevision {
        try await self.write { session in
            try await self.rollbackInTransaction(session, to: number, author)
        }
    }

    public func ruleNamesEverUsed() async throws -> Set<String> {
        try await self.perform { session in
            Set(try await session.rows("SELECT name FROM rule_names").map { try $0["name"].decode(String.self) })
        }
    }

    // MARK: - Helpers

    /// The newest revision, or nil when there is none; in the caller's transaction when it has one.
    func fetchLatest(_ session: PostgresSession) async throws -> StoredRevision? {
        try await self.fetchResolved(session, number: nil)?.revision
    }

    /// Revision `number`, or nil.
    func fetchRevision(_ session: PostgresSession, number: Int) async throws -> StoredRevision? {
        try await self.fetchResolved(session, number: number)?.revision
    }

    /// The newest revision number, 0 for an empty store.
    func latestNumber(_ session: PostgresSession) async throws -> Int {
        try await session.row("SELECT COALESCE(MAX(number), 0) AS number FROM revisions")?["number"].decode(Int.self)
            ?? 0
    }

    /// Applies `change` to the newest configuration and writes it as the next revision, inside the caller's write
    /// transaction; nil when nothing changed.
    ///
    /// Errors of `change` pass unchanged (wrapped in `ChangeFailed` until `perform` unwraps them).
    func commitInTransaction(
        _ session: PostgresSession,
        _ author: ChangeAuthor,
        restoredFrom: Int?,
        _ change: (inout FicusCore.Configuration) throws -> Void
    ) async throws -> StoredRevision? {
        let previous = try await self.fetchResolved(session, number: nil, forCommit: true)
        let before = previous?.revision.configuration ?? FicusCore.Configuration()
        var configuration = before
        do {
            try change(&configuration)
        } catch {
            throw ChangeFailed(error: error)
        }
        try previous?.requireReadableRoutes(store: self.url.description)
        try await self.refuseRetiredRuleNames(session, configuration, previous: before, restoredFrom: restoredFrom)
        do {
            return try await self.insertRevision(
                session,
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

    /// Writes a copy of revision `number` as the next revision, inside the caller's write transaction.
    ///
    /// A newest revision that cannot be decoded must not block the way out of it, as in the SQLite store.
    func rollbackInTransaction(
        _ session: PostgresSession,
        to number: Int,
        _ author: ChangeAuthor
    ) async throws -> StoredRevision {
        guard let target = try await self.fetchRevision(session, number: number) else {
            throw StoreError.noSuchRevision(number)
        }
        let newest = try await self.latestNumber(session)
        let previous = try? await self.fetchResolved(session, number: nil, forCommit: true)
        return try await self.insertRevision(
            session,
            target.configuration,
            number: newest + 1,
            previous: previous ?? nil,
            author: author,
            summary: "rollback to \(number)"
        )
    }

    /// Validates `configuration` and writes it as revision `number` (its new object versions and its layout) with its
    /// rule names, its audit entry and the notification every watching proxy receives when the transaction commits.
    ///
    /// Times are the database's (`clock_timestamp()`, read after the write lock was taken, so they grow with the
    /// numbers); `NOTIFY` is delivered only on COMMIT, so no proxy hears of a revision that was rolled back.
    func insertRevision(
        _ session: PostgresSession,
        _ configuration: FicusCore.Configuration,
        number: Int,
        previous: ResolvedRevision?,
        author: ChangeAuthor,
        summary: String?
    ) async throws -> StoredRevision {
        let draft = try RevisionDraft(configuration, previous: previous, summary: summary)
        let stored = try await Self.storeObjects(session, draft, number: number, previous: previous)
        let inserted = try await session.row(
            """
            INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint, layout)
            VALUES (\(number), \(author.author), \(author.reason), clock_timestamp(), \(draft.summary),
                \(draft.routesChanged), \(stored.layout.checkpoint), \(stored.layout.json))
            RETURNING created_at
            """
        )
        let createdAt = try inserted?["created_at"].decode(Date.self) ?? Date()
        // Only routes with a new version can bring a rule name not recorded yet.
        let rules = draft.newRoutes.flatMap { route in route.rules.map { (route.name, $0.name) } }
        if !rules.isEmpty {
            try await session.execute(
                """
                INSERT INTO rule_names (name, route, first_revision)
                SELECT name, route, \(number) FROM unnest(\(rules.map(\.1)), \(rules.map(\.0))) AS given (name, route)
                ON CONFLICT (name) DO NOTHING
                """
            )
        }
        try await session.execute(
            """
            INSERT INTO audit (revision, time, author, reason, action, detail)
            VALUES (\(number), \(createdAt), \(author.author), \(author.reason), \(author.action), \(draft.detail))
            """
        )
        try await session.execute("SELECT pg_notify(\(Self.channel), \(String(number)))")
        return StoredRevision(
            number: number,
            author: author.author,
            reason: author.reason,
            createdAt: createdAt,
            summary: draft.summary,
            configuration: draft.configuration
        )
    }

    /// Throws `StoreError.ruleNameRetired` for the first rule of `configuration` whose name an earlier revision used
    /// and `previous` does not have, unless revision `restoredFrom` had it exactly so (see
    /// `SQLiteConfigurationStore.refuseRetiredRuleNames`, whose rule this is).
    func refuseRetiredRuleNames(
        _ session: PostgresSession,
        _ configuration: FicusCore.Configuration,
        previous: FicusCore.Configuration,
        restoredFrom: Int?
    ) async throws {
        let added = configuration.rulesWithNewNames(since: previous)
        guard !added.isEmpty else {
            return
        }
        let rows = try await session.rows(
            "SELECT name, route, first_revision FROM rule_names WHERE name = ANY (\(added.map(\.name)))"
        )
        var used: [String: (route: String, revision: Int)] = [:]
        for row in rows {
            used[try row["name"].decode(String.self)] = (
                try row["route"].decode(String.self), try row["first_revision"].decode(Int.self)
            )
        }
        var restorable: [String: Rule]?
        for rule in added {
            guard let first = used[rule.name] else {
                continue
            }
            if let restoredFrom {
                if restorable == nil {
                    guard let source = try await self.fetchRevision(session, number: restoredFrom) else {
                        throw StoreError.noSuchRevision(restoredFrom)
                    }
                    let rules = source.configuration.routes.flatMap(\.rules)
                    restorable = Dictionary(rules.map { ($0.name, $0) }, uniquingKeysWith: { first, _ in first })
                }
                if restorable?[rule.name] == rule {
                    continue
                }
            }
            throw StoreError.ruleNameRetired(name: rule.name, route: first.route, revision: first.revision)
        }
    }
}
