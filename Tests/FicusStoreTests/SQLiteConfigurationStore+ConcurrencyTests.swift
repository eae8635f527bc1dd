import FicusCore
import Foundation
import Testing

@testable import FicusStore

@Suite("Concurrent writers", .serialized)
struct SQLiteConfigurationStoreConcurrencyTests {
    /// What one writer managed: the flags it committed and how many commits were refused as busy.
    struct Outcome: Sendable {
        var committed: [String] = []
        var busy = 0
    }

    /// Commits `count` changes, each adding one flag named `<prefix>-<n>`, counting busy refusals.
    static func write(_ store: SQLiteConfigurationStore, prefix: String, count: Int) async throws -> Outcome {
        var outcome = Outcome()
        for index in 0..<count {
            let name = "\(prefix)-\(index)"
            do {
                try await store.commit(StoreFixtures.author("flag.add"), expectRevision: nil) { configuration in
                    configuration.flags.append(Flag(name: name))
                }
                outcome.committed.append(name)
            } catch StoreError.busy {
                outcome.busy += 1
            }
        }
        return outcome
    }

    @Test("two store instances committing 2 × 50 changes in parallel lose nothing")
    func twoWritersLoseNothing() async throws {
        let file = try TemporaryStoreFile()
        let first = try await StoreFixtures.store(file)
        let second = try SQLiteConfigurationStore(path: file.path)
        async let a = Self.write(first, prefix: "a", count: 50)
        async let b = Self.write(second, prefix: "b", count: 50)
        let outcomes = try await [a, b]
        let committed = outcomes.flatMap(\.committed)
        #expect(committed.count + outcomes.map(\.busy).reduce(0, +) == 100)
        let history = try await first.history(limit: nil, route: nil)
        print(
            "two writers: \(committed.count) committed, \(outcomes.map(\.busy).reduce(0, +)) busy, "
                + "\(StoreFixtures.writerSwitches(history)) switches between writers"
        )
        #expect(history.count == committed.count + 1)
        #expect(history.map(\.number) == Array((1...(committed.count + 1)).reversed()))
        let latest = try #require(try await second.latest())
        #expect(Set(latest.configuration.flags.map(\.name)) == Set(committed))
        #expect(latest.configuration.flags.count == committed.count)
        #expect(try await first.audit(limit: nil).count == committed.count + 1)
    }

    @Test("a writer that cannot get the lock in time gets a retryable busy error")
    func busyIsReported() async throws {
        let file = try TemporaryStoreFile()
        let holder = try await StoreFixtures.store(file)
        let impatient = try SQLiteConfigurationStore(path: file.path, busyTimeout: 0.05)
        let started = AsyncStream<Void>.makeStream()
        let holding = Task {
            try await holder.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                started.continuation.yield()
                Thread.sleep(forTimeInterval: 0.5)
                configuration.flags.append(Flag(name: "slow"))
            }
        }
        var iterator = started.stream.makeAsyncIterator()
        _ = await iterator.next()
        let error = await #expect(throws: StoreError.self) {
            try await impatient.commit(StoreFixtures.author(), expectRevision: nil) { configuration in
                configuration.flags.append(Flag(name: "fast"))
            }
        }
        #expect(error?.description.contains("busy") == true)
        _ = try await holding.value
        let flags = try await impatient.latest()?.configuration.flags.map(\.name)
        #expect(flags == ["slow"])
    }
}
