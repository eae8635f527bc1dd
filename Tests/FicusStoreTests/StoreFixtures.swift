import FicusCore
import Foundation

@testable import FicusStore

/// Shared building blocks for store tests: temporary files, authors and a small valid configuration.
///
/// Every test works on a file of its own under the temporary directory, so tests can run in parallel and a failed
/// test leaves nothing that another could trip over.
enum StoreFixtures {
    static let upstreams = [
        Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 8080)]),
        Upstream(name: "orders-v2", addresses: [Endpoint(host: "127.0.0.1", port: 9090)]),
    ]

    /// Two routes, `orders` on `/orders` and `users` on `/users`, both on `legacy`.
    static func configuration() -> Configuration {
        Configuration(
            upstreams: self.upstreams,
            routes: [
                Route(name: "orders", path: "/orders", legacy: "legacy"),
                Route(name: "users", path: "/users", legacy: "legacy"),
            ]
        )
    }

    /// An author for `action`.
    static func author(_ action: String = "apply", reason: String = "testing") -> ChangeAuthor {
        ChangeAuthor(author: "tester", reason: reason, action: action)
    }

    /// How often consecutive revisions of a two-writer test come from different writers (flags `a-…` and `b-…`).
    ///
    /// Shows whether the writers really overlapped or merely ran one after the other.
    static func writerSwitches(_ history: [RevisionSummary]) -> Int {
        let writers = history.reversed().compactMap { revision in
            revision.summary.hasPrefix("+ flag ") ? revision.summary.dropFirst(7).first : nil
        }
        return zip(writers, writers.dropFirst()).filter { $0 != $1 }.count
    }

    /// A store on a new file, with the fixture configuration committed as revision 1 when `seeded`.
    static func store(
        _ file: TemporaryStoreFile,
        seeded: Bool = true,
        now: @escaping @Sendable () -> Date = { Date() }
    ) async throws -> SQLiteConfigurationStore {
        let store = try SQLiteConfigurationStore(path: file.path, now: now)
        try await Self.seed(store, seeded)
        return store
    }
}

/// A store path in a directory of its own, removed with everything SQLite put beside it (`-wal`, `-shm`).
///
/// A directory rather than a file, so that the WAL side files are removed too.
final class TemporaryStoreFile: Sendable {
    let directory: URL
    let path: String

    init() throws {
        self.directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ficus-store-tests", isDirectory: true)
            .appendingPathComponent(UUID().uuidString, isDirectory: true)
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.path = self.directory.appendingPathComponent("ficus.sqlite").path
    }

    deinit {
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// The file's bytes, for before/after comparisons.
    func contents() throws -> Data {
        try Data(contentsOf: URL(fileURLWithPath: self.path))
    }

    /// Replaces the first 100 bytes of the store (the SQLite header) with garbage, keeping the rest.
    func overwriteHeader() throws {
        try Self.overwrite(path: self.path, count: 100)
    }

    /// Replaces `count` bytes at the start of the file at `path` (all of it when nil) with garbage, in place.
    ///
    /// In place, as a failing disk or a stray `dd` would: open connections keep their file descriptors.
    static func overwrite(path: String, count: Int? = nil) throws {
        let handle = try FileHandle(forUpdating: URL(fileURLWithPath: path))
        defer {
            try? handle.close()
        }
        let length = try count ?? Int(handle.seekToEnd())
        try handle.seek(toOffset: 0)
        try handle.write(contentsOf: Data((0..<length).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }))
        try handle.synchronize()
    }
}

/// A clock that tests move by hand.
///
/// Lets heartbeat tests place proxies in and out of a "seen within" window without sleeping.
final class TestClock: @unchecked Sendable {
    private let lock = NSLock()
    private var current: Date

    init(_ start: Date = Date(timeIntervalSince1970: 1_750_000_000)) {
        self.current = start
    }

    var now: Date {
        self.lock.withLock { self.current }
    }

    func advance(by interval: TimeInterval) {
        self.lock.withLock { self.current.addTimeInterval(interval) }
    }
}

/// An error a change closure throws, to check that it comes out unchanged.
struct ClosureFailed: Error, Equatable {
    var reason: String
}

extension StoreEvent {
    /// The revision number of a `.revision` event, or nil.
    var revisionNumber: Int? {
        if case .revision(let revision) = self {
            return revision.number
        }
        return nil
    }

    /// The message of a `.failed` event, or nil.
    var failure: String? {
        if case .failed(let message) = self {
            return message
        }
        return nil
    }
}

/// Consumes a watcher's stream in a task of its own and keeps every event with the time it arrived.
///
/// Tests wait on the collected events with a deadline, which a bare `for await` cannot give; `stop()` cancels the
/// consuming task, which is how a proxy ends its watch.
final class EventCollector: @unchecked Sendable {
    private let lock = NSLock()
    private var received: [(event: StoreEvent, at: ContinuousClock.Instant)] = []
    private var ended = false
    private var task: Task<Void, Never>?

    init(_ stream: AsyncStream<StoreEvent>) {
        let task = Task { [self] in
            for await event in stream {
                let now = ContinuousClock.now
                self.lock.withLock { self.received.append((event, now)) }
            }
            self.lock.withLock { self.ended = true }
        }
        self.lock.withLock { self.task = task }
    }

    /// The events so far, oldest first.
    var events: [StoreEvent] {
        self.lock.withLock { self.received.map(\.event) }
    }

    /// Whether the stream has finished.
    var isFinished: Bool {
        self.lock.withLock { self.ended }
    }

    /// Cancels the consuming task, which ends the watch.
    func stop() {
        self.lock.withLock { self.task }?.cancel()
    }

    /// The first event at or after position `start` that satisfies `predicate`, with its arrival time, waiting up to
    /// `timeout` seconds.
    func wait(
        from start: Int = 0,
        timeout: TimeInterval = 30,
        for predicate: (StoreEvent) -> Bool
    ) async -> (event: StoreEvent, at: ContinuousClock.Instant, index: Int)? {
        let deadline = ContinuousClock.now + .milliseconds(Int(timeout * 1000))
        while ContinuousClock.now < deadline {
            let found = self.lock.withLock { () -> (StoreEvent, ContinuousClock.Instant, Int)? in
                guard start < self.received.count else {
                    return nil
                }
                for index in start..<self.received.count where predicate(self.received[index].event) {
                    return (self.received[index].event, self.received[index].at, index)
                }
                return nil
            }
            if let found {
                return found
            }
            try? await Task.sleep(for: .milliseconds(1))
        }
        return nil
    }
}
