import FicusCore
import Foundation
import GRDB
import Testing

@testable import FicusStore

@Suite("Watching for revisions", .serialized)
struct SQLiteConfigurationStoreWatchTests {
    @Test("the watch starts with the newest revision")
    func startsWithNewest() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        try await store.commit(StoreFixtures.author(), expectRevision: 1) { configuration in
            configuration.killed = true
        }
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        let first = await collector.wait { _ in true }
        #expect(first?.event.revisionNumber == 2)
    }

    @Test("an empty store reports nothing until the first commit")
    func emptyStoreWaitsForFirstCommit() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file, seeded: false)
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        try await Task.sleep(for: .milliseconds(50))
        #expect(collector.events.isEmpty)
        try await store.commit(StoreFixtures.author(), expectRevision: 0) { configuration in
            configuration = StoreFixtures.configuration()
        }
        #expect(await collector.wait { $0.revisionNumber == 1 } != nil)
    }

    @Test("commits from a second store instance are all seen, each in turn (the latency is printed, not judged)")
    func seesOtherInstanceCommits() async throws {
        let file = try TemporaryStoreFile()
        let watched = try await StoreFixtures.store(file)
        let writer = try SQLiteConfigurationStore(path: file.path)
        let collector = EventCollector(watched.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        let initial = try #require(await collector.wait { _ in true })
        #expect(initial.event.revisionNumber == 1)
        var latencies: [Duration] = []
        var position = initial.index + 1
        for step in 0..<20 {
            let revision = try await writer.commit(StoreFixtures.author("flip"), expectRevision: nil) { configuration in
                configuration.routes[0].defaultUpstream = step.isMultiple(of: 2) ? "orders-v2" : "legacy"
            }
            let committed = ContinuousClock.now
            let seen = try #require(await collector.wait(from: position) { $0.revisionNumber == revision.number })
            latencies.append(seen.at - committed)
            position = seen.index + 1
            if case .revision(let stored) = seen.event {
                #expect(stored == revision)
            }
        }
        #expect(collector.events.allSatisfy { $0.failure == nil })
        let sorted = latencies.sorted()
        print("watcher detection latency at a 5 ms poll over 20 commits: median \(sorted[10]), max \(sorted[19])")
    }

    @Test("several commits between two polls are reported as the newest only")
    func reportsOnlyNewest() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        // A poll every 4 s: three commits (each checkpointed, a few disk syncs) fit between two polls even on a
        // loaded 2-core machine.
        let collector = EventCollector(store.watch(pollInterval: 4))
        defer {
            collector.stop()
        }
        #expect(await collector.wait { _ in true }?.event.revisionNumber == 1)
        for name in ["a", "b", "c"] {
            try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                configuration.flags.append(Flag(name: name))
            }
        }
        #expect(await collector.wait(timeout: 10) { $0.revisionNumber == 4 } != nil)
        #expect(collector.events.map(\.revisionNumber) == [1, 4])
    }

    @Test("an undecodable revision is reported as a failure once and a later revision is served again")
    func reportsUndecodableRevision() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        #expect(await collector.wait { _ in true }?.event.revisionNumber == 1)
        try await store.unsafeExecute(
            """
            INSERT INTO config_objects (id, digest, kind, name, body) VALUES (900001, 'future', 'route', 'x', '{"routes": 5}');
            INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint, layout)
            VALUES (2, 'future', 'newer model', '2025-01-01 00:00:00.000', 'x', '[]', 2, '{"objects": [900001]}')
            """
        )
        let failure = try #require(await collector.wait { $0.failure != nil })
        #expect(failure.event.failure?.contains("revision 2 cannot be decoded") == true)
        try await store.appendAudit(StoreFixtures.author("note"), revision: nil, detail: "moves data_version")
        try await Task.sleep(for: .milliseconds(50))
        #expect(collector.events.filter { $0.failure != nil }.count == 1)
        try await store.rollback(to: 1, StoreFixtures.author("rollback"))
        let recovered = try #require(await collector.wait { $0.revisionNumber == 3 })
        if case .revision(let revision) = recovered.event {
            #expect(revision.configuration == StoreFixtures.configuration())
        }
        #expect(!collector.isFinished)
    }

    @Test("a store trashed after the watch started is reported and never ends the watch")
    func survivesCorruption() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        #expect(await collector.wait { _ in true }?.event.revisionNumber == 1)
        for path in [file.path, file.path + "-wal", file.path + "-shm"] {
            try TemporaryStoreFile.overwrite(path: path)
        }
        let failure = await collector.wait(timeout: 15) { $0.failure != nil }
        print("after corruption the watcher reported: \(collector.events.compactMap(\.failure))")
        #expect(failure != nil)
        #expect(collector.events.allSatisfy { $0.revisionNumber == nil || $0.revisionNumber == 1 })
        try await Task.sleep(for: .milliseconds(50))
        #expect(!collector.isFinished)
    }

    @Test("a watch on a missing file reports the failure, keeps polling and recovers when the store appears")
    func missingFileIsReported() async throws {
        let file = try TemporaryStoreFile()
        let watcher = RevisionWatcher(path: file.path, pollInterval: .milliseconds(5), busyTimeout: 1)
        let (stream, continuation) = AsyncStream.makeStream(of: StoreEvent.self)
        let stop = WatchStop()
        watcher.start(continuation, stop: stop)
        let collector = EventCollector(stream)
        let failure = try #require(await collector.wait { $0.failure != nil })
        #expect(failure.event.failure?.contains("cannot open the file") == true)
        #expect(!FileManager.default.fileExists(atPath: file.path))
        _ = try await StoreFixtures.store(file)
        #expect(await collector.wait { $0.revisionNumber == 1 } != nil)
        stop.stop()
        let deadline = ContinuousClock.now + .seconds(1)
        while !collector.isFinished && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        #expect(collector.isFinished)
    }

    @Test("cancelling the consuming task ends the watch")
    func cancellationEndsWatch() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let stream = store.watch(pollInterval: 0.005)
        let consumer = Task {
            var count = 0
            for await _ in stream {
                count += 1
            }
            return count
        }
        try await Task.sleep(for: .milliseconds(50))
        consumer.cancel()
        #expect(await consumer.value == 1)
    }

    /// A store at revision 3 (flags `a` and `b` added to the fixture) and a watch on it that has reported revision 3.
    static func watchedAtThree(_ file: TemporaryStoreFile) async throws -> (SQLiteConfigurationStore, EventCollector) {
        let store = try await StoreFixtures.store(file)
        for name in ["a", "b"] {
            try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                configuration.flags.append(Flag(name: name))
            }
        }
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        #expect(await collector.wait { _ in true }?.event.revisionNumber == 3)
        return (store, collector)
    }

    @Test("a store file replaced by another (mv) is noticed and its newest revision reported, though older")
    func replacedFileIsNoticed() async throws {
        let file = try TemporaryStoreFile()
        let (_, collector) = try await Self.watchedAtThree(file)
        defer {
            collector.stop()
        }
        let backup = try TemporaryStoreFile()
        do {
            _ = try await StoreFixtures.store(backup)
        }
        #expect(rename(backup.path, file.path) == 0)
        let replaced = try #require(await collector.wait { $0.replacement != nil })
        #expect(replaced.event.replacement?.revision == 1)
        #expect(replaced.event.replacement?.detail.contains("the store file was replaced (inode") == true)
        if case .replaced(let revision, _) = replaced.event {
            #expect(revision.configuration.flags.isEmpty)
        }
        // Commits to the new file are followed as usual.
        let writer = try SQLiteConfigurationStore(path: file.path)
        try await writer.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.killed = true
        }
        #expect(await collector.wait { $0.revisionNumber == 2 } != nil)
        #expect(collector.events.allSatisfy { $0.failure == nil }, "\(collector.events)")
    }

    @Test("a store restored in place to an earlier revision (backup API, sqlite3 .restore) is noticed")
    func restoredInPlaceIsNoticed() async throws {
        let file = try TemporaryStoreFile()
        let (_, collector) = try await Self.watchedAtThree(file)
        defer {
            collector.stop()
        }
        let backup = try TemporaryStoreFile()
        do {
            _ = try await StoreFixtures.store(backup)
        }
        let source = try DatabaseQueue(path: backup.path)
        let destination = try DatabaseQueue(path: file.path)
        try source.backup(to: destination)
        try source.close()
        try destination.close()
        let restored = try #require(await collector.wait { $0.replacement != nil })
        #expect(restored.event.replacement?.revision == 1)
        #expect(
            restored.event.replacement?.detail
                == "the store went back from revision 3 to revision 1: it was restored from an earlier copy")
    }

    @Test("a copy of another store with as many revisions is told apart by its revision's time")
    func sameNumberOtherCopyIsNoticed() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        #expect(await collector.wait { _ in true }?.event.revisionNumber == 1)
        try await Task.sleep(for: .milliseconds(20))
        let other = try TemporaryStoreFile()
        do {
            let copy = try await StoreFixtures.store(other)
            try await copy.unsafeExecute("SELECT 1")
        }
        let source = try DatabaseQueue(path: other.path)
        let destination = try DatabaseQueue(path: file.path)
        try source.backup(to: destination)
        try source.close()
        try destination.close()
        let restored = try #require(await collector.wait { $0.replacement != nil })
        #expect(restored.event.replacement?.revision == 1)
        #expect(restored.event.replacement?.detail.contains("is not the one served") == true)
    }
}

extension StoreEvent {
    /// The revision number and detail of a `.replaced` event, or nil.
    var replacement: (revision: Int, detail: String)? {
        if case .replaced(let revision, let detail) = self {
            return (revision.number, detail)
        }
        return nil
    }
}
