import Foundation
import GRDB

/// How much telemetry (shadow records, shadow aggregates, metric windows) a store keeps in its telemetry file.
///
/// Telemetry grows with traffic, configuration does not: the telemetry file has a size of its own to stay within, so
/// that it can never fill the disk the rule store needs.
public struct TelemetryLimits: Sendable, Equatable {
    /// The smallest bound accepted: the schema and a few records need this much.
    ///
    /// Smaller values are raised to it.
    public static let minimumBytes: Int64 = 256 * 1024

    /// The most bytes the telemetry file's pages may take; 1 GiB by default.
    ///
    /// Enforced twice: retention deletes the oldest rows once the live data passes 90 % of it, and SQLite's
    /// `max_page_count` refuses any page beyond it. The WAL beside the file is kept within a sixteenth of it (between
    /// 1 and 64 MiB) after each checkpoint.
    public var maxBytes: Int64

    public init(maxBytes: Int64 = 1 << 30) {
        self.maxBytes = max(maxBytes, Self.minimumBytes)
    }

    /// Where retention starts deleting: 90 % of the bound.
    var highWater: Int64 {
        self.maxBytes / 10 * 9
    }

    /// Where retention stops deleting: 60 % of the bound, so that it runs once per many batches, not every batch.
    var lowWater: Int64 {
        self.maxBytes / 10 * 6
    }

    /// The most bytes of shadow records one batch stores: an eighth of the bound (its newest records that fit).
    ///
    /// With retention down to 60 % after a batch, the next one then fits below the 90 % mark, so SQLite's page limit
    /// is a backstop rather than the usual way out.
    var batchBytes: Int64 {
        self.maxBytes / 8
    }

    /// The WAL size that checkpoints truncate the telemetry WAL to.
    var walLimit: Int64 {
        min(max(self.maxBytes / 16, 1 << 20), 64 << 20)
    }
}

/// What telemetry a store could not keep since it was opened.
///
/// Telemetry is written when the store can take it and dropped otherwise: on SQLite when the telemetry file cannot
/// (full disk, size bound that retention cannot meet, a lock held too long, a damaged file), on PostgreSQL when the
/// server refuses a batch or is away for longer than `TelemetryBufferLimits` holds. A proxy never waits for it, and a
/// configuration write never depends on it.
public struct TelemetryDrops: Sendable, Equatable {
    /// Batches not stored, whole or in part (a PostgreSQL write after which buffered telemetry had to go counts one).
    public var batches = 0
    /// Shadow records in those batches.
    public var records = 0
    /// Metric windows in those batches.
    public var windows = 0
    /// Why the last batch was dropped.
    public var lastError: String?

    public init() {}
}

/// The telemetry file of one store instance: opened on first use, on a connection of its own.
///
/// A connection of its own because GRDB serialises everything on one `DatabaseQueue`: telemetry on the rule store's
/// queue would make a `flip` wait behind a batch of shadow records. Opened lazily so that commands that never touch
/// telemetry (`flip`, `kill`, `export`) never open, create or lock the file.
final class TelemetryDatabase: @unchecked Sendable {
    let path: String
    let limits: TelemetryLimits
    let busyTimeout: TimeInterval
    private let lock = NSLock()
    private var queue: DatabaseQueue?
    private var empty: DatabaseQueue?
    private var dropped = TelemetryDrops()

    init(storePath: String, limits: TelemetryLimits, busyTimeout: TimeInterval) {
        self.path = Self.path(forStore: storePath)
        self.limits = limits
        self.busyTimeout = busyTimeout
    }

    /// The telemetry file beside the store at `storePath`: `-telemetry` before the extension.
    ///
    /// `ficus.sqlite` → `ficus-telemetry.sqlite`; a name without an extension gets `-telemetry` at its end.
    static func path(forStore storePath: String) -> String {
        let url = URL(fileURLWithPath: storePath)
        let name = url.lastPathComponent
        guard let dot = name.lastIndex(of: "."), dot != name.startIndex else {
            return storePath + "-telemetry"
        }
        let telemetryName = name[..<dot] + "-telemetry" + name[dot...]
        let directory = String(storePath.dropLast(name.utf8.count))
        return directory + telemetryName
    }

    /// The connection to write telemetry on, creating and migrating the file when missing.
    ///
    /// Opening blocks the calling thread for the open and migrations, once per process.
    func writer() throws -> DatabaseQueue {
        self.lock.lock()
        defer {
            self.lock.unlock()
        }
        if let queue = self.queue {
            return queue
        }
        let queue = try self.open()
        self.queue = queue
        return queue
    }

    /// The connection to read telemetry from: the file's when it exists, else an empty in-memory database with the
    /// same tables.
    ///
    /// A report on a store whose proxies never stored anything reads empty tables instead of creating a file.
    func reader() throws -> DatabaseQueue {
        self.lock.lock()
        if let queue = self.queue {
            self.lock.unlock()
            return queue
        }
        self.lock.unlock()
        if FileManager.default.fileExists(atPath: self.path) {
            return try self.writer()
        }
        self.lock.lock()
        defer {
            self.lock.unlock()
        }
        if let empty = self.empty {
            return empty
        }
        let empty = try DatabaseQueue(configuration: SQLiteConfigurationStore.connectionConfiguration(busyTimeout: 1))
        try SQLiteConfigurationStore.telemetryMigrator.migrate(empty)
        self.empty = empty
        return empty
    }

    /// Counts a batch that was not stored.
    func drop(records: Int, windows: Int, reason: String) {
        self.lock.lock()
        defer {
            self.lock.unlock()
        }
        self.dropped.batches += 1
        self.dropped.records += records
        self.dropped.windows += windows
        self.dropped.lastError = reason
    }

    /// What was dropped so far.
    var drops: TelemetryDrops {
        self.lock.lock()
        defer {
            self.lock.unlock()
        }
        return self.dropped
    }

    /// Opens (creating it 0600 when missing) and migrates the telemetry file, bounded and in incremental auto-vacuum.
    ///
    /// `auto_vacuum` only takes effect before the first table exists, so it is set on a new file before the
    /// migrations; `max_page_count` and `journal_size_limit` belong to the connection and are set at every open.
    private func open() throws -> DatabaseQueue {
        let path = self.path
        do {
            let isNew = !FileManager.default.fileExists(atPath: path)
            if isNew {
                try SQLiteConfigurationStore.createPrivately(path: path)
            } else {
                try Self.inspect(path: path, busyTimeout: self.busyTimeout)
            }
            var configuration = SQLiteConfigurationStore.connectionConfiguration(busyTimeout: self.busyTimeout)
            configuration.label = "ficus.telemetry"
            let limits = self.limits
            configuration.prepareDatabase { db in
                // Telemetry commits do not wait for the disk: in WAL mode they stay atomic and survive a crash of the
                // process; a power loss may take back the last batches, which costs samples, never configuration.
                try db.execute(sql: "PRAGMA synchronous = NORMAL")
                try db.execute(sql: "PRAGMA journal_size_limit = \(limits.walLimit)")
            }
            let queue = try SQLiteConfigurationStore.retryingWhileBusy(for: self.busyTimeout) {
                do {
                    let queue = try DatabaseQueue(path: path, configuration: configuration)
                    let state = try queue.read { db in
                        (
                            mode: try String.fetchOne(db, sql: "PRAGMA journal_mode"),
                            vacuum: try Int.fetchOne(db, sql: "PRAGMA auto_vacuum"),
                            tables: try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master") ?? 0
                        )
                    }
                    if state.vacuum != 2 && state.tables == 0 {
                        try queue.writeWithoutTransaction { db in
                            try db.execute(sql: "PRAGMA auto_vacuum = INCREMENTAL")
                        }
                    }
                    if state.mode?.lowercased() != "wal" {
                        try queue.writeWithoutTransaction { db in
                            _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                        }
                    }
                    return queue
                } catch {
                    throw SQLiteConfigurationStore.storeError(error, path: path)
                }
            }
            try SQLiteConfigurationStore.retryingWhileBusy(for: self.busyTimeout) {
                try Self.migrate(queue, path: path)
            }
            try queue.inDatabase { db in
                try Self.applyPageLimit(db, limits: limits)
            }
            return queue
        } catch {
            throw SQLiteConfigurationStore.storeError(error, path: path)
        }
    }

    /// Runs the telemetry migrations that have not run yet.
    ///
    /// Two processes may create the file at once (a proxy's first batch, a report): the loser's migration fails
    /// (`table already exists`) and rolls back, and finding the migrations done afterwards is success, as for the
    /// rule store.
    private static func migrate(_ queue: DatabaseQueue, path: String) throws {
        let migrator = SQLiteConfigurationStore.telemetryMigrator
        var attempt = 0
        while true {
            attempt += 1
            do {
                if try queue.read({ db in try migrator.hasCompletedMigrations(db) }) {
                    return
                }
                try migrator.migrate(queue)
                return
            } catch {
                let done = (try? queue.read { db in try migrator.hasCompletedMigrations(db) }) ?? false
                if done {
                    return
                }
                if attempt >= 3 {
                    throw SQLiteConfigurationStore.storeError(error, path: path)
                }
                Thread.sleep(forTimeInterval: 0.01 * Double(attempt))
            }
        }
    }

    /// Sets `max_page_count` to the bound, in pages.
    ///
    /// SQLite never lowers it below the current size, so it is set again after a vacuum has shrunk the file.
    static func applyPageLimit(_ db: Database, limits: TelemetryLimits) throws {
        let pageSize = Int64(try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
        _ = try Int.fetchOne(db, sql: "PRAGMA max_page_count = \(max(limits.maxBytes / max(pageSize, 512), 1))")
    }

    /// Refuses a file that is not a telemetry file (nor an empty one) before anything is written to it.
    ///
    /// A rule store put where the telemetry file belongs must not get telemetry tables and lose its next retention.
    static func inspect(path: String, busyTimeout: TimeInterval) throws {
        let queue = try DatabaseQueue(
            path: path,
            configuration: SQLiteConfigurationStore.connectionConfiguration(busyTimeout: busyTimeout, readonly: true)
        )
        defer {
            try? queue.close()
        }
        try queue.read { db in
            let applicationID = try Int32.fetchOne(db, sql: "PRAGMA application_id") ?? 0
            let tables = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table'") ?? 0
            let isTelemetry = applicationID == SQLiteConfigurationStore.telemetryApplicationID
            guard isTelemetry || (applicationID == 0 && tables <= 1) else {
                throw StoreError.unreadable(
                    path: path,
                    detail: "not a Ficus telemetry file (application_id \(applicationID)); move it away"
                )
            }
            let known = Set(SQLiteConfigurationStore.telemetryMigrator.migrations)
            let unknown = try SQLiteConfigurationStore.telemetryMigrator.appliedIdentifiers(db).subtracting(known)
            guard unknown.isEmpty else {
                throw StoreError.unreadable(
                    path: path,
                    detail: "written by a newer Ficus (telemetry migrations "
                        + "\(unknown.sorted().joined(separator: ", ")) are unknown to this binary); upgrade ficus"
                )
            }
        }
    }
}

extension SQLiteConfigurationStore {
    /// The path of the telemetry file beside this store (`ficus.sqlite` → `ficus-telemetry.sqlite`).
    ///
    /// For diagnostics and documentation; the file only exists once telemetry was written.
    public var telemetryPath: String {
        self.telemetry.path
    }

    /// What telemetry this instance dropped since it was opened.
    ///
    /// Proxies report it; a rising count means the telemetry file cannot be written (full disk, lock, damage).
    public var telemetryDrops: TelemetryDrops {
        self.telemetry.drops
    }

    /// Runs `body` in one write transaction of the telemetry file, keeps the file within its bound, and drops the
    /// batch (counted, and thrown as `StoreError.telemetryDropped`) when the file cannot take it.
    ///
    /// When the file is full (SQLite's page limit or the disk), retention makes room by deleting the oldest rows and
    /// the batch is tried once more: what is newest is what reports and canary gates need. Never touches the rule
    /// store's connection, so configuration writes never wait for it.
    func writeTelemetry(
        records: Int = 0,
        windows: Int = 0,
        _ body: @escaping @Sendable (Database) throws -> Void
    ) async throws {
        let telemetry = self.telemetry
        let limits = telemetry.limits
        do {
            let queue = try telemetry.writer()
            try await queue.writeWithoutTransaction { db in
                do {
                    try Self.telemetryTransaction(db, body)
                } catch let error as DatabaseError where error.resultCode == .SQLITE_FULL {
                    // Half the file, so that any batch (at most an eighth in records, plus its aggregates) fits.
                    try Self.trimTelemetry(db, limits: limits, toBytes: limits.maxBytes / 2)
                    try Self.telemetryTransaction(db, body)
                }
                if try Self.usedBytes(db) > limits.highWater {
                    try Self.trimTelemetry(db, limits: limits, toBytes: limits.lowWater)
                } else if try Self.freePages(db) > 256 {
                    try Self.vacuumTelemetry(db, limits: limits)
                }
            }
        } catch {
            let reason: String
            switch Self.storeError(error, path: telemetry.path) {
            case StoreError.unreadable(let path, let detail):
                reason = "the telemetry file '\(path)' cannot be written: \(detail)"
            case StoreError.busy(let detail):
                reason = "the telemetry file '\(telemetry.path)' is locked by another writer: \(detail)"
            case let other:
                reason = "\(other)"
            }
            telemetry.drop(records: records, windows: windows, reason: reason)
            throw StoreError.telemetryDropped(reason)
        }
    }

    /// Runs `body` on a telemetry connection: the file's when it exists, else an empty database of the same schema.
    ///
    /// Read commands never create the telemetry file.
    func readTelemetry<Value: Sendable>(_ body: @escaping @Sendable (Database) throws -> Value) async throws -> Value {
        let queue = try self.telemetry.reader()
        return try await queue.read(body)
    }

    /// One immediate write transaction around `body`.
    private static func telemetryTransaction(_ db: Database, _ body: (Database) throws -> Void) throws {
        try db.inTransaction(.immediate) {
            try body(db)
            return .commit
        }
    }

    /// The bytes the telemetry file's live pages take (its size less its free pages).
    ///
    /// What the bound is compared with: free pages are reused before the file grows.
    static func usedBytes(_ db: Database) throws -> Int64 {
        let pages = Int64(try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0)
        return (pages - Int64(try Self.freePages(db))) * Int64(try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
    }

    /// The number of pages on the free list.
    static func freePages(_ db: Database) throws -> Int {
        try Int.fetchOne(db, sql: "PRAGMA freelist_count") ?? 0
    }

    /// Deletes the oldest telemetry until its live pages take at most `target` bytes, then gives the freed pages back
    /// to the file system.
    ///
    /// Shadow records go first (they hold bodies, and the aggregates keep counting them), oldest first, an eighth at a
    /// time; once none are left, aggregates and metric windows lose their oldest eighth of time at a time. Each round
    /// is its own transaction, so a round that cannot complete still leaves the earlier ones done.
    static func trimTelemetry(_ db: Database, limits: TelemetryLimits, toBytes target: Int64) throws {
        var rounds = 0
        while try Self.usedBytes(db) > target, rounds < 64 {
            rounds += 1
            var deleted = false
            try db.inTransaction(.immediate) {
                deleted = try Self.deleteOldestTelemetry(db)
                return .commit
            }
            if !deleted {
                break
            }
        }
        try Self.vacuumTelemetry(db, limits: limits)
    }

    /// Deletes one slice of the oldest telemetry; false when there was nothing left to delete.
    private static func deleteOldestTelemetry(_ db: Database) throws -> Bool {
        let records = try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM shadow_records") ?? 0
        if records > 0 {
            try db.execute(
                sql: "DELETE FROM shadow_records WHERE id IN (SELECT id FROM shadow_records ORDER BY id LIMIT ?)",
                arguments: [max(16, records / 8)]
            )
            return true
        }
        var oldest = Int64.max
        var newest = Int64.min
        for table in Telemetry.aggregateTables {
            let row = try Row.fetchOne(db, sql: "SELECT MIN(bucket) AS low, MAX(bucket) AS high FROM \(table)")
            if let low: Int64 = row?["low"], let high: Int64 = row?["high"] {
                oldest = min(oldest, low)
                newest = max(newest, high)
            }
        }
        if let row = try Row.fetchOne(db, sql: "SELECT MIN(start) AS low, MAX(start) AS high FROM metric_windows"),
            let low: Int64 = row["low"], let high: Int64 = row["high"]
        {
            oldest = min(oldest, Telemetry.floor(low, 1_000_000))
            newest = max(newest, Telemetry.floor(high, 1_000_000))
        }
        guard oldest <= newest else {
            return false
        }
        let cutoff = oldest + max(60, (newest - oldest) / 8)
        for table in Telemetry.aggregateTables {
            try db.execute(sql: "DELETE FROM \(table) WHERE bucket < ?", arguments: [cutoff])
        }
        try db.execute(sql: "DELETE FROM metric_windows WHERE start < ?", arguments: [cutoff * 1_000_000])
        return true
    }

    /// Returns free pages to the file system (`PRAGMA incremental_vacuum`) and sets the page limit again.
    ///
    /// The file is in `auto_vacuum = INCREMENTAL`: deleted rows free pages inside the file, and only this shrinks it.
    static func vacuumTelemetry(_ db: Database, limits: TelemetryLimits) throws {
        try db.execute(sql: "PRAGMA incremental_vacuum")
        try TelemetryDatabase.applyPageLimit(db, limits: limits)
    }

    /// The size of the telemetry file's live pages and of the file, in bytes, or nil when there is no file yet.
    ///
    /// For diagnostics and tests of the size bound.
    public func telemetrySize() async throws -> (used: Int64, file: Int64)? {
        guard FileManager.default.fileExists(atPath: self.telemetry.path) else {
            return nil
        }
        return try await self.perform {
            try await self.readTelemetry { db in
                let pages = Int64(try Int.fetchOne(db, sql: "PRAGMA page_count") ?? 0)
                let pageSize = Int64(try Int.fetchOne(db, sql: "PRAGMA page_size") ?? 4096)
                return (try Self.usedBytes(db), pages * pageSize)
            }
        }
    }
}
