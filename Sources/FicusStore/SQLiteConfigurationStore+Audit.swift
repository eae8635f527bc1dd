import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    public func appendAudit(_ author: ChangeAuthor, revision: Int?, detail: String) async throws {
        try await self.perform {
            try await self.write { db in
                if let revision {
                    let exists = try Bool.fetchOne(
                        db,
                        sql: "SELECT EXISTS (SELECT 1 FROM revisions WHERE number = ?)",
                        arguments: [revision]
                    )
                    guard exists == true else {
                        throw StoreError.noSuchRevision(revision)
                    }
                }
                try db.execute(
                    sql: "INSERT INTO audit (revision, time, author, reason, action, detail) VALUES (?, ?, ?, ?, ?, ?)",
                    arguments: [revision, self.now(), author.author, author.reason, author.action, detail]
                )
            }
        }
    }

    public func audit(limit: Int?) async throws -> [AuditEntry] {
        try await self.perform {
            try await self.pool.read { db in
                try Row.fetchAll(
                    db,
                    sql: "SELECT * FROM audit ORDER BY id DESC LIMIT ?",
                    arguments: [limit.map { max(0, $0) } ?? -1]
                )
                .map(Self.auditEntry)
            }
        }
    }

    public func heartbeat(_ proxy: ProxyHeartbeat) async throws {
        try await self.perform {
            try await self.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO proxies (id, listen, revision, started_at, last_seen) VALUES (?, ?, ?, ?, ?)
                        ON CONFLICT (id) DO UPDATE SET
                            listen = excluded.listen,
                            revision = excluded.revision,
                            started_at = excluded.started_at,
                            last_seen = excluded.last_seen
                        """,
                    arguments: [proxy.id, proxy.listen, proxy.revision, proxy.startedAt, proxy.lastSeen]
                )
            }
        }
    }

    public func proxies(seenWithin interval: TimeInterval) async throws -> [ProxyHeartbeat] {
        let cutoff = self.now().addingTimeInterval(-interval)
        return try await self.perform {
            try await self.pool.read { db in
                try Row.fetchAll(db, sql: "SELECT * FROM proxies WHERE last_seen >= ? ORDER BY id", arguments: [cutoff])
                    .map(Self.proxyHeartbeat)
            }
        }
    }
}
