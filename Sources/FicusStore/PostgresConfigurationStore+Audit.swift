import Foundation
import PostgresNIO

extension PostgresConfigurationStore {
    public func appendAudit(_ author: ChangeAuthor, revision: Int?, detail: String) async throws {
        try await self.perform { session in
            if let revision {
                let exists = try await session.row("SELECT 1 AS one FROM revisions WHERE number = \(revision)")
                guard exists != nil else {
                    throw StoreError.noSuchRevision(revision)
                }
            }
            try await self.insertAudit(session, author, revision: revision, detail: detail)
        }
    }

    public func audit(limit: Int?) async throws -> [AuditEntry] {
        try await self.perform { session in
            try await session.rows("SELECT * FROM audit ORDER BY id DESC LIMIT \(limit.map { max(0, $0) })")
                .map(Self.auditEntry)
        }
    }

    /// An `audit` row.
    static func auditEntry(_ row: PostgresRandomAccessRow) throws -> AuditEntry {
        AuditEntry(
            id: try row["id"].decode(Int.self),
            revision: try row["revision"].decode(Int?.self),
            time: try row["time"].decode(Date.self),
            author: try row["author"].decode(String.self),
            reason: try row["reason"].decode(String.self),
            action: try row["action"].decode(String.self),
            detail: try row["detail"].decode(String.self)
        )
    }

    /// Records the proxy with `last_seen` on the database's clock, so that "seen within" never depends on how well
    /// the fleet's hosts agree on the time.
    public func heartbeat(_ proxy: ProxyHeartbeat) async throws {
        try await self.perform { session in
            try await session.execute(
                """
                INSERT INTO proxies (id, listen, revision, started_at, last_seen)
                VALUES (\(proxy.id), \(proxy.listen), \(proxy.revision), \(proxy.startedAt), clock_timestamp())
                ON CONFLICT (id) DO UPDATE SET
                    listen = excluded.listen, revision = excluded.revision, started_at = excluded.started_at,
                    last_seen = excluded.last_seen
                """
            )
        }
    }

    public func proxies(seenWithin interval: TimeInterval) async throws -> [ProxyHeartbeat] {
        try await self.perform { session in
            try await session.rows(
                """
                SELECT * FROM proxies WHERE last_seen >= clock_timestamp() - make_interval(secs => \(interval))
                ORDER BY id
                """
            )
            .map { row in
                ProxyHeartbeat(
                    id: try row["id"].decode(String.self),
                    listen: try row["listen"].decode(String.self),
                    revision: try row["revision"].decode(Int.self),
                    startedAt: try row["started_at"].decode(Date.self),
                    lastSeen: try row["last_seen"].decode(Date.self)
                )
            }
        }
    }

    /// Appends one audit line at the database's time, in the caller's transaction.
    func insertAudit(_ session: PostgresSession, _ author: ChangeAuthor, revision: Int?, detail: String) async throws {
        try await session.execute(
            """
            INSERT INTO audit (revision, time, author, reason, action, detail)
            VALUES (\(revision), clock_timestamp(), \(author.author), \(author.reason), \(author.action), \(detail))
            """
        )
    }
}
