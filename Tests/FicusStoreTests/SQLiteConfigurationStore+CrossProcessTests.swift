import FicusCore
import Foundation
import Testing

@testable import FicusStore

/// A `ficus-store-probe` process: a second process that commits to or watches the same store file.
///
/// Threads in one process share SQLite's lock table; only separate processes exercise the file locks and the shared
/// memory index that proxies and the CLI rely on.
struct ProbeProcess {
    /// The probe executable next to the test bundle, or nil when the package does not build it.
    static let executable: URL? = {
        var directory = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
        for _ in 0..<5 {
            directory.deleteLastPathComponent()
            let candidate = directory.appendingPathComponent("ficus-store-probe")
            if FileManager.default.isExecutableFile(atPath: candidate.path) {
                return candidate
            }
        }
        return nil
    }()

    let process = Process()
    let output = Pipe()

    /// Starts the probe with `arguments`.
    init(_ arguments: [String]) throws {
        self.process.executableURL = Self.executable
        self.process.arguments = arguments
        self.process.standardOutput = self.output
        try self.process.run()
    }

    /// Waits up to `timeout` seconds for the probe to exit and returns its status and output lines.
    func finish(timeout: TimeInterval = 30) async throws -> (status: Int32, lines: [String]) {
        let handle = self.output.fileHandleForReading
        let reading = Task.detached {
            String(decoding: handle.readDataToEndOfFile(), as: UTF8.self)
        }
        let deadline = ContinuousClock.now + .seconds(timeout)
        while self.process.isRunning && ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(5))
        }
        if self.process.isRunning {
            self.process.terminate()
        }
        self.process.waitUntilExit()
        let text = await reading.value
        return (self.process.terminationStatus, text.split(separator: "\n").map(String.init))
    }
}

@Suite("Across processes", .serialized, .enabled(if: ProbeProcess.executable != nil))
struct SQLiteConfigurationStoreCrossProcessTests {
    @Test("two processes committing 2 × 50 changes in parallel lose nothing, and a watcher here sees the last")
    func twoProcessesLoseNothing() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let collector = EventCollector(store.watch(pollInterval: 0.005))
        defer {
            collector.stop()
        }
        let start = String(Date().timeIntervalSince1970 + 1)
        let first = try ProbeProcess(["commit", file.path, "a", "50", start])
        let second = try ProbeProcess(["commit", file.path, "b", "50", start])
        let outcomes = [try await first.finish(), try await second.finish()]
        #expect(outcomes.map(\.status) == [0, 0])
        let lines = outcomes.flatMap(\.lines)
        let committed = lines.filter { $0.hasPrefix("committed ") }.map { String($0.dropFirst("committed ".count)) }
        #expect(lines.count == 100)
        let history = try await store.history(limit: nil, route: nil)
        print(
            "two processes: \(committed.count) committed, \(lines.count - committed.count) busy, "
                + "\(StoreFixtures.writerSwitches(history)) switches between writers"
        )
        #expect(history.count == committed.count + 1)
        let latest = try #require(try await store.latest())
        #expect(Set(latest.configuration.flags.map(\.name)) == Set(committed))
        #expect(await collector.wait { $0.revisionNumber == latest.number } != nil)
    }

    @Test("a watcher in another process sees a commit made here")
    func otherProcessSeesCommit() async throws {
        let file = try TemporaryStoreFile()
        let store = try await StoreFixtures.store(file)
        let probe = try ProbeProcess(["watch", file.path, "2", "10"])
        try await Task.sleep(for: .milliseconds(300))
        let started = ContinuousClock.now
        try await store.commit(StoreFixtures.author("flip"), expectRevision: 1) { configuration in
            configuration.routes[0].defaultUpstream = "orders-v2"
        }
        let outcome = try await probe.finish(timeout: 10)
        #expect(outcome.status == 0)
        #expect(outcome.lines.last == "seen 2")
        print("another process saw the commit after \(ContinuousClock.now - started) (including process exit)")
    }
}
