import FicusCore
import Foundation
import GRDB

/// The configuration store in one SQLite file (WAL mode), shared by the CLI and every proxy on the machine.
///
/// Each revision is a list of content-addressed object versions (a route, an upstream, a segment, a flag, the
/// settings; each distinct version stored once as JSON in `config_objects`), kept whole at checkpoints and as changes
/// against them in between (SQLiteConfigurationStore+Objects.swift, docs/FLEET.md): a revision is still atomic and
/// immutable and reads back as one whole `Configuration`; a flip stores one route and a rollback stores nothing new;
/// a diff compares two configurations with `RevisionDiff`; and model fields added later need no migration (decoding
/// fills in their defaults). The tables beside it, `audit` and `proxies`, are plain rows because
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

    /// The connection: one serialized connection (GRDB's `DatabaseQueue`), in WAL mode set once when the file is
    /// created, reopened when another file takes the store's path (see `StoreConnection`).
    ///
    /// Not a `DatabasePool`: opening a pool writes a throwaway table whenever the file has no WAL, so every open
    /// (even for a read command or a change that is then refused) would modify the file and look like a commit to
    /// every watching proxy. A store's work in one process is small and sequential; other processes read
    /// concurrently through WAL all the same. The watcher and the telemetry file use connections of their own.
    var pool: DatabaseQueue {
        self.connection.current
    }

    /// The rule store's connection, with the identity of the file it is on.
    let connection: StoreConnection

    /// The telemetry file beside the store (shadow records, aggregates, metric windows), opened on first use.
    ///
    /// A file and a connection of their own, so that telemetry never waits on, blocks or fills the rule store.
    let telemetry: TelemetryDatabase

    /// The clock for revision, audit and heartbeat times.
    ///
    /// Injected so that tests can control "seen within" windows.
    let now: @Sendable () -> Date

    /// Opens the store at `path`, creating the file (mode 0600) and its tables when missing and migrating older
    /// schemas; telemetry goes to a file beside it, bounded by `telemetry`.
    ///
    /// A file that is not a database, is damaged, belongs to another application or was written by a newer Ficus is
    /// refused with `StoreError.unreadable` before anything is written to it.
    public init(
        path: String,
        busyTimeout: TimeInterval = 5,
        telemetry limits: TelemetryLimits = TelemetryLimits(),
        now: @escaping @Sendable () -> Date = { Date() }
    ) throws {
        self.path = path
        self.busyTimeout = busyTimeout
        self.now = now
        let telemetry = TelemetryDatabase(storePath: path, limits: limits, busyTimeout: min(busyTimeout, 2))
        self.telemetry = telemetry
        self.connection = try StoreConnection(path: path) {
            try Self.open(path: path, busyTimeout: busyTimeout, telemetry: telemetry)
        }
    }

    /// Opens and migrates the rule store's file at `path`: the start of every instance, and again when the file was
    /// replaced.
    static func open(path: String, busyTimeout: TimeInterval, telemetry: TelemetryDatabase) throws -> DatabaseQueue {
        let queue = try Self.retryingWhileBusy(for: busyTimeout) {
            if FileManager.default.fileExists(atPath: path) {
                try Self.inspect(path: path, busyTimeout: busyTimeout)
            } else {
                try Self.createPrivately(path: path)
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
        try Self.migrate(queue, path: path, telemetry: telemetry)
        return queue
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

    /// Runs `body` in one write transaction, then copies the WAL into the file and empties it
    /// (`wal_checkpoint(TRUNCATE)`).
    ///
    /// Writes to the rule store are rare (commits, heartbeats, canary steps), so an empty WAL at rest costs little and
    /// buys two things: a backup taken with `cp` of the file alone is complete, and a file moved over the store (a
    /// restore with `mv`) is not read through frames left in a WAL by the file it replaced. A checkpoint that cannot
    /// run within 100 ms (a reader on an older snapshot) is left to the next write.
    func write<Value: Sendable>(_ body: @Sendable (Database) throws -> Value) async throws -> Value {
        try await self.write { db, _ in try body(db) }
    }

    /// `write(_:)` for work that reads revisions: `body` also gets the object cache of the file it writes to (taken
    /// with the connection, so that a file moved over the store meanwhile cannot mix two files' object ids).
    func write<Value: Sendable>(_ body: @Sendable (Database, ObjectCache) throws -> Value) async throws -> Value {
        let (queue, cache) = self.connection.currentWithCache
        let value = try await queue.write { db in try body(db, cache) }
        let busyTimeout = Int(self.busyTimeout * 1000)
        _ = try? queue.writeWithoutTransaction { db in
            // The checkpoint waits for readers on older snapshots; a tenth of a second at most, so that a slow
            // reader never makes a commit slow.
            try db.execute(sql: "PRAGMA busy_timeout = 100")
            defer {
                try? db.execute(sql: "PRAGMA busy_timeout = \(busyTimeout)")
            }
            return try Row.fetchOne(db, sql: "PRAGMA wal_checkpoint(TRUNCATE)")
        }
        return value
    }

    /// Runs `body` in a read transaction with the object cache of the file it reads (see `write(_:)`).
    func read<Value: Sendable>(_ body: @Sendable (Database, ObjectCache) throws -> Value) async throws -> Value {
        let (queue, cache) = self.connection.currentWithCache
        return try await queue.read { db in try body(db, cache) }
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

/// The rule store's connection, reopened when the file at the store's path is replaced.
///
/// A connection stays on the inode it opened: after `mv backup.sqlite ficus.sqlite` it would go on reading and
/// writing the old file (heartbeats, canary steps) while every other process uses the new one. Each use compares the
/// path's inode with the connection's (one `stat`, far cheaper than any statement) and, when they differ, closes the
/// old connection and opens the new file, migrated like any other. Closing first matters: SQLite keys its shared
/// memory by inode within a process, and the new file's first connection resets the `-shm` file that an old one
/// would still have mapped. A new file that cannot be opened is tried again at the next use; meanwhile every use
/// fails with the reason.
final class StoreConnection: @unchecked Sendable {
    let path: String
    private let lock = NSLock()
    private var queue: DatabaseQueue
    private var identity: FileIdentity?
    private let open: () throws -> DatabaseQueue
    /// The decoded object versions of the file the connection is on (ids mean other objects in another file).
    private var objects = ObjectCache()

    init(path: String, open: @escaping () throws -> DatabaseQueue) throws {
        self.path = path
        self.open = open
        (self.queue, self.identity) = try FileIdentity.opening(path, open)
    }

    /// The connection to use now: the current one, or one on the file that replaced it.
    var current: DatabaseQueue {
        self.currentWithCache.queue
    }

    /// The connection to use now with the object cache of its file.
    var currentWithCache: (queue: DatabaseQueue, cache: ObjectCache) {
        self.lock.lock()
        defer {
            self.lock.unlock()
        }
        guard let now = FileIdentity(path: self.path), now != self.identity else {
            return (self.queue, self.objects)
        }
        try? self.queue.close()
        self.objects = ObjectCache()
        if let reopened = try? FileIdentity.opening(self.path, self.open) {
            (self.queue, self.identity) = reopened
        }
        return (self.queue, self.objects)
    }
}
