import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// The configuration cache a proxy starts from when its store cannot be read, and the store it opens later.
@Suite("Configuration cache")
struct ServedConfigurationCacheTests {
    static func revision(_ number: Int = 7) -> StoredRevision {
        StoredRevision(
            number: number,
            author: "tester",
            reason: "testing",
            createdAt: Date(timeIntervalSince1970: 1_800_000_000),
            summary: "+ route orders",
            configuration: StoreFixtures.configuration()
        )
    }

    @Test func aWrittenRevisionReadsBackForItsStoreOnly() throws {
        let file = try TemporaryStoreFile()
        let cache = ServedConfigurationCache(path: file.path + ".served.json")
        try cache.write(Self.revision(), store: file.path, now: Date(timeIntervalSince1970: 1_800_000_100))
        let entry = try cache.read(store: file.path)
        #expect(entry.revision == Self.revision())
        #expect(entry.store == file.path)
        #expect(entry.cachedAt == Date(timeIntervalSince1970: 1_800_000_100))
        // Nothing but the cache itself is left in the directory (the temporary file was renamed over it).
        let names = try FileManager.default.contentsOfDirectory(atPath: file.directory.path)
        #expect(names == ["ficus.sqlite.served.json"])

        #expect(throws: ServedConfigurationCacheError(
            path: cache.path, problem: "line 1, field store: written for '\(file.path)', not 'elsewhere.sqlite'")
        ) {
            try cache.read(store: "elsewhere.sqlite")
        }
    }

    @Test func aNewerWriteReplacesTheFileWhole() throws {
        let file = try TemporaryStoreFile()
        let cache = ServedConfigurationCache(path: file.path + ".served.json")
        try cache.write(Self.revision(7), store: "s")
        var later = Self.revision(8)
        later.configuration.routes.removeAll()
        try cache.write(later, store: "s")
        #expect(try cache.read(store: "s").revision == later)
    }

    @Test func damageAnywhereIsRefusedWithWhere() throws {
        let file = try TemporaryStoreFile()
        let cache = ServedConfigurationCache(path: file.path + ".served.json")
        try cache.write(Self.revision(), store: "s")
        let good = try [UInt8](Data(contentsOf: URL(fileURLWithPath: cache.path)))
        let newline = try #require(good.firstIndex(of: UInt8(ascii: "\n")))

        func refusal(_ bytes: [UInt8]) throws -> String {
            try Data(bytes).write(to: URL(fileURLWithPath: cache.path))
            do {
                _ = try cache.read(store: "s")
                return "read"
            } catch let error as ServedConfigurationCacheError {
                return error.problem
            }
        }
        // Truncated anywhere in the configuration (a torn copy): the byte count and digest disagree.
        for cut in [newline + 1, newline + 2, good.count / 2, good.count - 1] {
            #expect(try refusal(Array(good[..<cut])).hasPrefix("damaged"))
        }
        // One byte changed.
        var flipped = good
        flipped[good.count - 2] ^= 0x01
        #expect(try refusal(flipped).hasPrefix("damaged"))
        // No header line, a header that is not one, another format.
        #expect(try refusal(Array("{}".utf8)) == "line 1: no header line")
        #expect(try refusal(Array("nonsense\n{}".utf8)).hasPrefix("line 1: not a cache header"))
        let header = String(decoding: good[..<newline], as: UTF8.self)
            .replacingOccurrences(of: "ficus-served-configuration/1", with: "ficus-served-configuration/9")
        #expect(
            try refusal(Array(header.utf8) + good[newline...])
                == "line 1, field format: 'ficus-served-configuration/9', expected 'ficus-served-configuration/1'")
        // A payload whose digest matches but which is no configuration.
        let payload = Array("[1,2]".utf8)
        let forged = header.replacingOccurrences(of: "/9", with: "/1")
            .replacingOccurrences(
                of: #""bytes":\d+"#, with: "\"bytes\":\(payload.count)", options: .regularExpression)
            .replacingOccurrences(
                of: #""sha256":"[0-9a-f]+""#, with: "\"sha256\":\"\(ServedConfigurationCache.digest(payload))\"",
                options: .regularExpression)
        #expect(try refusal(Array(forged.utf8) + [UInt8(ascii: "\n")] + payload).hasPrefix("line 2:"))
        // Missing.
        try FileManager.default.removeItem(atPath: cache.path)
        #expect(throws: ServedConfigurationCacheError(path: cache.path, problem: "does not exist")) {
            try cache.read(store: "s")
        }
    }

    @Test func anUnwritableCacheSaysSoAndLeavesTheOldFile() throws {
        let file = try TemporaryStoreFile()
        let cache = ServedConfigurationCache(path: file.directory.appendingPathComponent("no/such/dir/c.json").path)
        #expect(throws: ServedConfigurationCacheError.self) {
            try cache.write(Self.revision(), store: "s")
        }
    }

    @Test func defaultPathsFollowTheStore() throws {
        #expect(ServedConfigurationCache.defaultPath(for: .sqlite(path: "/var/lib/f.sqlite")) == "/var/lib/f.sqlite.served.json")
        let url = try PostgresStoreURL(parsing: "postgres://ficus:pw@db.internal:5433/ficus?sslmode=require")
        #expect(ServedConfigurationCache.defaultPath(for: .postgres(url)) == "ficus-served-ficus-db.internal-5433.json")
    }

    @Test func aDeferredStoreReportsTheFailureThenFollowsTheStoreOnceItOpens() async throws {
        let file = try TemporaryStoreFile()
        let path = file.path
        let failure = StoreError.unreadable(path: path, detail: "there is no file there")
        let deferred = DeferredStore(
            location: path,
            storesTelemetry: true,
            failure: failure,
            firstPause: .milliseconds(10),
            longestPause: .milliseconds(50)
        ) {
            guard FileManager.default.fileExists(atPath: path) else {
                throw StoreError.unreadable(path: path, detail: "there is no file there")
            }
            return try SQLiteConfigurationStore(path: path)
        }
        // Before it opens, every call throws why.
        await #expect(throws: failure) { try await deferred.latest() }
        await #expect(throws: failure) {
            try await deferred.heartbeat(
                ProxyHeartbeat(id: "p", listen: "l", revision: 0, startedAt: Date(), lastSeen: Date()))
        }

        var events = deferred.watch(pollInterval: 0.005).makeAsyncIterator()
        /// The next event that is not `.changed` (writes other than revisions, such as the store's own opening).
        func next() async -> StoreEvent? {
            while let event = await events.next() {
                if case .changed = event { continue }
                return event
            }
            return nil
        }
        guard case .failed(let message) = await next() else {
            Issue.record("the first event is not the failure")
            return
        }
        #expect(message.contains("there is no file there"), "\(message)")
        #expect(message.contains("configuration cache"), "\(message)")

        // The store appears with a revision: the watch reports it, and calls reach the store.
        let store = try await StoreFixtures.store(file)
        guard case .revision(let revision) = await next() else {
            Issue.record("the store's revision was not reported")
            return
        }
        #expect(revision.number == 1)
        #expect(try await deferred.latest()?.number == 1)
        try await deferred.commit(StoreFixtures.author(), expectRevision: 1) { configuration in
            configuration.routes.removeAll { $0.name == "users" }
        }
        #expect(try await store.latest()?.number == 2)
        guard case .revision(let next) = await next() else {
            Issue.record("the next revision was not reported")
            return
        }
        #expect(next.number == 2)
        await deferred.close()
    }
}
