import Foundation
import GRDB

extension SQLiteConfigurationStore {
    /// Copies the telemetry of a store from before `v6-telemetry-file` (tables in the rule store's file) into the
    /// telemetry file, as far as that file takes it; the migration then drops the tables from the store.
    ///
    /// Moving rather than dropping keeps what reports and a running canary's gates read across the upgrade.
    /// Aggregates and metric windows go first, in one transaction (small, and what gates read), then records newest
    /// first in slices, each its own transaction, until they are all there or the telemetry file is full. Every row
    /// keeps its key and is inserted only when absent, so a copy interrupted and run again (or run by two processes
    /// opening the store at once) never counts twice. Telemetry may be dropped, configuration may not: when the
    /// telemetry file cannot be written at all, the store is migrated all the same and the old rows are lost.
    static func moveTelemetry(of storePath: String, into telemetry: TelemetryDatabase) {
        guard let queue = try? telemetry.writer() else {
            return
        }
        try? queue.writeWithoutTransaction { db in
            try db.execute(sql: "ATTACH DATABASE ? AS legacy", arguments: [storePath])
            defer {
                try? db.execute(sql: "DETACH DATABASE legacy")
            }
            try db.inTransaction(.immediate) {
                for table in Telemetry.aggregateTables + ["metric_windows"] {
                    guard let columns = try Self.legacyColumns(of: table, db) else { continue }
                    try db.execute(
                        sql: "INSERT OR IGNORE INTO main.\(table) (\(columns)) SELECT \(columns) FROM legacy.\(table)")
                }
                return .commit
            }
            guard let recordColumns = try Self.legacyColumns(of: "shadow_records", db),
                let fieldColumns = try Self.legacyColumns(of: "shadow_record_fields", db)
            else {
                return
            }
            var upper = Int64.max
            while true {
                let ids = try Int64.fetchAll(
                    db,
                    sql: "SELECT id FROM legacy.shadow_records WHERE id < ? ORDER BY id DESC LIMIT 256",
                    arguments: [upper]
                )
                guard let lowest = ids.last else {
                    break
                }
                do {
                    try db.inTransaction(.immediate) {
                        try db.execute(
                            sql: """
                                INSERT OR IGNORE INTO main.shadow_records (\(recordColumns))
                                SELECT \(recordColumns) FROM legacy.shadow_records WHERE id >= ? AND id < ?
                                """,
                            arguments: [lowest, upper]
                        )
                        try db.execute(
                            sql: """
                                INSERT OR IGNORE INTO main.shadow_record_fields (\(fieldColumns))
                                SELECT \(fieldColumns) FROM legacy.shadow_record_fields WHERE record >= ? AND record < ?
                                """,
                            arguments: [lowest, upper]
                        )
                        return .commit
                    }
                } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
                    break
                }
                upper = lowest
            }
        }
    }

    /// Gives the pages the dropped telemetry tables left behind back to the file system (`VACUUM`), when they are
    /// more than a megabyte.
    ///
    /// Once, after the upgrade: without it the rule store would keep the size its telemetry once had. A failure
    /// (another process holding the file) only leaves the free pages in place, to be reused.
    static func compactAfterTelemetryMove(_ pool: DatabaseQueue) {
        try? pool.writeWithoutTransaction { db in
            let free = Int64(try Self.freePages(db))
            let pageSize = Int64(try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
            if free * pageSize > 1 << 20 {
                try db.execute(sql: "VACUUM")
            }
        }
    }

    /// The quoted column list of the old store's `table`, or nil when it has no such table: later telemetry
    /// migrations add tables and columns the old one never had, so rows are copied by the old columns, never `*`.
    private static func legacyColumns(of table: String, _ db: Database) throws -> String? {
        let columns = try Row.fetchAll(db, sql: "PRAGMA legacy.table_info(\(table))")
            .map { "\"" + ($0["name"] as String) + "\"" }
        return columns.isEmpty ? nil : columns.joined(separator: ", ")
    }
}
