import FicusCore
import Foundation
import GRDB

/// Revisions as lists of content-addressed object versions (`config_objects`), stored whole at checkpoints and as
/// changes in between (`RevisionLayout`; docs/FLEET.md, "How revisions are stored").
extension SQLiteConfigurationStore {
    /// Migration "v7-objects": the `config_objects` table, and `revisions` rebuilt with `checkpoint` and `layout`
    /// columns in place of the whole `snapshot`, every existing revision converted in order.
    ///
    /// SQLite cannot drop a column that a CHECK names, so the table is rebuilt (create, copy, drop, rename); the
    /// triggers that keep revisions immutable are created again on the new table. Foreign keys are checked by the
    /// migrator when the migration ends.
    static func migrateToObjects(_ db: Database) throws {
        try db.execute(
            sql: """
                CREATE TABLE config_objects (
                    id INTEGER PRIMARY KEY,
                    digest TEXT NOT NULL UNIQUE,
                    kind TEXT NOT NULL CHECK (kind IN ('settings', 'upstream', 'segment', 'flag', 'route')),
                    name TEXT NOT NULL,
                    body TEXT NOT NULL CHECK (json_valid(body))
                );
                CREATE TRIGGER config_objects_are_immutable BEFORE UPDATE ON config_objects BEGIN
                    SELECT RAISE(ABORT, 'object versions are immutable: store a new version instead');
                END;
                CREATE TRIGGER config_objects_are_kept BEFORE DELETE ON config_objects BEGIN
                    SELECT RAISE(ABORT, 'object versions are never deleted: revisions name them');
                END;
                CREATE TABLE revisions_v7 (
                    number INTEGER PRIMARY KEY,
                    author TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_at DATETIME NOT NULL,
                    summary TEXT NOT NULL,
                    routes_changed TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(routes_changed)),
                    checkpoint INTEGER NOT NULL REFERENCES revisions_v7(number) CHECK (checkpoint <= number),
                    layout TEXT NOT NULL CHECK (json_valid(layout))
                );
                """
        )
        var previous: ResolvedRevision?
        let rows = try Row.fetchCursor(db, sql: "SELECT * FROM revisions ORDER BY number")
        while let row = try rows.next() {
            let number: Int = row["number"]
            // A snapshot this binary cannot read would be lost by the conversion: refuse, and the migration (and the
            // open) fails with the revision named, leaving the file as it was.
            let configuration = try Self.decodeSnapshot(row["snapshot"], revision: number, path: db.description)
            let draft = try RevisionDraft(configuration, previous: previous, summary: nil, checked: false)
            let stored = try Self.storeObjects(db, draft, number: number, previous: previous)
            try db.execute(
                sql: """
                    INSERT INTO revisions_v7 (number, author, reason, created_at, summary, routes_changed, checkpoint,
                        layout)
                    SELECT number, author, reason, created_at, summary, routes_changed, ?, ? FROM revisions
                    WHERE number = ?
                    """,
                arguments: [stored.layout.checkpoint, stored.layout.json, number]
            )
            previous = ResolvedRevision(
                copied: Self.revisionSummary(row),
                draft: draft,
                stored: stored,
                previous: previous
            )
        }
        try db.execute(
            sql: """
                DROP TABLE revisions;
                ALTER TABLE revisions_v7 RENAME TO revisions;
                CREATE TRIGGER revisions_are_immutable BEFORE UPDATE ON revisions BEGIN
                    SELECT RAISE(ABORT, 'revisions are immutable: write a new revision instead');
                END;
                CREATE TRIGGER revisions_are_kept BEFORE DELETE ON revisions BEGIN
                    SELECT RAISE(ABORT, 'revisions are never deleted: history is not rewritten');
                END;
                """
        )
    }

    /// Revision `number` (the newest when nil) with its object ids, or nil when there is none.
    ///
    /// Reads the revision's row, its checkpoint's list (cached) and the object versions `cache` does not hold.
    /// `forCommit` leaves routes undecoded until used (see `ResolvedRevision.Read.lazyRoutes`).
    static func fetchResolved(
        _ db: Database,
        number: Int?,
        path: String,
        cache: ObjectCache,
        forCommit: Bool = false
    ) throws -> ResolvedRevision? {
        let row: Row?
        if let number {
            row = try Row.fetchOne(db, sql: "SELECT * FROM revisions WHERE number = ?", arguments: [number])
        } else {
            row = try Row.fetchOne(db, sql: "SELECT * FROM revisions ORDER BY number DESC LIMIT 1")
        }
        guard let row else {
            return nil
        }
        let number: Int = row["number"]
        do {
            var read = try ResolvedRevision.Read(
                number: number,
                checkpoint: row["checkpoint"],
                layout: row["layout"],
                cache: cache,
                lazyRoutes: forCommit
            )
            if let base = read.checkpointWanted {
                try read.takeCheckpoint(
                    try String.fetchOne(db, sql: "SELECT layout FROM revisions WHERE number = ?", arguments: [base])
                )
            }
            let header = StoredRevision(
                number: number,
                author: row["author"],
                reason: row["reason"],
                createdAt: row["created_at"],
                summary: row["summary"],
                configuration: FicusCore.Configuration()
            )
            while true {
                if let resolved = try read.take(try Self.fetchObjects(db, ids: read.wanted), header: header) {
                    return resolved
                }
            }
        } catch let error as DatabaseError {
            throw error
        } catch {
            throw StoreError.unreadable(path: path, detail: "revision \(number) cannot be decoded (\(error))")
        }
    }

    /// The object versions with these ids, decoded.
    static func fetchObjects(_ db: Database, ids: [Int]) throws -> [StoredObject] {
        guard !ids.isEmpty else {
            return []
        }
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT id, kind, name, body FROM config_objects WHERE id IN (SELECT value FROM json_each(?))",
            arguments: [try Self.encodeIDs(ids)]
        )
        return try rows.map { row in
            try StoredObject(id: row["id"], kind: row["kind"], name: row["name"], body: row["body"])
        }
    }

    /// The keys of the object versions with these ids.
    static func fetchKeys(_ db: Database, ids: [Int]) throws -> [Int: ConfigurationObject.Key] {
        let rows = try Row.fetchAll(
            db,
            sql: "SELECT id, kind, name FROM config_objects WHERE id IN (SELECT value FROM json_each(?))",
            arguments: [try Self.encodeIDs(ids)]
        )
        var keys: [Int: ConfigurationObject.Key] = [:]
        for row in rows {
            if let kind = ConfigurationObject.Kind(rawValue: row["kind"]) {
                keys[row["id"]] = ConfigurationObject.Key(kind: kind, name: row["name"])
            }
        }
        return keys
    }

    /// Stores the draft's new object versions (each distinct version once) and lays out revision `number`.
    ///
    /// Returns the layout and the revision's ids in order; the caller writes the `revisions` row.
    static func storeObjects(
        _ db: Database,
        _ draft: RevisionDraft,
        number: Int,
        previous: ResolvedRevision?
    ) throws -> (layout: RevisionLayout, ids: [Int]) {
        var ids: [String: Int] = [:]
        for object in draft.newObjects {
            let key = object.object.key
            try db.execute(
                sql: "INSERT OR IGNORE INTO config_objects (digest, kind, name, body) VALUES (?, ?, ?, ?)",
                arguments: [object.digest, key.kind.rawValue, key.name, object.body]
            )
            guard
                let id = try Int.fetchOne(
                    db,
                    sql: "SELECT id FROM config_objects WHERE digest = ?",
                    arguments: [object.digest]
                )
            else {
                throw StoreError.rejected("object version \(object.digest) was not stored")
            }
            ids[object.digest] = id
        }
        let target = try draft.target(ids: ids)
        let unknown = draft.unknownKeys(target: target, previous: previous)
        let layout = draft.layout(
            number: number,
            target: target,
            previous: previous,
            fetchedKeys: unknown.isEmpty ? [:] : try Self.fetchKeys(db, ids: unknown)
        )
        return (layout, target.map(\.id))
    }

    /// A JSON array of ids, for `json_each`.
    static func encodeIDs(_ ids: [Int]) throws -> String {
        String(decoding: try JSONEncoder().encode(ids), as: UTF8.self)
    }
}

extension SQLiteConfigurationStore {
    /// How revision `number` is stored, and the object versions the store holds.
    public func revisionStorage(_ number: Int) async throws -> RevisionStorage {
        try await self.perform {
            try await self.pool.read { db in
                guard
                    let row = try Row.fetchOne(
                        db,
                        sql: """
                            SELECT checkpoint, layout, (SELECT COUNT(*) FROM config_objects) AS objects,
                                (SELECT COALESCE(SUM(length(CAST(body AS BLOB))), 0) FROM config_objects) AS bytes
                            FROM revisions WHERE number = ?
                            """,
                        arguments: [number]
                    )
                else {
                    throw StoreError.noSuchRevision(number)
                }
                let json: String = row["layout"]
                let layout = try RevisionLayout(checkpoint: row["checkpoint"], json: json)
                return RevisionStorage(
                    checkpoint: layout.checkpoint,
                    layoutBytes: json.utf8.count,
                    changes: layout.deltaCount,
                    objects: row["objects"],
                    objectBytes: row["bytes"]
                )
            }
        }
    }
}
