import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests.Canary {
    /// A proxy that stops cleanly releases its canary's lease, and the other proxy, told of the release by the store's
    /// watch, drives at once: not at its next lease check (a third of a 60 s lease) nor its 5 s safety net.
    @Test(.timeLimit(.minutes(1))) func aReleasedLeaseIsTakenOverAtOnce() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let modern = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
        let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
        let lease = ["--lease-ttl", "60"]
        let first = try Server(store: sandbox.store, directory: sandbox.directory, extraArguments: lease)
        defer { first.stop() }
        #expect(await Self.waitUntilServing(first, group: group))
        let started = await Self.start(sandbox, interval: "1h")
        #expect(started.status == 0, "\(started)")
        func driver() async -> String {
            (await Self.status(sandbox, "orders"))["driver"] as? String ?? ""
        }
        var deadline = ContinuousClock.now + .seconds(10)
        while !(await driver()).contains(":\(first.process.processIdentifier):"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(50))
        }
        #expect(await driver().contains(":\(first.process.processIdentifier):"))
        let second = try Server(store: sandbox.store, directory: sandbox.directory, extraArguments: lease)
        defer { second.stop() }
        #expect(await Self.waitUntilServing(second, group: group))

        first.stop()
        let stopped = ContinuousClock.now
        deadline = stopped + .seconds(10)
        while !(await driver()).contains(":\(second.process.processIdentifier):"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        let handover = ContinuousClock.now - stopped
        #expect(await driver().contains(":\(second.process.processIdentifier):"), "no handover")
        #expect(handover < .seconds(3), "handover after \(handover)")

        second.stop()
        try await legacy.shutdown()
        try await modern.shutdown()
        try await group.shutdownGracefully()
    }
}
