import Foundation

extension SQLiteConfigurationStore {
    /// Polls `PRAGMA data_version` on a dedicated read-only connection every `pollInterval` seconds (at least 1 ms)
    /// and reports each newer revision, from this or any other process.
    ///
    /// Polling runs on a thread of its own (one wake-up per poll), never on a caller's event loop or the cooperative
    /// pool. Only the newest of several revisions committed between two polls is reported, and when the consumer falls
    /// behind the stream keeps the newest events, since a proxy only ever needs the latest table. A failure is reported
    /// once per episode as `.failed` and polling goes on. A file moved over the store (another inode) or restored to an
    /// earlier state is reported as `.replaced` with its newest revision, even an older one.
    public func watch(pollInterval: TimeInterval) -> AsyncStream<StoreEvent> {
        let watcher = RevisionWatcher(
            path: self.path,
            pollInterval: .nanoseconds(Int64(max(pollInterval, 0.001) * 1_000_000_000)),
            busyTimeout: min(self.busyTimeout, 1)
        )
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self, bufferingPolicy: .bufferingNewest(16))
        let stop = WatchStop()
        continuation.onTermination = { _ in
            stop.stop()
        }
        watcher.start(continuation, stop: stop)
        return stream
    }
}
