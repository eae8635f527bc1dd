import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// The SQLite `application_id` of a Ficus telemetry file ("Fict").
    ///
    /// Tells a telemetry file from a rule store, so that `--store ficus-telemetry.sqlite` is refused with a clear word.
    static let telemetryApplicationID: Int32 = 0x4669_6374

    /// The telemetry file's schema, as named migrations in order.
    ///
    /// A migrator of its own: the telemetry file is created, bounded and, when it cannot be written, given up
    /// independently of the rule store. Like the store's, a migration that has shipped is never edited.
    static let telemetryMigrator: DatabaseMigrator = {
        var migrator = DatabaseMigrator()
        // The tables of the rule store's `v2-shadow` migration, unchanged (copied rather than shared, so that neither
        // migration can change under the other), which `v6-telemetry-file` moves here.
        migrator.registerMigration("t1-shadow") { db in
            try db.execute(sql: "PRAGMA application_id = \(SQLiteConfigurationStore.telemetryApplicationID)")
            try db.execute(sql: SQLiteConfigurationStore.telemetryTablesSQL)
        }
        // Coverage and identity spread (issue 15): copies dropped per endpoint and minute, the time copies waited inside
        // Ficus as a histogram per endpoint and minute, and the distinct sticky hashes of each metric window.
        migrator.registerMigration("t2-coverage") { db in
            try db.execute(
                sql: """
                    CREATE TABLE shadow_drop_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        reason TEXT NOT NULL,
                        sent INTEGER NOT NULL CHECK (sent IN (0, 1)),
                        count INTEGER NOT NULL CHECK (count >= 0),
                        PRIMARY KEY (bucket, route, endpoint, reason, sent)
                    ) WITHOUT ROWID;
                    CREATE TABLE shadow_wait_minutes (
                        bucket INTEGER NOT NULL,
                        route TEXT NOT NULL,
                        endpoint TEXT NOT NULL,
                        le INTEGER NOT NULL,
                        count INTEGER NOT NULL,
                        sum INTEGER NOT NULL,
                        PRIMARY KEY (bucket, route, endpoint, le)
                    ) WITHOUT ROWID;
                    ALTER TABLE metric_windows ADD COLUMN identity_hashes TEXT
                        CHECK (identity_hashes IS NULL OR json_valid(identity_hashes));
                    """
            )
        }
        // The request id (`X-Request-Id`) of each stored record, so that a report's sample can be found in the logs.
        migrator.registerMigration("t3-request-id") { db in
            try db.execute(sql: "ALTER TABLE shadow_records ADD COLUMN request_id TEXT")
        }
        return migrator
    }()

    /// The statements that create the telemetry tables (migration `t1-shadow`).
    ///
    /// Kept as a constant of the migration that ships it: a later change of schema is a new migration.
    private static let telemetryTablesSQL = """
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
}
