import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests.Canary {
    /// Two proxies on one store: one drives the canary; when it dies without releasing its lease, the other takes
    /// the canary over once the lease lapses and finishes it.
    @Test(.timeLimit(.minutes(1))) func aSurvivingProxyTakesOverTheCanaryOfADeadOne() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let modern = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
        let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
        let lease = ["--lease-ttl", "2"]
        let first = try Server(store: sandbox.store, directory: sandbox.directory, extraArguments: lease)
        defer { first.stop() }
        let second = try Server(store: sandbox.store, directory: sandbox.directory, extraArguments: lease)
        defer { second.stop() }
        #expect(await Self.waitUntilServing(first, group: group))
        #expect(await Self.waitUntilServing(second, group: group))

        let started = await Self.start(sandbox)
        #expect(started.status == 0, "\(started)")
        // Whichever proxy won the lease drives; the status names it by its process id.
        var driver = ""
        let deadline = ContinuousClock.now + .seconds(5)
        while driver.isEmpty && ContinuousClock.now < deadline {
            driver = (await Self.status(sandbox, "orders"))["driver"] as? String ?? ""
            try await Task.sleep(for: .milliseconds(100))
        }
        let pids = [first.process.processIdentifier, second.process.processIdentifier]
        let driving = try #require(pids.firstIndex { driver.contains(":\($0):") }, "driver '\(driver)'")
        let (dead, survivor) = driving == 0 ? (first, second) : (second, first)
        dead.crash()
        let crashedAt = ContinuousClock.now
        let stalled = await Self.status(sandbox, "orders")
        #expect(stalled["phase"] as? String == "running", "the canary outlives its driver: \(stalled)")

        // Traffic through the survivor only; the canary continues from the step the dead proxy left it at.
        let running = NIOLockedValueBox(true)
        let load = Self.load(port: survivor.port, group: group, running: running)
        var takenOver: ContinuousClock.Instant?
        var status: [String: Any] = [:]
        let end = ContinuousClock.now + .seconds(30)
        while ContinuousClock.now < end {
            status = await Self.status(sandbox, "orders")
            if takenOver == nil, let holder = status["driver"] as? String,
                holder.contains(":\(survivor.process.processIdentifier):")
            {
                takenOver = ContinuousClock.now
            }
            if status["phase"] as? String == "promoted" { break }
            try await Task.sleep(for: .milliseconds(100))
        }
        running.withLockedValue { $0 = false }
        let bodies = await load.value

        #expect(status["phase"] as? String == "promoted", "\(status)")
        let takeover = try #require(takenOver, "the survivor never drove the canary")
        // The lease (2 s) must lapse first; the survivor checks every ttl/3 and its poll is 250 ms.
        #expect(takeover - crashedAt < .seconds(5), "takeover after \(takeover - crashedAt)")
        #expect(bodies.keys.allSatisfy { $0.hasPrefix("200 ") }, "\(bodies)")
        let history = await Self.ficus(sandbox, "history", "--json")
        #expect(
            history.stdout.contains("ficus serve (") && history.stdout.contains(":\(survivor.process.processIdentifier):"),
            "the survivor wrote the later steps: \(history.stdout.prefix(3000))"
        )

        survivor.stop()
        try await legacy.shutdown()
        try await modern.shutdown()
        try await group.shutdownGracefully()
    }
}
