import FicusCore
import FicusDiff
import Foundation
import GRDB
import Testing

@testable import FicusStore

#if canImport(Glibc)
    import Glibc
#endif

/// Telemetry in a file of its own beside the rule store: bounded, droppable, never in a configuration write's way.
@Suite("Telemetry file", .serialized)
struct SQLiteConfigurationStoreTelemetryTests {
    /// A differing record with bodies of `size` bytes, `index` seconds after the fixtures' start.
    static func bulky(_ index: Int, size: Int = 2_000) -> ShadowRecord {
        var record = ShadowFixtures.record(at: Double(index), differences: [ShadowFixtures.typeChanged])
        record.servingBody = Array(repeating: UInt8(ascii: "a"), count: size)
        record.shadowBody = Array(repeating: UInt8(ascii: "b"), count: size)
        return record
    }

    /// A store on a new file whose clock starts at the fixtures' start, so that age retention keeps their records.
    static func store(
        _ file: TemporaryStoreFile,
        busyTimeout: TimeInterval = 5,
        limits: TelemetryLimits = TelemetryLimits()
    ) throws -> SQLiteConfigurationStore {
        let clock = TestClock(ShadowFixtures.start)
        return try SQLiteConfigurationStore(
            path: file.path, busyTimeout: busyTimeout, telemetry: limits, now: { clock.now })
    }

    /// Holds the write lock of the SQLite file at `path` on a thread of its own, as another process would, until
    /// `release()`.
    final class LockHolder: @unchecked Sendable {
        private let locked = DispatchSemaphore(value: 0)
        private let done = DispatchSemaphore(value: 0)
        private let finished = DispatchSemaphore(value: 0)

        init(path: String) throws {
            let queue = try DatabaseQueue(path: path)
            Thread {
                try? queue.inDatabase { db in
                    try db.execute(sql: "BEGIN IMMEDIATE")
                    self.locked.signal()
                    self.done.wait()
                    try db.execute(sql: "ROLLBACK")
                }
                try? queue.close()
                self.finished.signal()
            }.start()
            self.locked.wait()
        }

        func release() {
            self.done.signal()
            self.finished.wait()
        }
    }

    /// The names of the tables in the SQLite file at `path`.
    static func tables(_ path: String) throws -> Set<String> {
        let queue = try DatabaseQueue(path: path)
        defer {
            try? queue.close()
        }
        return try queue.read { db in
            Set(try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'table'"))
        }
    }

    /// The permission bits of the file at `path`.
    static func mode(_ path: String) -> mode_t? {
        var info = stat()
        guard stat(path, &info) == 0 else {
            return nil
        }
        return info.st_mode & 0o777
    }

    @Test("the telemetry file is the store's name with -telemetry before the extension")
    func telemetryPath() {
        #expect(TelemetryDatabase.path(forStore: "ficus.sqlite") == "ficus-telemetry.sqlite")
        #expect(
            TelemetryDatabase.path(forStore: "/var/lib/ficus/ficus.sqlite") == "/var/lib/ficus/ficus-telemetry.sqlite")
        #expect(TelemetryDatabase.path(forStore: "./rules.v2.db") == "./rules.v2-telemetry.db")
        #expect(TelemetryDatabase.path(forStore: "/srv/store") == "/srv/store-telemetry")
        #expect(TelemetryDatabase.path(forStore: "/srv/.ficus") == "/srv/.ficus-telemetry")
    }

    @Test("shadow records and metric windows go to the telemetry file; configuration commands never create it")
    func telemetryLivesBesideTheStore() async throws {
        let file = try TemporaryStoreFile()
        let store = try Self.store(file)
        try await store.commit(StoreFixtures.author("init"), expectRevision: 0) { configuration in
            configuration = StoreFixtures.configuration()
        }
        try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.routes[0].defaultUpstream = "orders-v2"
        }
        #expect(store.telemetryPath == file.directory.appendingPathComponent("ficus-telemetry.sqlite").path)
        #expect(!FileManager.default.fileExists(atPath: store.telemetryPath))
        // Reading telemetry before any was written finds nothing and creates nothing.
        #expect(try await store.shadowEndpoints(route: nil, from: nil, to: nil).isEmpty)
        #expect(try await store.metricWindows(route: nil, from: nil, to: nil).isEmpty)
        #expect(!FileManager.default.fileExists(atPath: store.telemetryPath))

        try await store.appendShadowRecords([Self.bulky(1)])
        try await store.appendMetricWindows([
            ShadowStoreMetricWindowTests.window(
                proxy: "p1", upstream: "legacy", requests: 3, serverErrors: 0, counts: [3, 0, 0, 0])
        ])
        #expect(FileManager.default.fileExists(atPath: store.telemetryPath))
        let telemetryTables = try Self.tables(store.telemetryPath)
        #expect(telemetryTables.isSuperset(of: ["shadow_records", "shadow_minutes", "metric_windows"]))
        let storeTables = try Self.tables(file.path)
        #expect(storeTables.isDisjoint(with: telemetryTables.subtracting(["grdb_migrations"])))
        #expect(storeTables.isSuperset(of: ["revisions", "audit", "proxies"]))
        #expect(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first?.compared == 1)
        #expect(try await store.metricWindows(route: nil, from: nil, to: nil).map(\.requests) == [3])
        #expect(try await store.latest()?.number == 2)
        #expect(store.telemetryDrops == TelemetryDrops())

        let queue = try DatabaseQueue(path: store.telemetryPath)
        let (vacuum, applicationID) = try await queue.read { db in
            (
                try Int.fetchOne(db, sql: "PRAGMA auto_vacuum"),
                try Int32.fetchOne(db, sql: "PRAGMA application_id")
            )
        }
        try queue.close()
        #expect(vacuum == 2, "auto_vacuum = INCREMENTAL")
        #expect(applicationID == SQLiteConfigurationStore.telemetryApplicationID)
        // A telemetry file is not a rule store.
        #expect(
            throws: StoreError.unreadable(
                path: store.telemetryPath,
                detail: "this is a Ficus telemetry file, not a rule store (pass the store beside it)")
        ) {
            try SQLiteConfigurationStore(path: store.telemetryPath)
        }
    }

    @Test("store files and telemetry files are created readable and writable by their owner only")
    func filesAreCreatedPrivate() async throws {
        let file = try TemporaryStoreFile()
        let previous = umask(0o022)
        defer {
            umask(previous)
        }
        let store = try await StoreFixtures.store(file)
        try await store.appendShadowRecords([Self.bulky(1)])
        let paths = [
            file.path, file.path + "-wal", file.path + "-shm",
            store.telemetryPath, store.telemetryPath + "-wal", store.telemetryPath + "-shm",
        ]
        for path in paths {
            #expect(Self.mode(path) == 0o600, "\(path): \(Self.mode(path).map { String($0, radix: 8) } ?? "missing")")
        }
    }

    @Test("the telemetry file stays within its bound, keeps the newest records and counts every record")
    func sizeBound() async throws {
        let file = try TemporaryStoreFile()
        let limits = TelemetryLimits(maxBytes: 512 * 1024)
        let store = try Self.store(file, limits: limits)
        var written = 0
        for batch in 0..<40 {
            let records = (0..<25).map { Self.bulky(batch * 25 + $0) }
            try await store.appendShadowRecords(records)
            written += records.count
            let size = try #require(try await store.telemetrySize())
            #expect(size.file <= limits.maxBytes, "after batch \(batch): \(size.file) bytes")
        }
        // 1,000 records of 4 kB bodies do not fit in 512 KiB: the oldest went, the newest stayed.
        let kept = try await store.shadowTableSizes()["shadow_records"] ?? 0
        #expect(kept > 0 && kept < written, "kept \(kept) of \(written)")
        let newest = try await store.shadowSamples(
            route: "orders", endpoint: ShadowFixtures.endpoint, path: nil, kind: nil, limit: 1)
        #expect(newest.first?.timestamp == Self.bulky(written - 1).timestamp)
        // Aggregates count every record, also those retention deleted.
        let summary = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
        #expect(summary.reduce(0) { $0 + $1.compared } == written)
        #expect(store.telemetryDrops.batches == 0)
        let size = try #require(try await store.telemetrySize())
        print("telemetry bound 512 KiB: file \(size.file) bytes, live \(size.used) bytes, \(kept) records kept")
    }

    @Test("a telemetry file at SQLite's page limit makes room for the newest batch, and a huge batch keeps its counts")
    func fullFileMakesRoom() async throws {
        let file = try TemporaryStoreFile()
        do {
            // 600 kB of records under a bound of 1 MiB: no retention ran, so the file has no free page.
            let roomy = try Self.store(file, limits: TelemetryLimits(maxBytes: 1 << 20))
            for index in 0..<20 {
                try await roomy.appendShadowRecords([Self.bulky(index, size: 15_000)])
            }
            #expect(try #require(try await roomy.telemetrySize()).file > 512 * 1024)
        }
        // Reopened with a bound of 256 KiB: SQLite caps the page count at the file's size, so the next insert fails
        // with SQLITE_FULL; retention then deletes the oldest rows down to half the bound and the batch is written.
        let limits = TelemetryLimits(maxBytes: 256 * 1024)
        let store = try Self.store(file, limits: limits)
        for index in 20..<30 {
            try await store.appendShadowRecords([Self.bulky(index, size: 15_000)])
            let size = try #require(try await store.telemetrySize())
            #expect(size.file <= limits.maxBytes, "after record \(index): \(size.file) bytes")
        }
        #expect(store.telemetryDrops == TelemetryDrops(), "\(store.telemetryDrops)")
        let newest = try await store.shadowSamples(
            route: "orders", endpoint: ShadowFixtures.endpoint, path: nil, kind: nil, limit: 100)
        #expect(newest.first?.timestamp == Self.bulky(29).timestamp)
        #expect(newest.count < 30)
        // A batch bigger than the file could hold keeps what fits (here none of its records) and all its counts.
        let huge = (100..<108).map { Self.bulky($0, size: 40_000) }
        try await store.appendShadowRecords(huge)
        #expect(store.telemetryDrops.batches == 0)
        let summary = try await store.shadowEndpoints(route: nil, from: nil, to: nil)
        #expect(summary.reduce(0) { $0 + $1.compared } == 38)
        #expect(try #require(try await store.telemetrySize()).file <= limits.maxBytes)
    }

    @Test("a locked telemetry file drops telemetry and never delays a commit")
    func lockedTelemetryNeverBlocksCommits() async throws {
        let file = try TemporaryStoreFile()
        // A commit that waited for the telemetry lock would take the whole 5 s: the bound below (half of it) tells the
        // two apart on a machine of any speed.
        let store = try Self.store(file, busyTimeout: 5)
        try await store.commit(StoreFixtures.author("init"), expectRevision: 0) { configuration in
            configuration = StoreFixtures.configuration()
        }
        try await store.appendShadowRecords([Self.bulky(1)])
        // Another process holds the telemetry file's write lock.
        let holder = try LockHolder(path: store.telemetryPath)
        let telemetry = Task {
            try await store.appendShadowRecords([Self.bulky(2)])
        }
        let started = ContinuousClock.now
        let revision = try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.routes[0].defaultUpstream = "orders-v2"
        }
        let commitTook = ContinuousClock.now - started
        #expect(revision.number == 2)
        #expect(commitTook < .milliseconds(2500), "a commit waited \(commitTook) for telemetry")
        await #expect(throws: StoreError.self) {
            try await telemetry.value
        }
        #expect(store.telemetryDrops.batches == 1)
        #expect(store.telemetryDrops.lastError?.contains("locked") == true, "\(store.telemetryDrops)")
        holder.release()
        // Telemetry resumes once the file can be written, and kept what it had.
        try await store.appendShadowRecords([Self.bulky(3)])
        #expect(try await store.shadowTableSizes()["shadow_records"] == 2)
    }

    @Test("two writers creating the telemetry file at once both succeed (the loser of the migration race retries)")
    func concurrentCreation() async throws {
        for round in 0..<5 {
            let file = try TemporaryStoreFile()
            let first = try Self.store(file)
            let second = try Self.store(file)
            async let a: Void = Task.detached { try await first.appendShadowRecords([Self.bulky(1)]) }.value
            async let b: Void = Task.detached { try await second.appendShadowRecords([Self.bulky(2)]) }.value
            _ = try await (a, b)
            #expect(try await first.shadowTableSizes()["shadow_records"] == 2, "round \(round)")
            #expect(first.telemetryDrops == TelemetryDrops() && second.telemetryDrops == TelemetryDrops())
        }
    }

    @Test("a store of an earlier version moves its telemetry to the telemetry file and drops its tables")
    func migratesTelemetryOutOfTheStore() async throws {
        let file = try TemporaryStoreFile()
        // A scratch store writes telemetry the current way; its rows are then copied into a store at the schema
        // of the version before (`v5-bluegreen`), which kept them in its own file.
        let scratch = try TemporaryStoreFile()
        let writer = try Self.store(scratch)
        try await writer.appendShadowRecords((0..<5).map { Self.bulky($0) })
        try await writer.appendMetricWindows([
            ShadowStoreMetricWindowTests.window(
                proxy: "p1", upstream: "legacy", requests: 7, serverErrors: 1, counts: [7, 0, 0, 0])
        ])
        do {
            let old = try DatabaseQueue(path: file.path)
            try SQLiteConfigurationStore.migrator.migrate(old, upTo: "v5-bluegreen")
            try old.inDatabase { db in
                try db.execute(sql: "ATTACH DATABASE ? AS scratch", arguments: [writer.telemetryPath])
                for table in ["shadow_records", "shadow_record_fields", "metric_windows"]
                    + Telemetry.aggregateTables
                {
                    // The old schema's columns: later telemetry migrations added tables and columns it never had.
                    let columns = try Row.fetchAll(db, sql: "PRAGMA main.table_info(\(table))")
                        .map { $0["name"] as String }.joined(separator: ", ")
                    guard !columns.isEmpty else { continue }
                    try db.execute(sql: "INSERT INTO main.\(table) (\(columns)) SELECT \(columns) FROM scratch.\(table)")
                }
                try db.execute(sql: "DETACH DATABASE scratch")
            }
            try old.close()
        }
        let store = try Self.store(file)
        #expect(try await store.appliedMigrations() == StoreFixtures.migrations)
        #expect(!(try Self.tables(file.path)).contains("shadow_records"))
        #expect(try await store.shadowTableSizes()["shadow_records"] == 5)
        #expect(try await store.metricWindows(route: nil, from: nil, to: nil).map(\.requests) == [7])
        #expect(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first?.compared == 5)
        let samples = try await store.shadowSamples(
            route: "orders", endpoint: ShadowFixtures.endpoint, path: "$.amount", kind: .typeChanged, limit: 10)
        #expect(samples.count == 5)
        // Opening again changes nothing and copies nothing twice.
        let again = try Self.store(file)
        #expect(try await again.shadowEndpoints(route: nil, from: nil, to: nil).first?.compared == 5)
    }

    @Test("a store instance follows a file moved over its path")
    func storeReopensReplacedFile() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        for name in ["a", "b"] {
            try await store.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                configuration.flags.append(Flag(name: name))
            }
        }
        #expect(try await store.latest()?.number == 3)
        let backup = try TemporaryStoreFile()
        do {
            _ = try await StoreFixtures.store(backup)
        }
        #expect(rename(backup.path, file.path) == 0)
        #expect(try await store.latest()?.number == 1)
        #expect(try await store.latest()?.configuration.flags.isEmpty == true)
        let next = try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.killed = true
        }
        #expect(next.number == 2)
        #expect(try await SQLiteConfigurationStore(path: file.path).latest()?.configuration.killed == true)
    }
}
