import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// The newest revision, or nil when there is none.
    ///
    /// Shared by reads, commits (inside their write transaction) and the watcher, each with its object cache.
    static func fetchLatest(_ db: Database, path: String, cache: ObjectCache) throws -> StoredRevision? {
        try Self.fetchResolved(db, number: nil, path: path, cache: cache)?.revision
    }

    /// Revision `number`, or nil when there is none.
    ///
    /// Shared by reads, rollbacks and the watcher.
    static func fetchRevision(_ db: Database, number: Int, path: String, cache: ObjectCache) throws -> StoredRevision? {
        try Self.fetchResolved(db, number: number, path: path, cache: cache)?.revision
    }

    /// The newest revision number, or 0 when the store is empty.
    ///
    /// What `expectRevision` is compared with, and what the watcher checks before loading a snapshot.
    static func fetchLatestNumber(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "SELECT MAX(number) FROM revisions") ?? 0
    }

    /// A `revisions` row without its snapshot as a `RevisionSummary`.
    ///
    /// History listings never decode snapshots, so a long history stays cheap to list.
    static func revisionSummary(_ row: Row) -> RevisionSummary {
        let routesChanged: String = row["routes_changed"]
        return RevisionSummary(
            number: row["number"],
            author: row["author"],
            reason: row["reason"],
            createdAt: row["created_at"],
            summary: row["summary"],
            routesChanged: (try? JSONDecoder().decode([String].self, from: Data(routesChanged.utf8))) ?? []
        )
    }

    /// An `audit` row as an `AuditEntry`.
    ///
    /// Kept next to the other row conversions so that column names live in one file.
    static func auditEntry(_ row: Row) -> AuditEntry {
        AuditEntry(
            id: row["id"],
            revision: row["revision"],
            time: row["time"],
            author: row["author"],
            reason: row["reason"],
            action: row["action"],
            detail: row["detail"]
        )
    }

    /// A `proxies` row as a `ProxyHeartbeat`.
    ///
    /// See `auditEntry(_:)`.
    static func proxyHeartbeat(_ row: Row) -> ProxyHeartbeat {
        ProxyHeartbeat(
            id: row["id"],
            listen: row["listen"],
            revision: row["revision"],
            startedAt: row["started_at"],
            lastSeen: row["last_seen"]
        )
    }

    /// A configuration as the JSON text of a snapshot, with sorted keys.
    ///
    /// Sorted keys make equal configurations byte-for-byte equal snapshots, which keeps `sqlite3` dumps diffable.
    static func encodeSnapshot(_ configuration: FicusCore.Configuration) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(configuration), as: UTF8.self)
    }

    /// A snapshot's JSON text as a configuration.
    ///
    /// Fails with `StoreError.unreadable` naming the revision, since a bad snapshot is a damaged store.
    static func decodeSnapshot(_ text: String, revision: Int, path: String) throws -> FicusCore.Configuration {
        do {
            return try JSONDecoder().decode(FicusCore.Configuration.self, from: Data(text.utf8))
        } catch {
            throw StoreError.unreadable(path: path, detail: "revision \(revision) cannot be decoded (\(error))")
        }
    }

    /// A JSON array of strings.
    ///
    /// The `routes_changed` column, searched with `json_each` by `history(limit:route:)`.
    static func encodeNames(_ names: [String]) throws -> String {
        String(decoding: try JSONEncoder().encode(names), as: UTF8.self)
    }
}
