import FicusCore
import Foundation
import GRDB

/// The configuration store in one SQLite file (WAL mode), shared by the CLI and every proxy on the machine.
///
/// Each revision is kept as a JSON snapshot of the whole `Configuration` rather than as rows per route, rule and
/// segment: a revision is atomic and immutable, so one row says everything about it; a rollback is a copy of an
/// earlier snapshot; a diff compares two snapshots with `RevisionDiff`; and model fields added later need no
/// migration (decoding fills in their defaults). The tables beside it, `audit` and `proxies`, are plain rows because
/// they are queried by column. Writes are serialised by SQLite's write lock (immediate transactions, with a busy
/// timeout), so several instances — in one process or many — can commit to the same file without losing a change.
public final class SQLiteConfigurationStore: ConfigurationStore {
    /// The path of the database file.
    ///
    /// Kept for error messages and for the watcher, which opens its own connection.
    public let path: String

    /// How long a write waits for another writer before failing with `StoreError.busy`.
    ///
    /// A commit holds the lock for about a millisecond, so the default of 5 s only runs out when a writer is stuck.
    public let busyTimeout: TimeInterval

    /// The connections: one writer, and readers that never block it (WAL).
    ///
    /// Owned by this instance; the watcher uses a connection of its own (see `watch(pollInterval:)`).
    /// One serialized connection (GRDB's `DatabaseQueue`), in WAL mode set once when the file is created.
    ///
    /// Not a `DatabasePool`: opening a pool writes a throwaway table whenever the file has no WAL, so every open
    /// (even for a read command or a change that is then refused) would modify the file and look like a commit to
    /// every watching proxy. A store's work in one process is small and sequential; other processes read
    /// concurrently through WAL all the same.
    let pool: DatabaseQueue

    /// The clock for revision, audit and heartbeat times.
    ///
    /// Injected so that tests can control "seen within" windows.
    let now: @Sendable () -> Date

    /// Opens the store at `path`, creating the file and its tables when missing and migrating older schemas.
    ///
    /// A file that is not a database, is damaged, belongs to another application or was written by a newer Ficus is
    /// refused with `StoreError.unreadable` before anything is written to it.
    public init(
        path: String,
        busyTimeout: TimeInterval = 5,
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        self.now = now
        self.pool = try Self.retryingWhileBusy(for: busyTimeout) {
            if FileManager.default.fileExists(atPath: path) {
                try Self.inspect(path: path, busyTimeout: busyTimeout)
            }
            do {
                let configuration = Self.connectionConfiguration(busyTimeout: busyTimeout)
                let queue = try DatabaseQueue(path: path, configuration: configuration)
                // WAL is a property of the file: set it once, on a new file; an existing Ficus store already has it.
                let mode = try queue.read { db in try String.fetchOne(db, sql: "PRAGMA journal_mode") }
                if mode?.lowercased() != "wal" {
                    try queue.writeWithoutTransaction { db in
                        _ = try String.fetchOne(db, sql: "PRAGMA journal_mode = WAL")
                    }
                }
                return queue
            } catch {
                throw Self.storeError(error, path: path)
            }
        }
        try Self.migrate(self.pool, path: path)
    }

    /// Runs `body` again while it fails with `StoreError.busy`, for up to `timeout` seconds, blocking the thread.
    ///
    /// Opening needs it: `PRAGMA journal_mode = WAL` takes an exclusive lock and fails with `SQLITE_BUSY` at once,
    /// without the busy handler, while another connection opens or reads the same new file. A store that two
    /// processes open at the same moment therefore waits here instead of failing. Opening happens once, at start-up,
    /// so the blocking sleep is acceptable.
    static func retryingWhileBusy<Value>(for timeout: TimeInterval, _ body: () throws -> Value) throws -> Value {
        let deadline = Date().addingTimeInterval(timeout)
        var pause: TimeInterval = 0.001
        while true {
            do {
                return try body()
            } catch StoreError.busy where Date() < deadline {
                Thread.sleep(forTimeInterval: pause)
                pause = min(pause * 2, 0.05)
            }
        }
    }

    /// The GRDB settings shared by the store's connections and the watcher's.
    ///
    /// The busy timeout turns a concurrent writer's lock into a wait instead of an immediate `SQLITE_BUSY`.
    static func connectionConfiguration(busyTimeout: TimeInterval, readonly: Bool = false) -> GRDB.Configuration {
        var configuration = GRDB.Configuration()
        configuration.busyMode = .timeout(busyTimeout)
        configuration.readonly = readonly
        configuration.label = "ficus.store"
        // GRDB's default, userInitiated, runs its queues above normal priority (nice -2 to -4 on Linux), so a batch
        // of shadow records could preempt an event loop serving clients. Store work is never what a client waits on.
        configuration.qos = .utility
        return configuration
    }

    /// Runs `body` and turns SQLite and decoding errors into `StoreError`s; errors of a change closure pass unchanged.
    ///
    /// One place maps errors, so every method reports the same words for the same cause.
    func perform<Value: Sendable>(_ body: () async throws -> Value) async throws -> Value {
        do {
            return try await body()
        } catch let failure as ChangeFailed {
            throw failure.error
        } catch {
            throw Self.storeError(error, path: self.path)
        }
    }

    /// Runs `body` in one write transaction committed without waiting for the disk (`PRAGMA synchronous = NORMAL`).
    ///
    /// For telemetry (shadow records, aggregates, metric windows) written every fraction of a second: in WAL mode
    /// such a commit is still atomic and survives a crash of the process; only a power loss may take back the last
    /// ones, which costs some samples, never a configuration. Revisions and the audit log keep the connection's full
    /// synchronous setting, restored before this returns.
    func writeTelemetry(_ body: @escaping @Sendable (Database) throws -> Void) async throws {
        try await self.pool.writeWithoutTransaction { db in
            let previous = try Int.fetchOne(db, sql: "PRAGMA synchronous") ?? 2
            try db.execute(sql: "PRAGMA synchronous = NORMAL")
            defer { try? db.execute(sql: "PRAGMA synchronous = \(previous)") }
            try db.inTransaction {
                try body(db)
                return .commit
            }
        }
    }

    /// Runs one SQL script on the writer connection, outside the model's checks.
    ///
    /// For tests that need a state the API never produces (an undecodable snapshot); not for the CLI.
    func unsafeExecute(_ sql: String) async throws {
        try await self.perform {
            try await self.pool.writeWithoutTransaction { db in
                try db.execute(sql: sql)
            }
        }
    }
}

/// An error thrown by a change closure, carried through the transaction unchanged.
///
/// Keeps it apart from the store's own errors, which are mapped to `StoreError`.
struct ChangeFailed: Error {
    var error: any Error
}
