import FicusCore
import Foundation
import GRDB

/// The stored blue-green state of one upstream, with the version its next write must name.
///
/// The state itself is opaque here (FicusRollout's `BlueGreenState` as JSON), so the store does not depend on it.
public struct BlueGreenRow: Sendable, Equatable {
    /// The upstream's name.
    ///
    /// The primary key.
    public var upstream: String

    /// The state as JSON.
    ///
    /// Checks and the slot to switch back to: what the configuration does not hold.
    public var stateJSON: Data

    /// Incremented by every write.
    ///
    /// A write names the version it read, so two commands racing on one upstream cannot both win.
    public var version: Int

    /// Creates a row.
    ///
    /// See the properties.
    public init(upstream: String, stateJSON: Data, version: Int) {
        self.upstream = upstream
        self.stateJSON = stateJSON
        self.version = version
    }
}

/// A blue-green write that lost a race: the state or the configuration changed since it was read.
///
/// The command reads again and decides again rather than applying a decision made on stale facts.
public struct BlueGreenConflict: Error, Sendable, Equatable, CustomStringConvertible {
    /// The upstream written.
    ///
    /// Named in the message.
    public var upstream: String

    /// What changed meanwhile.
    ///
    /// Named in the message.
    public var detail: String

    public var description: String {
        "upstream '\(self.upstream)': \(self.detail); run the command again"
    }
}

extension SQLiteConfigurationStore {
    /// Migration "v5-bluegreen": one row per blue-green upstream that a `ficus bluegreen` command touched.
    ///
    /// The slots live in the configuration; this row keeps what must outlive a revision (checks, the previous slot).
    static func migrateBlueGreen(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE bluegreen (
                    upstream TEXT PRIMARY KEY,
                    state_json TEXT NOT NULL CHECK (json_valid(state_json)),
                    version INTEGER NOT NULL,
                    updated_at DATETIME NOT NULL
                ) WITHOUT ROWID;
                """
        )
    }

    /// The stored blue-green state of `upstream`, or nil if no blue-green command wrote one.
    ///
    /// Read before deciding; the decision's write names the row's version.
    public func blueGreen(upstream: String) async throws -> BlueGreenRow? {
        try await self.perform {
            try await self.pool.read { db in
                try Self.fetchBlueGreen(db, upstream: upstream)
            }
        }
    }

    /// Stores `stateJSON` for `upstream` and applies `change` as one revision, in one transaction; the revision, or
    /// nil when `change` is nil or changed nothing (then the audit log gets `author`'s reason without a revision).
    ///
    /// `expectVersion` (0: no row yet) and `expectRevision` make the write a compare-and-swap over both the state and
    /// the configuration the decision was made on.
    @discardableResult
    public func writeBlueGreen(
        upstream: String,
        stateJSON: Data,
        expectVersion: Int,
        expectRevision: Int,
        author: ChangeAuthor,
        change: (@Sendable (inout FicusCore.Configuration) throws -> Void)?
    ) async throws -> StoredRevision? {
        try await self.perform {
            try await self.write { db, cache in
                let stored = try Self.fetchBlueGreen(db, upstream: upstream)
                guard (stored?.version ?? 0) == expectVersion else {
                    throw ChangeFailed(
                        error: BlueGreenConflict(upstream: upstream, detail: "its blue-green state changed meanwhile"))
                }
                let latest = try Self.fetchLatestNumber(db)
                guard latest == expectRevision else {
                    throw ChangeFailed(
                        error: BlueGreenConflict(
                            upstream: upstream,
                            detail: "the configuration changed meanwhile (revision \(latest))"
                        )
                    )
                }
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
                try db.execute(
                    sql: """
                        INSERT OR REPLACE INTO bluegreen (upstream, state_json, version, updated_at)
                        VALUES (?, ?, ?, ?)
                        """,
                    arguments: [
                        upstream, String(decoding: stateJSON, as: UTF8.self), expectVersion + 1, self.now(),
                    ]
                )
                return revision
            }
        }
    }

    /// The `bluegreen` row of `upstream`, read in the caller's transaction.
    ///
    /// Shared by the read and the compare-and-swap write.
    static func fetchBlueGreen(_ db: Database, upstream: String) throws -> BlueGreenRow? {
        try Row.fetchOne(db, sql: "SELECT * FROM bluegreen WHERE upstream = ?", arguments: [upstream]).map { row in
            let state: String = row["state_json"]
            return BlueGreenRow(upstream: row["upstream"], stateJSON: Data(state.utf8), version: row["version"])
        }
    }
}
