import FicusDiff
import Foundation
import Testing

@testable import FicusStore

/// Telemetry on PostgreSQL while the server is away (issue 18, item 5): kept in a bounded buffer, the oldest dropped
/// and counted beyond it, the rest written with the next batch once the server is back.
@Suite(
    "PostgreSQL telemetry buffer",
    .serialized,
    .enabled(if: PostgresTesting.enabled, "needs FICUS_TEST_POSTGRES (a PostgreSQL installation)")
)
struct PostgresTelemetryBufferTests {
    /// `scripts/postgres-test-cluster.sh`, from this file's place in the repository.
    static let script = URL(fileURLWithPath: #filePath)
        .deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        .appendingPathComponent("scripts/postgres-test-cluster.sh").path

    /// Runs `postgres-test-cluster.sh COMMAND DIRECTORY` and returns what it printed.
    ///
    /// Output goes to a file, not a pipe: the server the script starts must not hold the test's pipe open.
    static func cluster(_ command: String, _ directory: URL) throws -> String {
        let output = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-cluster-\(UUID().uuidString)")
        _ = FileManager.default.createFile(atPath: output.path, contents: nil)
        defer { try? FileManager.default.removeItem(at: output) }
        let handle = try FileHandle(forWritingTo: output)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/bin/bash")
        process.arguments = [Self.script, command, directory.path]
        process.environment = ["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]
        process.standardOutput = handle
        process.standardError = handle
        process.standardInput = FileHandle.nullDevice
        try process.run()
        process.waitUntilExit()
        try handle.close()
        let text = (try? String(contentsOf: output, encoding: .utf8)) ?? ""
        guard process.terminationStatus == 0 else {
            throw StoreError.unreachable(store: directory.path, detail: "postgres-test-cluster.sh \(command): \(text)")
        }
        return text.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// A differing record (so that it is stored as a sample) `seconds` after the fixtures' start.
    static func record(_ seconds: Int) -> ShadowRecord {
        ShadowFixtures.record(
            at: Double(seconds), target: "/orders/\(seconds)", differences: [ShadowFixtures.typeChanged])
    }

    static func window(_ seconds: Int64) -> MetricWindow {
        ShadowStoreMetricWindowTests.window(
            at: seconds, proxy: "p1", upstream: "legacy", requests: 1, serverErrors: 0, counts: [1, 0, 0, 0])
    }

    static func drop(_ reason: String, count: Int = 1) -> ShadowDropCount {
        ShadowDropCount(
            minute: Telemetry.seconds(ShadowFixtures.start), route: "orders", endpoint: ShadowFixtures.endpoint,
            reason: reason, sent: false, count: count)
    }

    @Test(
        "while PostgreSQL is away telemetry is kept, the oldest beyond the bound dropped, the rest written once back"
    )
    func keptWhileAwayWrittenWhenBack() async throws {
        // A cluster of its own: pausing the shared one would fail every other PostgreSQL test.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-pg-\(UUID().uuidString)")
        let url = try PostgresStoreURL(parsing: try Self.cluster("start", directory))
        defer { _ = try? Self.cluster("stop", directory) }
        let clock = TestClock(ShadowFixtures.start)
        let limits = TelemetryBufferLimits(maxRecords: 5, maxWindows: 3, maxDropCounts: 2)
        let store = try await PostgresConfigurationStore.open(
            url, creating: true, telemetryBuffer: limits, now: { clock.now })
        try await store.appendShadowRecords([Self.record(0)])

        _ = try Self.cluster("pause", directory)
        // Three batches of two records: five kept, the oldest dropped; nothing is thrown (the records are not lost).
        for batch in 0..<3 {
            try await store.appendShadowRecords([Self.record(2 * batch + 1), Self.record(2 * batch + 2)])
        }
        #expect(store.telemetryBuffer.pending.records == 5)
        #expect(store.telemetryDrops.records == 1)
        #expect(store.telemetryDrops.batches == 1)
        #expect(store.telemetryDrops.lastError?.contains("cannot be reached") == true, "\(store.telemetryDrops)")
        // Windows are late: each write throws, and the oldest beyond three are dropped.
        for batch: Int64 in 0..<2 {
            await #expect(throws: StoreError.self) {
                try await store.appendMetricWindows([Self.window(20 * batch), Self.window(20 * batch + 10)])
            }
        }
        #expect(store.telemetryBuffer.pending.windows == 3)
        #expect(store.telemetryDrops.windows == 1)
        #expect(store.telemetryDrops.batches == 2)
        // Drop counts of the same minute and reason add up in the buffer; a third reason pushes out the oldest entry
        // (capacity, first kept).
        try await store.appendShadowDrops([Self.drop("capacity"), Self.drop("memory")])
        try await store.appendShadowDrops([Self.drop("capacity", count: 2)])
        #expect(store.telemetryBuffer.pending.dropCounts == 2)
        #expect(store.telemetryDrops.batches == 2)
        try await store.appendShadowDrops([Self.drop("serving_failed")])
        #expect(store.telemetryBuffer.pending.dropCounts == 2)
        #expect(store.telemetryDrops.batches == 3)
        let whileAway = store.telemetryDrops

        _ = try Self.cluster("resume", directory)
        // The next batch of each kind takes what was kept with it.
        try await store.appendShadowRecords([Self.record(7)])
        try await store.appendMetricWindows([Self.window(50)])
        try await store.appendShadowDrops([Self.drop("serving_failed")])
        let pending = store.telemetryBuffer.pending
        #expect(pending.records == 0 && pending.windows == 0 && pending.dropCounts == 0, "\(pending)")
        #expect(store.telemetryDrops == whileAway, "nothing more was dropped")

        let stored = try await ShadowFixtures.stored(store)
        #expect(stored.map(\.target) == ([7, 6, 5, 4, 3, 2, 0] as [Int]).map { "/orders/\($0)" })
        let summary = try #require(try await store.shadowEndpoints(route: "orders", from: nil, to: nil).first)
        #expect(summary.compared == 7, "the dropped record is in no aggregate either")
        #expect(
            summary.dropped == [
                ShadowDropSummary(reason: "serving_failed", sent: false, count: 2),
                ShadowDropSummary(reason: "memory", sent: false, count: 1),
            ])
        let windows = try await store.metricWindows(route: "orders", from: nil, to: nil)
        #expect(windows.map(\.start) == [10, 20, 30, 50].map { Self.window($0).start })
        await store.close()
    }

    @Test("a batch the server refuses is dropped, counted and thrown, and holds nothing back")
    func refusedBatchIsDropped() async throws {
        try await StoreFixtures.Backend.postgres.withShadowStore { store in
            // PostgreSQL text cannot hold a NUL character: the server refuses the batch, whatever the retry.
            var bad = Self.record(1)
            bad.target = "/orders/\u{0}"
            let error = await #expect(throws: StoreError.self) {
                try await store.appendShadowRecords([Self.record(0), bad])
            }
            guard case .telemetryDropped(let reason) = error else {
                Issue.record("not telemetryDropped: \(String(describing: error))")
                return
            }
            #expect(reason.contains("shadow records cannot be written"), "\(reason)")
            #expect(store.telemetryDrops.records == 2 && store.telemetryDrops.batches == 1)
            try await store.appendShadowRecords([Self.record(2)])
            #expect(try await ShadowFixtures.stored(store).map(\.target) == ["/orders/2"])
            #expect(try await store.shadowEndpoints(route: nil, from: nil, to: nil).first?.compared == 1)
        }
    }
}
