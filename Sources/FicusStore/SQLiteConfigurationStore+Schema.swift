import FicusCore
import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// The SQLite `application_id` of a Ficus store ("Ficu").
    ///
    /// Lets a Ficus store be told from another application's database before any table is read.
    static let applicationID: Int32 = 0x4669_6375

    /// The schema, as named migrations in order.
    ///
    /// A migration that has shipped is never edited: a later change is a new migration, so every store reaches the
    /// same schema whatever version created it.
    static let migrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        migrator.registerMigration("v1-revisions") { db in
            try db.execute(sql: "PRAGMA application_id = \(SQLiteConfigurationStore.applicationID)")
            try db.execute(
                sql: """
                    CREATE TABLE revisions (
                        number INTEGER PRIMARY KEY,
                        author TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        created_at DATETIME NOT NULL,
                        summary TEXT NOT NULL,
                        routes_changed TEXT NOT NULL DEFAULT '[]' CHECK (json_valid(routes_changed)),
                        snapshot TEXT NOT NULL CHECK (json_valid(snapshot))
                    );
                    CREATE TRIGGER revisions_are_immutable BEFORE UPDATE ON revisions BEGIN
                        SELECT RAISE(ABORT, 'revisions are immutable: write a new revision instead');
                    END;
                    CREATE TRIGGER revisions_are_kept BEFORE DELETE ON revisions BEGIN
                        SELECT RAISE(ABORT, 'revisions are never deleted: history is not rewritten');
                    END;
                    """
            )
        }
        migrator.registerMigration("v1-audit") { db in
            try db.execute(
                sql: """
                    CREATE TABLE audit (
                        id INTEGER PRIMARY KEY AUTOINCREMENT,
                        revision INTEGER REFERENCES revisions(number),
                        time DATETIME NOT NULL,
                        author TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        action TEXT NOT NULL,
                        detail TEXT NOT NULL
                    );
                    CREATE INDEX audit_revision ON audit(revision);
                    CREATE TRIGGER audit_is_append_only_update BEFORE UPDATE ON audit BEGIN
                        SELECT RAISE(ABORT, 'the audit log is append-only');
                    END;
                    CREATE TRIGGER audit_is_append_only_delete BEFORE DELETE ON audit BEGIN
                        SELECT RAISE(ABORT, 'the audit log is append-only');
                    END;
                    """
            )
        }
        migrator.registerMigration("v1-proxies") { db in
            try db.execute(
                sql: """
                    CREATE TABLE proxies (
                        id TEXT PRIMARY KEY,
                        listen TEXT NOT NULL,
                        revision INTEGER NOT NULL,
                        started_at DATETIME NOT NULL,
                        last_seen DATETIME NOT NULL
                    );
                    CREATE INDEX proxies_last_seen ON proxies(last_seen);
                    """
            )
        }
        // Shadow records and their per-minute aggregates, and proxies' metric windows. Times of records and windows
        // are microseconds since 1970 (as in `ShadowRecord`); aggregate buckets are the minute's start in seconds.
        // Aggregates are sums keyed by minute first, so writers add to them with upserts, ranges are index seeks and
        // retention deletes a prefix. See SQLiteConfigurationStore+Shadow.swift.
        migrator.registerMigration("v2-shadow") { db in
            try db.execute(
                sql: """
                    CREATE TABLE shadow_records (
                        id INTEGER PRIMARY KEY,
                        time INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        method TEXT NOT NULL,
                        target TEXT NOT NULL,
                        serving_upstream TEXT NOT NULL,
                        shadow_upstream TEXT NOT NULL,
                        serving_status INTEGER NOT NULL,
                        shadow_status INTEGER,
                        serving_latency_us INTEGER NOT NULL,
                        shadow_latency_us INTEGER,
                        shadow_error TEXT,
                        differences TEXT NOT NULL CHECK (json_valid(differences)),
                        noise_differences TEXT CHECK (noise_differences IS NULL OR json_valid(noise_differences)),
                        request_headers TEXT NOT NULL CHECK (json_valid(request_headers)),
                        request_body BLOB NOT NULL,
                        serving_headers TEXT NOT NULL CHECK (json_valid(serving_headers)),
                        serving_body BLOB NOT NULL,
                        serving_truncated INTEGER NOT NULL,
                        shadow_headers TEXT NOT NULL CHECK (json_valid(shadow_headers)),
                        shadow_body BLOB NOT NULL,
                        shadow_truncated INTEGER NOT NULL
                    );
                    CREATE INDEX shadow_records_time ON shadow_records(time);
                    CREATE INDEX shadow_records_endpoint ON shadow_records(route, endpoint, time);
                    CREATE TABLE shadow_record_fields (
                        record INTEGER NOT NULL REFERENCES shadow_records(id) ON DELETE CASCADE,
                        field_path TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        PRIMARY KEY (record, field_path, kind)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        compared INTEGER NOT NULL,
                        identical INTEGER NOT NULL,
                        differing INTEGER NOT NULL,
                        errors INTEGER NOT NULL,
                        noise_samples INTEGER NOT NULL,
                        serving_latency_count INTEGER NOT NULL,
                        serving_latency_sum INTEGER NOT NULL,
                        serving_latency_min INTEGER,
                        serving_latency_max INTEGER,
                        shadow_latency_count INTEGER NOT NULL,
                        shadow_latency_sum INTEGER NOT NULL,
                        shadow_latency_min INTEGER,
                        shadow_latency_max INTEGER,
                        PRIMARY KEY (bucket, route, endpoint)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_status_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        serving_status INTEGER NOT NULL,
                        shadow_status INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (bucket, route, endpoint, serving_status, shadow_status)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_latency_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        side TEXT NOT NULL CHECK (side IN ('serving', 'shadow')),
                        le INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        PRIMARY KEY (bucket, route, endpoint, side, le)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_field_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        field_path TEXT NOT NULL,
                        kind TEXT NOT NULL,
                        raw INTEGER NOT NULL,
                        noise INTEGER NOT NULL,
                        PRIMARY KEY (bucket, route, endpoint, field_path, kind)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_signature_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        signature TEXT NOT NULL CHECK (json_valid(signature)),
                        count INTEGER NOT NULL,
                        PRIMARY KEY (bucket, route, endpoint, signature)
                    ) WITHOUT ROWID;
                    CREATE TABLE metric_windows (
                        start INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        upstream TEXT NOT NULL,
                        proxy TEXT NOT NULL,
                        duration_ms INTEGER NOT NULL,
                        requests INTEGER NOT NULL,
                        server_errors INTEGER NOT NULL,
                        latency_bounds TEXT NOT NULL CHECK (json_valid(latency_bounds)),
                        latency_counts TEXT NOT NULL CHECK (json_valid(latency_counts)),
                        PRIMARY KEY (start, route, upstream, proxy)
                    ) WITHOUT ROWID;
                    """
            )
        }
        // Every rule name ever committed, with its route and first revision, so that retired names are never reused
        // (buckets hash them). Filled from the existing history. See SQLiteConfigurationStore+RuleNames.swift.
        migrator.registerMigration("v3-rule-names") { db in
            try SQLiteConfigurationStore.migrateRuleNames(db)
        }
        // Canaries and their leases. See SQLiteConfigurationStore+Rollout.swift.
        migrator.registerMigration("v4-canary") { db in
            try SQLiteConfigurationStore.migrateCanary(db)
        }
        migrator.registerMigration("v5-bluegreen") { db in
            try SQLiteConfigurationStore.migrateBlueGreen(db)
        }
        // Telemetry (shadow records, aggregates, metric windows) lives in a file of its own beside the store since
        // this version (SQLiteConfigurationStore+Telemetry.swift). `migrate` copies the rows there first, as far as
        // that file takes them; the tables then leave the rule store.
        migrator.registerMigration("v6-telemetry-file") { db in
            try db.execute(
                sql: """
                    DROP TABLE IF EXISTS shadow_record_fields;
                    DROP TABLE IF EXISTS shadow_records;
                    DROP TABLE IF EXISTS shadow_minutes;
                    DROP TABLE IF EXISTS shadow_status_minutes;
                    DROP TABLE IF EXISTS shadow_latency_minutes;
                    DROP TABLE IF EXISTS shadow_field_minutes;
                    DROP TABLE IF EXISTS shadow_signature_minutes;
                    DROP TABLE IF EXISTS metric_windows;
                    """
            )
        }
        // Revisions as lists of content-addressed object versions instead of whole snapshots, every existing revision
        // converted. See SQLiteConfigurationStore+Objects.swift.
        migrator.registerMigration("v7-objects") { db in
            try SQLiteConfigurationStore.migrateToObjects(db)
        }
        return migrator
    }()

    /// The names of the schema migrations applied to the file, in the order they ran.
    ///
    /// For diagnostics (`ficus doctor`, support requests) and for tests of the migrations.
    public func appliedMigrations() async throws -> [String] {
        try await self.perform {
            try await self.pool.read { db in
                try Self.migrator.appliedMigrations(db)
            }
        }
    }

    /// Checks an existing file before the store writes to it: a readable database, a Ficus store or an empty one,
    /// and no migration this binary does not know.
    ///
    /// Opening for writing switches the file to WAL mode and runs migrations, so anything foreign has to be refused
    /// first, on a read-only connection, to leave the file exactly as it was.
    static func inspect(path: String, busyTimeout: TimeInterval) throws {
        do {
            let queue = try DatabaseQueue(
                path: path,
                configuration: Self.connectionConfiguration(busyTimeout: busyTimeout, readonly: true)
            )
            defer {
                try? queue.close()
            }
            try queue.read { db in
                let check = try String.fetchAll(db, sql: "PRAGMA quick_check(5)")
                guard check == ["ok"] else {
                    throw StoreError.unreadable(
                        path: path,
                        detail: "the database is damaged (\(check.joined(separator: "; ")))"
                    )
                }
                let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
                guard applicationID != Self.telemetryApplicationID else {
                    throw StoreError.unreadable(
                        path: path,
                        detail: "this is a Ficus telemetry file, not a rule store (pass the store beside it)"
                    )
                }
                guard applicationID == 0 || applicationID == Self.applicationID else {
                    throw StoreError.unreadable(
                        path: path,
                        detail: "not a Ficus store (it belongs to another application, application_id \(applicationID))"
                    )
                }
                let tables = try String.fetchAll(
                    db,
                    sql: "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'"
                )
                // GRDB creates `grdb_migrations` before the first migration's transaction, so another process
                // that is creating the store right now leaves that table alone for a moment: not foreign.
                let foreign = tables.filter { $0 != "grdb_migrations" }
                let known = Set(Self.migrator.migrations)
                let unknown = try Self.migrator.appliedIdentifiers(db).subtracting(known)
                guard tables.contains("revisions") || (foreign.isEmpty && unknown.isEmpty) else {
                    throw StoreError.unreadable(
                        path: path,
                        detail: "not a Ficus store (no revisions table; its tables are "
                            + "\(tables.sorted().joined(separator: ", ")))"
                    )
                }
                guard unknown.isEmpty else {
                    throw StoreError.unreadable(
                        path: path,
                        detail: "written by a newer Ficus (schema migrations "
                            + "\(unknown.sorted().joined(separator: ", ")) are unknown to this binary); upgrade ficus"
                    )
                }
            }
        } catch {
            throw Self.storeError(error, path: path)
        }
    }

    /// Runs the migrations that have not run yet, each in its own transaction.
    ///
    /// Two processes opening a new file at once may both try the first migration; the loser's transaction fails
    /// and rolls back, and a retry finds the migrations done, so the race costs a retry and never a half schema.
    static func migrate(_ pool: DatabaseQueue, path: String, telemetry: TelemetryDatabase) throws {
        // A store that is up to date is only read: opening it for a read command must not write to the file (a
        // write would also look like a new commit to every watching proxy).
        if (try? pool.read({ db in try Self.migrator.hasCompletedMigrations(db) })) == true {
            return
        }
        // A store of an earlier version keeps its telemetry in this file: copied to the telemetry file before
        // `v6-telemetry-file` drops the tables here (see SQLiteConfigurationStore+TelemetryMove.swift).
        let holdsTelemetry = (try? pool.read({ db in try db.tableExists("shadow_records") })) == true
        if holdsTelemetry {
            Self.moveTelemetry(of: path, into: telemetry)
        }
        try Self.runMigrations(pool, path: path)
        if holdsTelemetry {
            Self.compactAfterTelemetryMove(pool)
        }
    }

    /// Runs the migrator, retrying when another process raced this one to the same migration.
    private static func runMigrations(_ pool: DatabaseQueue, path: String) throws {
        var attempt = 0
        while true {
            attempt += 1
            do {
                try Self.migrator.migrate(pool)
                return
            } catch {
                let done = (try? pool.read { db in try Self.migrator.hasCompletedMigrations(db) }) ?? false
                if done {
                    return
                }
                if attempt >= 3 {
                    throw Self.storeError(error, path: path)
                }
            }
        }
    }
}
