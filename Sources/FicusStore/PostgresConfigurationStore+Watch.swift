import Foundation
import Logging
import NIOCore
import PostgresNIO

extension PostgresConfigurationStore {
    /// Listens on `ficus_revisions` on a dedicated connection and reports each newer revision; checks the newest
    /// revision every `safetyNet` (a second) as well, for notifications lost while reconnecting.
    ///
    /// `pollInterval` is the SQLite watcher's; here notifications do its work. When the connection fails or cannot be
    /// made, `.failed` says so (the proxy keeps its table and shows `degraded`), and the watcher reconnects with a
    /// back-off from 0.1 s doubling to 5 s; after each (re)connection it reports the newest revision even when it is
    /// the one served, so that the proxy clears its error.
    public func watch(pollInterval: TimeInterval) -> AsyncStream<StoreEvent> {
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .bufferingNewest(16))
        let task = Task {
            await PostgresRevisionWatch(store: self, continuation: continuation).run()
            continuation.finish()
        }
        continuation.onTermination = { _ in
            task.cancel()
        }
        return stream
    }
}

/// One watcher's loop: connect, LISTEN, check on every notification and every `safetyNet`, reconnect after failures.
struct PostgresRevisionWatch {
    let store: PostgresConfigurationStore
    let continuation: AsyncStream<StoreEvent>.Continuation
    /// The back-off between reconnections.
    static let firstPause: Duration = .milliseconds(100)
    static let longestPause: Duration = .seconds(5)

    func run() async {
        var delivered: Int?
        var pause = Self.firstPause
        while !Task.isCancelled {
            do {
                let connection = try await self.store.pool.connect()
                pause = Self.firstPause
                do {
                    try await self.follow(connection, delivered: &delivered)
                } catch {
                    try? await connection.close()
                    throw error
                }
                try? await connection.close()
            } catch {
                guard !Task.isCancelled else {
                    return
                }
                let mapped = PostgresConfigurationStore.storeError(error, location: self.store.url.description)
                var cause = "\(mapped)"
                if case StoreError.unreachable(let store, let detail) = mapped {
                    // Without the CLI's "nothing was changed": a proxy changes nothing anyway.
                    cause = "store '\(store)' cannot be reached: \(detail)"
                }
                self.continuation.yield(
                    .failed("\(cause); serving the last good revision, reconnecting in \(Self.seconds(pause))")
                )
                try? await Task.sleep(for: pause)
                pause = min(pause * 2, Self.longestPause)
            }
        }
    }

    /// LISTENs on `connection` and reports revisions until the connection fails (throws) or the task is cancelled.
    ///
    /// Three tasks, the first to end ending all: one waits for notifications (its sequence fails when the server
    /// closes the connection), one ticks every `safetyNet`, one checks on every wake-up. A query written to a
    /// connection that has already closed would never be answered, so each check first makes sure it is open.
    private func follow(_ connection: PostgresConnection, delivered: inout Int?) async throws {
        let session = PostgresSession(connection: connection, logger: self.store.logger)
        let location = self.store.url.description
        try await connection.listen(on: PostgresConfigurationStore.channel) { notifications in
            // Listening before the first check: a revision committed in between is both seen and notified.
            let first = try await self.check(session, delivered: delivered, always: true)
            delivered = first
            let (wakes, wake) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
            let checked = try await withThrowingTaskGroup(of: Int?.self) { group in
                group.addTask {
                    for try await notification in notifications {
                        if notification.payload == PostgresConfigurationStore.rolloutPayload {
                            self.continuation.yield(.changed)
                        } else {
                            wake.yield()
                        }
                    }
                    throw StoreError.unreachable(store: location, detail: "the server closed the connection")
                }
                group.addTask {
                    while true {
                        try await Task.sleep(for: self.store.safetyNet)
                        wake.yield()
                    }
                }
                group.addTask {
                    var last = first
                    for await _ in wakes {
                        guard !connection.isClosed else {
                            throw StoreError.unreachable(store: location, detail: "the server closed the connection")
                        }
                        last = try await self.check(session, delivered: last, always: false)
                    }
                    return last
                }
                defer {
                    // Closing fails a query still waiting on a dead connection, so the cancelled tasks can end.
                    let closing: EventLoopFuture<Void> = connection.close()
                    _ = closing
                    group.cancelAll()
                }
                return try await group.next() ?? nil
            }
            delivered = checked
        }
    }

    /// Reports the newest revision when it differs from `delivered` (or `always`); returns the number now delivered.
    ///
    /// A newest revision older than the one delivered means the database was restored from a backup: reported as
    /// `.replaced`, to be served all the same.
    private func check(_ session: PostgresSession, delivered: Int?, always: Bool) async throws -> Int? {
        let newest = try await self.store.latestNumber(session)
        guard newest > 0, always || newest != delivered else {
            return delivered
        }
        do {
            if let delivered, newest < delivered {
                // Restored from a backup: its object ids may mean other versions than the ones cached.
                self.store.objects.clear()
            }
            guard let revision = try await self.store.fetchRevision(session, number: newest) else {
                return delivered
            }
            if let delivered, newest < delivered {
                self.continuation.yield(
                    .replaced(
                        revision,
                        detail: "the database's newest revision is \(newest), older than \(delivered) served before"
                    )
                )
            } else {
                self.continuation.yield(.revision(revision))
            }
        } catch let error as StoreError {
            // A revision that cannot be decoded: reported, and not tried again until a newer one comes.
            self.continuation.yield(.failed("\(error)"))
        }
        return newest
    }

    private static func seconds(_ duration: Duration) -> String {
        let (seconds, attoseconds) = duration.components
        return String(format: "%.1f s", Double(seconds) + Double(attoseconds) / 1e18)
    }
}
