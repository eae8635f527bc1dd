import FicusCore
import Foundation
import PostgresNIO

/// Revisions as lists of content-addressed object versions, as in the SQLite store
/// (SQLiteConfigurationStore+Objects.swift, whose layout this is).
extension PostgresConfigurationStore {
    /// Migration 3, `v3-objects`, before its conversion: the `config_objects` table (append-only, as revisions are)
    /// and the `checkpoint` and `layout` columns of `revisions`.
    static let objectTables: [String] = [
        """
        CREATE TABLE config_objects (
            id BIGSERIAL PRIMARY KEY,
            digest TEXT NOT NULL UNIQUE,
            kind TEXT NOT NULL CHECK (kind IN ('settings', 'upstream', 'segment', 'flag', 'route')),
            name TEXT NOT NULL,
            body TEXT NOT NULL CHECK (body::jsonb IS NOT NULL)
        )
        """,
        """
        CREATE TRIGGER config_objects_append_only BEFORE UPDATE OR DELETE ON config_objects
            FOR EACH ROW EXECUTE FUNCTION ficus_refuse_change()
        """,
        """
        CREATE TRIGGER config_objects_never_truncated BEFORE TRUNCATE ON config_objects
            FOR EACH STATEMENT EXECUTE FUNCTION ficus_refuse_change()
        """,
        "ALTER TABLE revisions ADD COLUMN checkpoint BIGINT REFERENCES revisions (number), ADD COLUMN layout TEXT",
    ]

    /// Migration 3 after its conversion: every revision has its layout, the snapshots go.
    static let objectTablesFinish: [String] = [
        """
        ALTER TABLE revisions ALTER COLUMN checkpoint SET NOT NULL, ALTER COLUMN layout SET NOT NULL,
            ADD CONSTRAINT revisions_checkpoint_precedes CHECK (checkpoint <= number),
            ADD CONSTRAINT revisions_layout_is_json CHECK (layout::jsonb IS NOT NULL),
            DROP COLUMN snapshot
        """
    ]

    /// Migration 3's conversion: each existing revision's snapshot stored as object versions and a layout, oldest
    /// first, with the append-only trigger of `revisions` off for the length of the migration's transaction.
    static func convertSnapshots(_ session: PostgresSession, location: String) async throws {
        try await session.execute("ALTER TABLE revisions DISABLE TRIGGER revisions_append_only")
        let numbers = try await session.rows("SELECT number FROM revisions ORDER BY number").map {
            try $0["number"].decode(Int.self)
        }
        var previous: ResolvedRevision?
        for number in numbers {
            guard let row = try await session.row("SELECT * FROM revisions WHERE number = \(number)") else {
                continue
            }
            // A snapshot this binary cannot read would be lost: the migration fails naming it, and rolls back.
            let configuration = try SQLiteConfigurationStore.decodeSnapshot(
                try row["snapshot"].decode(String.self),
                revision: number,
                path: location
            )
            let draft = try RevisionDraft(configuration, previous: previous, summary: nil, checked: false)
            let stored = try await Self.storeObjects(session, draft, number: number, previous: previous)
            try await session.execute(
                """
                UPDATE revisions SET checkpoint = \(stored.layout.checkpoint), layout = \(stored.layout.json)
                WHERE number = \(number)
                """
            )
            previous = ResolvedRevision(
                copied: try Self.revisionSummary(row),
                draft: draft,
                stored: stored,
                previous: previous
            )
        }
        try await session.execute("ALTER TABLE revisions ENABLE TRIGGER revisions_append_only")
    }

    /// Revision `number` (the newest when nil) with its object ids, or nil when there is none.
    /// `forCommit` leaves routes undecoded until used (see `ResolvedRevision.Read.lazyRoutes`).
    func fetchResolved(_ session: PostgresSession, number: Int?, forCommit: Bool = false) async throws -> ResolvedRevision? {
        let row: PostgresRandomAccessRow?
        if let number {
            row = try await session.row("SELECT * FROM revisions WHERE number = \(number)")
        } else {
            row = try await session.row("SELECT * FROM revisions ORDER BY number DESC LIMIT 1")
        }
        guard let row else {
            return nil
        }
        let number = try row["number"].decode(Int.self)
        let cache = self.objects
        do {
            var read = try ResolvedRevision.Read(
                number: number,
                checkpoint: try row["checkpoint"].decode(Int.self),
                layout: try row["layout"].decode(String.self),
                cache: cache,
                lazyRoutes: forCommit
            )
            if let base = read.checkpointWanted {
                try read.takeCheckpoint(
                    try await session.row("SELECT layout FROM revisions WHERE number = \(base)")?["layout"]
                        .decode(String.self)
                )
            }
            let header = StoredRevision(
                number: number,
                author: try row["author"].decode(String.self),
                reason: try row["reason"].decode(String.self),
                createdAt: try row["created_at"].decode(Date.self),
                summary: try row["summary"].decode(String.self),
                configuration: FicusCore.Configuration()
            )
            while true {
                if let resolved = try read.take(try await Self.fetchObjects(session, ids: read.wanted), header: header) {
                    return resolved
                }
            }
        } catch let error as PSQLError {
            throw error
        } catch {
            throw StoreError.unreadable(
                path: self.url.description,
                detail: "revision \(number) cannot be decoded (\(error))"
            )
        }
    }

    /// The object versions with these ids, decoded.
    static func fetchObjects(_ session: PostgresSession, ids: [Int]) async throws -> [StoredObject] {
        guard !ids.isEmpty else {
            return []
        }
        let rows = try await session.rows("SELECT id, kind, name, body FROM config_objects WHERE id = ANY (\(ids))")
        return try rows.map { row in
            try StoredObject(
                id: try row["id"].decode(Int.self),
                kind: try row["kind"].decode(String.self),
                name: try row["name"].decode(String.self),
                body: try row["body"].decode(String.self)
            )
        }
    }

    /// The keys of the object versions with these ids.
    static func fetchKeys(_ session: PostgresSession, ids: [Int]) async throws -> [Int: ConfigurationObject.Key] {
        var keys: [Int: ConfigurationObject.Key] = [:]
        for row in try await session.rows("SELECT id, kind, name FROM config_objects WHERE id = ANY (\(ids))") {
            if let kind = ConfigurationObject.Kind(rawValue: try row["kind"].decode(String.self)) {
                keys[try row["id"].decode(Int.self)] = ConfigurationObject.Key(
                    kind: kind,
                    name: try row["name"].decode(String.self)
                )
            }
        }
        return keys
    }

    /// Stores the draft's new object versions (two statements however many) and lays out revision `number`.
    static func storeObjects(
        _ session: PostgresSession,
        _ draft: RevisionDraft,
        number: Int,
        previous: ResolvedRevision?
    ) async throws -> (layout: RevisionLayout, ids: [Int]) {
        let new = draft.newObjects
        var ids: [String: Int] = [:]
        if !new.isEmpty {
            let digests = new.map(\.digest)
            try await session.execute(
                """
                INSERT INTO config_objects (digest, kind, name, body)
                SELECT * FROM unnest(\(digests)::text[], \(new.map(\.object.key.kind.rawValue))::text[],
                    \(new.map(\.object.key.name))::text[], \(new.map(\.body))::text[])
                ON CONFLICT (digest) DO NOTHING
                """
            )
            for row in try await session.rows("SELECT id, digest FROM config_objects WHERE digest = ANY (\(digests))") {
                ids[try row["digest"].decode(String.self)] = try row["id"].decode(Int.self)
            }
        }
        let target = try draft.target(ids: ids)
        let unknown = draft.unknownKeys(target: target, previous: previous)
        let layout = draft.layout(
            number: number,
            target: target,
            previous: previous,
            fetchedKeys: unknown.isEmpty ? [:] : try await Self.fetchKeys(session, ids: unknown)
        )
        return (layout, target.map(\.id))
    }
}

extension PostgresConfigurationStore {
    /// How revision `number` is stored, and the object versions the store holds.
    public func revisionStorage(_ number: Int) async throws -> RevisionStorage {
        try await self.perform { session in
            guard
                let row = try await session.row(
                    """
                    SELECT checkpoint, layout, (SELECT COUNT(*) FROM config_objects) AS objects,
                        (SELECT COALESCE(SUM(octet_length(body)), 0) FROM config_objects)::bigint AS bytes
                    FROM revisions WHERE number = \(number)
                    """
                )
            else {
                throw StoreError.noSuchRevision(number)
            }
            let json = try row["layout"].decode(String.self)
            let layout = try RevisionLayout(checkpoint: try row["checkpoint"].decode(Int.self), json: json)
            return RevisionStorage(
                checkpoint: layout.checkpoint,
                layoutBytes: json.utf8.count,
                changes: layout.deltaCount,
                objects: try row["objects"].decode(Int.self),
                objectBytes: try row["bytes"].decode(Int.self)
            )
        }
    }
}
