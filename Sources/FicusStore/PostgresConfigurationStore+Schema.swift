import Foundation
import PostgresNIO

extension PostgresConfigurationStore {
    /// A named, versioned step of the PostgreSQL schema; shipped migrations are never edited (DESIGN.md, rule 10).
    struct Migration {
        var version: Int
        var name: String
        /// One statement each: the extended query protocol PostgresNIO speaks takes one statement per query.
        var statements: [String]
        /// Rows converted by code after `statements` (with the store's location for errors), in the same transaction.
        var convert: (@Sendable (PostgresSession, String) async throws -> Void)? = nil
        /// Statements run after `convert`.
        var finish: [String] = []
    }

    /// Every migration this binary knows, oldest first.
    ///
    /// Version 1 holds what the SQLite store has after its own migrations "v1" to "v5" (revisions, audit, proxies,
    /// rule names, canaries and leases, blue-green); version 2 adds telemetry, the tables of the SQLite telemetry
    /// file after its migrations "t1" to "t3" (`SQLiteConfigurationStore.telemetryMigrator`).
    static let migrations: [Migration] = [
        Migration(
            version: 1,
            name: "v1-fleet",
            statements: [
                """
                CREATE FUNCTION ficus_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
                BEGIN
                    RAISE EXCEPTION 'ficus: % of % refused: this table is append-only', TG_OP, TG_TABLE_NAME
                        USING ERRCODE = 'restrict_violation';
                END
                $$
                """,
                """
                CREATE TABLE revisions (
                    number BIGINT PRIMARY KEY CHECK (number > 0),
                    author TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    created_at TIMESTAMPTZ NOT NULL,
                    summary TEXT NOT NULL,
                    routes_changed TEXT[] NOT NULL,
                    snapshot TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE audit (
                    id BIGSERIAL PRIMARY KEY,
                    revision BIGINT REFERENCES revisions (number),
                    time TIMESTAMPTZ NOT NULL,
                    author TEXT NOT NULL,
                    reason TEXT NOT NULL,
                    action TEXT NOT NULL,
                    detail TEXT NOT NULL
                )
                """,
                """
                CREATE TABLE rule_names (
                    name TEXT PRIMARY KEY,
                    route TEXT NOT NULL,
                    first_revision BIGINT NOT NULL REFERENCES revisions (number)
                )
                """,
                """
                CREATE TRIGGER revisions_append_only BEFORE UPDATE OR DELETE ON revisions
                    FOR EACH ROW EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TRIGGER revisions_never_truncated BEFORE TRUNCATE ON revisions
                    FOR EACH STATEMENT EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TRIGGER audit_append_only BEFORE UPDATE OR DELETE ON audit
                    FOR EACH ROW EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TRIGGER audit_never_truncated BEFORE TRUNCATE ON audit
                    FOR EACH STATEMENT EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TRIGGER rule_names_are_kept BEFORE UPDATE OR DELETE ON rule_names
                    FOR EACH ROW EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TRIGGER rule_names_never_truncated BEFORE TRUNCATE ON rule_names
                    FOR EACH STATEMENT EXECUTE FUNCTION ficus_refuse_change()
                """,
                """
                CREATE TABLE proxies (
                    id TEXT PRIMARY KEY,
                    listen TEXT NOT NULL,
                    revision BIGINT NOT NULL,
                    started_at TIMESTAMPTZ NOT NULL,
                    last_seen TIMESTAMPTZ NOT NULL
                )
                """,
                """
                CREATE TABLE canary (
                    route TEXT PRIMARY KEY,
                    state_json TEXT NOT NULL CHECK (state_json::jsonb IS NOT NULL),
                    active BOOLEAN NOT NULL,
                    rule_name TEXT NOT NULL,
                    stickiness TEXT,
                    version BIGINT NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL
                )
                """,
                """
                CREATE TABLE canary_lease (
                    route TEXT PRIMARY KEY,
                    holder TEXT NOT NULL,
                    expires_at TIMESTAMPTZ NOT NULL
                )
                """,
                """
                CREATE TABLE bluegreen (
                    upstream TEXT PRIMARY KEY,
                    state_json TEXT NOT NULL CHECK (state_json::jsonb IS NOT NULL),
                    version BIGINT NOT NULL,
                    updated_at TIMESTAMPTZ NOT NULL
                )
                """,
            ]
        ),
        Migration(version: 2, name: "v2-telemetry", statements: PostgresConfigurationStore.telemetryTables),
        // Revisions as lists of content-addressed object versions; see PostgresConfigurationStore+Objects.swift.
        Migration(
            version: 3,
            name: "v3-objects",
            statements: PostgresConfigurationStore.objectTables,
            convert: { session, location in
                try await PostgresConfigurationStore.convertSnapshots(session, location: location)
            },
            finish: PostgresConfigurationStore.objectTablesFinish
        ),
    ]

    /// The statements of migration 2, `v2-telemetry`: shadow records with their fields, the per-minute aggregates
    /// and metric windows, with the columns and keys of the SQLite telemetry file.
    ///
    /// Times are integers as there (records and windows in microseconds, aggregate buckets in seconds since 1970),
    /// so that both backends bucket and filter alike. JSON columns are TEXT without a check: only Ficus writes them,
    /// and `jsonb` refuses the `\u0000` escape a response body may hold.
    static let telemetryTables: [String] = [
        """
        CREATE TABLE shadow_records (
            id BIGSERIAL PRIMARY KEY,
            time BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            method TEXT NOT NULL,
            target TEXT NOT NULL,
            serving_upstream TEXT NOT NULL,
            shadow_upstream TEXT NOT NULL,
            serving_status INTEGER NOT NULL,
            shadow_status INTEGER,
            serving_latency_us BIGINT NOT NULL,
            shadow_latency_us BIGINT,
            shadow_error TEXT,
            differences TEXT NOT NULL,
            noise_differences TEXT,
            request_headers TEXT NOT NULL,
            request_body BYTEA NOT NULL,
            serving_headers TEXT NOT NULL,
            serving_body BYTEA NOT NULL,
            serving_truncated BOOLEAN NOT NULL,
            shadow_headers TEXT NOT NULL,
            shadow_body BYTEA NOT NULL,
            shadow_truncated BOOLEAN NOT NULL,
            request_id TEXT
        )
        """,
        "CREATE INDEX shadow_records_time ON shadow_records (time)",
        "CREATE INDEX shadow_records_endpoint ON shadow_records (route, endpoint, time)",
        """
        CREATE TABLE shadow_record_fields (
            record BIGINT NOT NULL REFERENCES shadow_records (id) ON DELETE CASCADE,
            field_path TEXT NOT NULL,
            kind TEXT NOT NULL,
            PRIMARY KEY (record, field_path, kind)
        )
        """,
        """
        CREATE TABLE shadow_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            compared BIGINT NOT NULL,
            identical BIGINT NOT NULL,
            differing BIGINT NOT NULL,
            errors BIGINT NOT NULL,
            noise_samples BIGINT NOT NULL,
            serving_latency_count BIGINT NOT NULL,
            serving_latency_sum BIGINT NOT NULL,
            serving_latency_min BIGINT,
            serving_latency_max BIGINT,
            shadow_latency_count BIGINT NOT NULL,
            shadow_latency_sum BIGINT NOT NULL,
            shadow_latency_min BIGINT,
            shadow_latency_max BIGINT,
            PRIMARY KEY (bucket, route, endpoint)
        )
        """,
        """
        CREATE TABLE shadow_status_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            serving_status INTEGER NOT NULL,
            shadow_status INTEGER NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (bucket, route, endpoint, serving_status, shadow_status)
        )
        """,
        """
        CREATE TABLE shadow_latency_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('serving', 'shadow')),
            le BIGINT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (bucket, route, endpoint, side, le)
        )
        """,
        """
        CREATE TABLE shadow_field_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            field_path TEXT NOT NULL,
            kind TEXT NOT NULL,
            raw BIGINT NOT NULL,
            noise BIGINT NOT NULL,
            PRIMARY KEY (bucket, route, endpoint, field_path, kind)
        )
        """,
        """
        CREATE TABLE shadow_signature_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            signature TEXT NOT NULL,
            count BIGINT NOT NULL,
            PRIMARY KEY (bucket, route, endpoint, signature)
        )
        """,
        """
        CREATE TABLE shadow_drop_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            reason TEXT NOT NULL,
            sent BOOLEAN NOT NULL,
            count BIGINT NOT NULL CHECK (count >= 0),
            PRIMARY KEY (bucket, route, endpoint, reason, sent)
        )
        """,
        """
        CREATE TABLE shadow_wait_minutes (
            bucket BIGINT NOT NULL,
            route TEXT NOT NULL,
            endpoint TEXT NOT NULL,
            le BIGINT NOT NULL,
            count BIGINT NOT NULL,
            sum BIGINT NOT NULL,
            PRIMARY KEY (bucket, route, endpoint, le)
        )
        """,
        """
        CREATE TABLE metric_windows (
            start BIGINT NOT NULL,
            route TEXT NOT NULL,
            upstream TEXT NOT NULL,
            proxy TEXT NOT NULL,
            duration_ms BIGINT NOT NULL,
            requests BIGINT NOT NULL,
            server_errors BIGINT NOT NULL,
            latency_bounds TEXT NOT NULL,
            latency_counts TEXT NOT NULL,
            identity_hashes TEXT,
            PRIMARY KEY (start, route, upstream, proxy)
        )
        """,
    ]

    /// The newest schema version this binary knows.
    static var knownVersion: Int { Self.migrations.last?.version ?? 0 }

    /// Checks the schema and, when `creating` or when it is older than this binary, brings it up to date, in one
    /// transaction under the write lock (two `ficus init` at once apply each migration once).
    ///
    /// Refuses a database without a Ficus schema unless `creating`, and any schema newer than this binary knows.
    /// `last` stops at an older version, for tests of a later migration on history written by an older Ficus.
    func migrate(creating: Bool, upTo last: Int = PostgresConfigurationStore.knownVersion) async throws {
        try await self.write { session in
            let exists = try await session.row("SELECT to_regclass('ficus_schema') IS NOT NULL AS present")
            let present = try exists?["present"].decode(Bool.self) ?? false
            guard present || creating else {
                throw StoreError.unreadable(
                    path: self.url.description,
                    detail: "the database has no Ficus schema: run 'ficus init --store \(self.url)' first"
                )
            }
            if !present {
                try await session.execute(
                    """
                    CREATE TABLE ficus_schema (
                        version INTEGER PRIMARY KEY,
                        name TEXT NOT NULL,
                        applied_at TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
                    )
                    """
                )
            }
            let row = try await session.row("SELECT COALESCE(MAX(version), 0) AS version FROM ficus_schema")
            let version = try row?["version"].decode(Int.self) ?? 0
            guard version <= Self.knownVersion else {
                throw StoreError.unreadable(
                    path: self.url.description,
                    detail: "its schema is version \(version), newer than this ficus knows (\(Self.knownVersion)): "
                        + "upgrade ficus; nothing was written"
                )
            }
            for migration in Self.migrations where migration.version > version && migration.version <= last {
                for statement in migration.statements {
                    try await session.execute(PostgresQuery(unsafeSQL: statement))
                }
                try await migration.convert?(session, self.url.description)
                for statement in migration.finish {
                    try await session.execute(PostgresQuery(unsafeSQL: statement))
                }
                try await session.execute(
                    "INSERT INTO ficus_schema (version, name) VALUES (\(migration.version), \(migration.name))"
                )
            }
        }
    }

    /// The schema version the database holds (0 without a Ficus schema).
    public func schemaVersion() async throws -> Int {
        try await self.perform { session in
            let row = try await session.row(
                "SELECT CASE WHEN to_regclass('ficus_schema') IS NULL THEN 0 ELSE 1 END AS present"
            )
            guard try row?["present"].decode(Int.self) == 1 else {
                return 0
            }
            return try await session.row("SELECT COALESCE(MAX(version), 0) AS version FROM ficus_schema")?["version"]
                .decode(Int.self) ?? 0
        }
    }
}
