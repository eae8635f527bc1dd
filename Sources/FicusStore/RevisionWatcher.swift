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
        /// Only newer revisions are reported, so a store restored from an older backup does not go backwards.
        var reportedRevision = 0

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
    }

    /// Polls until the task is cancelled, then finishes the stream.
    ///
    /// Errors never end the loop: the consumer keeps serving its last good revision, and the watcher reopens its
    /// connection (at most every 100 ms) in case the file was replaced or repaired.
    func run(_ continuation: AsyncStream<StoreEvent>.Continuation) async {
        var connection: DatabaseQueue?
        var state = State()
        while !Task.isCancelled {
            do {
                let queue = try connection ?? self.open()
                connection = queue
                let known = state
                let poll = try await queue.read { db in
                    try self.poll(db, known: known)
                }
                state.busySince = nil
                self.apply(poll, to: &state, continuation)
            } catch {
                if Task.isCancelled {
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
                    try? connection?.close()
                    connection = nil
                }
                if !briefly {
                    self.report("\(storeError)", state: &state, continuation)
                }
            }
            // Without a connection the file could not be read at all; reopening it every few milliseconds would only
            // burn CPU, and a tenth of a second is still quick to notice a repair.
            let pause = connection == nil ? max(self.pollInterval, .milliseconds(100)) : self.pollInterval
            do {
                try await Task.sleep(for: pause)
            } catch {
                break
            }
        }
        try? connection?.close()
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
        let dataVersion = try Int.fetchOne(db, sql: "PRAGMA data_version") ?? 0
        if let knownVersion = known.dataVersion, knownVersion == dataVersion {
            return .unchanged
        }
        let newest = try SQLiteConfigurationStore.fetchLatestNumber(db)
        guard newest > known.reportedRevision else {
            return .checked(dataVersion: dataVersion)
        }
        do {
            guard let revision = try SQLiteConfigurationStore.fetchRevision(db, number: newest, path: self.path) else {
                return .checked(dataVersion: dataVersion)
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
            state.dataVersion = dataVersion
            state.reportedFailure = nil
        case .newer(let dataVersion, let revision):
            state.dataVersion = dataVersion
            state.reportedRevision = revision.number
            state.reportedFailure = nil
            continuation.yield(.revision(revision))
        case .undecodable(let dataVersion, let message):
            state.dataVersion = dataVersion
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
