import FicusCore
import Foundation
import GRDB

/// Polls one store file for newer revisions on a connection of its own and reports them as `StoreEvent`s.
///
/// SQLite has no cross-process notification, and GRDB's observation only sees this process's writes. `PRAGMA
/// data_version` changes whenever another connection commits (any process, any store instance) and costs one
/// cheap read, so polling it every few milliseconds on a dedicated connection finds other processes' commits
/// quickly and loads a snapshot only when something changed.
struct RevisionWatcher: Sendable {
    /// The database file.
    ///
    /// The watcher opens it read-only, so a missing file is reported rather than created.
    var path: String

    /// The time between polls.
    ///
    /// The detection latency is at most this plus one read (~0.3 ms).
    var pollInterval: Duration

    /// How long a poll waits for a lock (WAL readers only wait during recovery).
    ///
    /// Short, so that a stuck file shows up as a failure instead of a silent stall.
    var busyTimeout: TimeInterval

    /// The object versions decoded so far, so that applying a revision decodes only what it changed; emptied whenever
    /// the connection is opened again (another file's ids mean other objects).
    let cache = ObjectCache()

    /// What the watcher knows between polls.
    ///
    /// Copied into each poll so that the database closure only reads values.
    struct State: Sendable {
        /// The `data_version` seen at the last successful poll, or nil to force a full check.
        ///
        /// Nil at the start and after a failure, since another connection may have committed meanwhile.
        var dataVersion: Int?

        /// The newest revision reported so far, or 0.
        ///
        /// Newer revisions are reported as they come; an older one only as `.replaced`, when the file was restored.
        var reportedRevision = 0

        /// When the reported revision was created, to tell it from another copy's revision of the same number.
        var reportedCreatedAt: Date?

        /// The file the reported revision came from, or nil before the first report.
        var identity: FileIdentity?

        /// Set when the connection was reopened on another file than the one reported from: the next successful poll
        /// reports that file's newest revision as `.replaced`, whatever its number.
        var replacement: String?

        /// The last failure reported, or nil after a successful poll.
        ///
        /// A failure that persists is reported once, not at every poll.
        var reportedFailure: String?

        /// When polls started failing with `SQLITE_BUSY`, or nil.
        ///
        /// A busy file is normal for a moment (another process opening it, a checkpoint); it is only reported when it
        /// lasts longer than the busy timeout.
        var busySince: ContinuousClock.Instant?
    }

    /// What one poll found.
    ///
    /// Computed inside the read transaction and acted upon outside it.
    enum Poll: Sendable {
        /// `data_version` has not changed: nothing was committed since the last poll.
        case unchanged
        /// Something was committed, but not a revision newer than the one reported.
        case checked(dataVersion: Int)
        /// A newer revision; only the newest when several landed between polls.
        case newer(dataVersion: Int, revision: StoredRevision)
        /// The newest revision exists but its snapshot cannot be decoded.
        case undecodable(dataVersion: Int, message: String)
        /// The file was replaced or restored: its newest revision, older or not, is to be served.
        case replaced(dataVersion: Int, revision: StoredRevision, detail: String)
    }

    /// Polls on a thread of its own until `stop` is stopped, then finishes the stream.
    ///
    /// A thread of its own, because a poll every few milliseconds through Swift concurrency costs a timer thread, a
    /// cooperative thread and GRDB's queue thread per poll: on a thread that sleeps on a condition and reads
    /// synchronously it is one wake-up. Returns at once; the thread ends after its current poll once `stop` is stopped.
    func start(_ continuation: AsyncStream<StoreEvent>.Continuation, stop: WatchStop) {
        let thread = Thread {
            // For top and perf (Foundation's `name` does not reach the kernel on Linux); at most 15 bytes.
            try? "ficus-watch".write(toFile: "/proc/thread-self/comm", atomically: false, encoding: .utf8)
            self.run(continuation, stop: stop)
        }
        thread.start()
    }

    /// The polling loop: blocks the calling thread until `stop` is stopped.
    ///
    /// Errors never end the loop: the consumer keeps serving its last good revision, and the watcher reopens its
    /// connection (at most every 100 ms) in case the file was replaced or repaired. Every poll also compares the
    /// path's inode with the connection's: a connection stays on the file it opened, so a file moved over the store
    /// would otherwise never be seen.
    func run(_ continuation: AsyncStream<StoreEvent>.Continuation, stop: WatchStop) {
        var connection: (queue: DatabaseQueue, identity: FileIdentity?)?
        var state = State()
        while !stop.isStopped {
            do {
                if let open = connection, FileIdentity(path: self.path) != open.identity {
                    // Replaced or removed: reopen now; a removed file fails to open and is reported as such.
                    try? open.queue.close()
                    connection = nil
                }
                let current: (queue: DatabaseQueue, identity: FileIdentity?)
                if let open = connection {
                    current = open
                } else {
                    let opened = try FileIdentity.opening(self.path) { try self.open() }
                    current = (opened.value, opened.identity)
                    connection = current
                    self.cache.clear()
                    state.dataVersion = nil
                    if let reported = state.identity, current.identity != reported {
                        state.replacement =
                            "the store file was replaced (\(reported) → \(current.identity.map { "\($0)" } ?? "?"))"
                    }
                }
                let queue = current.queue
                let identity = current.identity
                let known = state
                // Not `read`: its transaction and query-only pragmas cost four statements more than the poll itself.
                // `poll` opens a transaction when there is something to load.
                let poll = try queue.inDatabase { db in
                    try self.poll(db, known: known)
                }
                state.busySince = nil
                state.identity = identity
                self.apply(poll, to: &state, continuation)
            } catch {
                if stop.isStopped {
                    break
                }
                let storeError = SQLiteConfigurationStore.storeError(error, path: self.path)
                state.dataVersion = nil
                var briefly = false
                if case StoreError.busy = storeError {
                    let since = state.busySince ?? .now
                    state.busySince = since
                    briefly = ContinuousClock.now - since < .milliseconds(Int(self.busyTimeout * 1000))
                } else {
                    try? connection?.queue.close()
                    connection = nil
                }
                if !briefly {
                    self.report("\(storeError)", state: &state, continuation)
                }
            }
            // Without a connection the file could not be read at all; reopening it every few milliseconds would only
            // burn CPU, and a tenth of a second is still quick to notice a repair.
            let pause = connection == nil ? max(self.pollInterval, .milliseconds(100)) : self.pollInterval
            guard stop.pause(for: pause) else {
                break
            }
        }
        try? connection?.queue.close()
        continuation.finish()
    }

    /// Opens the watcher's read-only connection.
    ///
    /// A connection of its own: `data_version` only counts other connections' commits, including the store's.
    func open() throws -> DatabaseQueue {
        try DatabaseQueue(
            path: self.path,
            configuration: SQLiteConfigurationStore.connectionConfiguration(
                busyTimeout: self.busyTimeout,
                readonly: true
            )
        )
    }

    /// Checks `data_version` and, when it moved (or on the first poll), loads the newest revision if it is newer.
    ///
    /// The revision number is compared as well because `data_version` says that something was committed, not that it
    /// was a revision (a heartbeat or an audit entry moves it too).
    func poll(_ db: Database, known: State) throws -> Poll {
        // Outside a transaction the pragma is its own read transaction, so it sees every commit made before it. A
        // cached statement: compiling it again at every poll was a third of the poll's CPU.
        let dataVersion = try Int.fetchOne(db.cachedStatement(sql: "PRAGMA data_version")) ?? 0
        if let knownVersion = known.dataVersion, knownVersion == dataVersion, known.replacement == nil {
            return .unchanged
        }
        // The newest number and its snapshot from one read transaction. A commit landing after the pragma is seen
        // here already, and again (harmlessly) at the next poll, since it moved `data_version` past the one kept.
        var poll = Poll.checked(dataVersion: dataVersion)
        try db.inTransaction(.deferred) {
            poll = try self.load(db, dataVersion: dataVersion, known: known)
            return .commit
        }
        return poll
    }

    /// Loads the newest revision if it is newer than the one reported, or if the file was replaced or restored
    /// (inside `poll`'s transaction).
    ///
    /// Revisions are never deleted, so a newest revision older than the one reported, or one of the same number
    /// created at another time, can only mean that the file now holds an earlier or another copy of the store.
    private func load(_ db: Database, dataVersion: Int, known: State) throws -> Poll {
        let newest = try SQLiteConfigurationStore.fetchLatestNumber(db)
        var detail = known.replacement
        if detail == nil, known.reportedRevision > 0 {
            if newest < known.reportedRevision {
                detail = "the store went back from revision \(known.reportedRevision) to revision \(newest): "
                    + "it was restored from an earlier copy"
            } else if newest == known.reportedRevision, let reportedAt = known.reportedCreatedAt,
                let createdAt = try Date.fetchOne(
                    db,
                    sql: "SELECT created_at FROM revisions WHERE number = ?",
                    arguments: [newest]
                ),
                abs(createdAt.timeIntervalSince(reportedAt)) > 0.001
            {
                detail = "revision \(newest) in the store is not the one served (created \(createdAt), not "
                    + "\(reportedAt)): the store was restored from another copy"
            }
        }
        guard newest > known.reportedRevision || (detail != nil && newest > 0) else {
            return .checked(dataVersion: dataVersion)
        }
        do {
            if detail != nil {
                self.cache.clear()
            }
            guard
                let revision = try SQLiteConfigurationStore.fetchRevision(
                    db, number: newest, path: self.path, cache: self.cache)
            else {
                return .checked(dataVersion: dataVersion)
            }
            if let detail {
                return .replaced(dataVersion: dataVersion, revision: revision, detail: detail)
            }
            return .newer(dataVersion: dataVersion, revision: revision)
        } catch let error as StoreError {
            return .undecodable(dataVersion: dataVersion, message: "\(error)")
        }
    }

    /// Updates the state after a successful poll and yields what the consumer needs to know.
    ///
    /// An undecodable revision is reported and skipped until the next commit, without reloading it at every poll.
    func apply(_ poll: Poll, to state: inout State, _ continuation: AsyncStream<StoreEvent>.Continuation) {
        switch poll {
        case .unchanged:
            // Nothing new was read: a failure reported earlier still stands and is not reported again.
            break
        case .checked(let dataVersion):
            // Not after a (re)open, whose first poll always checks: only a commit seen between two polls is news.
            let changed = state.dataVersion != nil && state.dataVersion != dataVersion
            state.dataVersion = dataVersion
            state.reportedFailure = nil
            state.replacement = nil
            if changed {
                continuation.yield(.changed)
            }
        case .newer(let dataVersion, let revision):
            state.dataVersion = dataVersion
            state.reportedRevision = revision.number
            state.reportedCreatedAt = revision.createdAt
            state.reportedFailure = nil
            state.replacement = nil
            continuation.yield(.revision(revision))
        case .replaced(let dataVersion, let revision, let detail):
            state.dataVersion = dataVersion
            state.reportedRevision = revision.number
            state.reportedCreatedAt = revision.createdAt
            state.reportedFailure = nil
            state.replacement = nil
            continuation.yield(.replaced(revision, detail: detail))
        case .undecodable(let dataVersion, let message):
            state.dataVersion = dataVersion
            state.replacement = nil
            self.report(message, state: &state, continuation)
        }
    }

    /// Yields `.failed(message)` unless the same failure was the last one reported.
    ///
    /// A consumer logs and counts failures; one entry per episode is what an operator wants to read.
    func report(_ message: String, state: inout State, _ continuation: AsyncStream<StoreEvent>.Continuation) {
        guard state.reportedFailure != message else {
            return
        }
        state.reportedFailure = message
        continuation.yield(.failed(message))
    }
}

/// Stops a `RevisionWatcher`'s thread, and lets the thread sleep between polls until then.
final class WatchStop: @unchecked Sendable {
    private let condition = NSCondition()
    private var stopped = false

    /// Ends the polling loop: a sleeping watcher wakes at once, a polling one stops after its poll.
    func stop() {
        self.condition.lock()
        self.stopped = true
        self.condition.broadcast()
        self.condition.unlock()
    }

    var isStopped: Bool {
        self.condition.lock()
        defer { self.condition.unlock() }
        return self.stopped
    }

    /// Sleeps for `duration` unless stopped first; false once stopped.
    func pause(for duration: Duration) -> Bool {
        let (seconds, attoseconds) = duration.components
        let deadline = Date(timeIntervalSinceNow: Double(seconds) + Double(attoseconds) / 1e18)
        self.condition.lock()
        defer { self.condition.unlock() }
        while !self.stopped {
            if !self.condition.wait(until: deadline) {
                break
            }
        }
        return !self.stopped
    }
}
