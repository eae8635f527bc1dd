import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests.Canary {
    /// Requests from `clients` distinct addresses, each named in `X-Forwarded-For` by a balancer at 127.0.0.1, over
    /// one keep-alive connection; how many each side answered.
    static func sendThroughBalancer(port: Int, clients: Int, group: any EventLoopGroup) async throws -> [String: Int] {
        let client = try await RawClient.connect(port: port, group: group)
        defer { client.close() }
        var bodies: [String: Int] = [:]
        for index in 0..<clients {
            let address = "10.\(1 + index / 250).\(index % 250).7"
            let response = try await client.request(
                path: "/orders/\(index)", headers: [("X-Forwarded-For", "\(address), 127.0.0.1")])
            bodies["\(response.status) \(response.bodyString)", default: 0] += 1
        }
        return bodies
    }

    /// Behind a balancer that `--trusted-proxy` names, a canary with the default stickiness (the client address)
    /// splits the many clients of `X-Forwarded-For` close to each step's weight (issue 15 item 3).
    @Test(.timeLimit(.minutes(1))) func aCanaryBehindATrustedBalancerSplitsByTheRealClients() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let modern = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
        let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
        let server = try Server(
            store: sandbox.store, directory: sandbox.directory, extraArguments: ["--trusted-proxy", "127.0.0.1/32"])
        defer { server.stop() }
        #expect(await Self.waitUntilServing(server, group: group))
        for weight in [20, 50] {
            let started = await Self.ficus(
                sandbox, "canary", "start", "orders", "--to", "orders-v2", "--steps", "\(weight),100", "--interval",
                "10m")
            #expect(started.status == 0, "\(started)")
            #expect(await Self.waitForRevision(started.revision, server, group: group), "\(started)")
            let bodies = try await Self.sendThroughBalancer(port: server.port, clients: 600, group: group)
            let share = Double(bodies["200 v2", default: 0]) / 600
            #expect(abs(share - Double(weight) / 100) < 0.07, "step \(weight)%: \(bodies)")
            #expect(bodies.keys.allSatisfy { $0.hasPrefix("200 ") }, "\(bodies)")
            let aborted = await Self.ficus(sandbox, "canary", "abort", "orders", "--reason", "next weight")
            #expect(aborted.status == 0, "\(aborted)")
            #expect(await Self.waitForRevision(aborted.revision, server, group: group), "\(aborted)")
        }
        server.stop()
        try await legacy.shutdown()
        try await modern.shutdown()
        try await group.shutdownGracefully()
    }

    /// The same traffic without `--trusted-proxy`: every request is the balancer's address, so every request is one
    /// user. The step says so in plain words (cannot split, or too few distinct users), never promotes, and pauses
    /// with `no evidence` after `--max-hold` intervals.
    @Test(.timeLimit(.minutes(1))) func oneBalancerAddressNeverPromotesAndSaysWhy() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let modern = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
        let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
        let server = try Server(store: sandbox.store, directory: sandbox.directory)
        defer { server.stop() }
        #expect(await Self.waitUntilServing(server, group: group))
        let started = await Self.ficus(
            sandbox, "canary", "start", "orders", "--to", "orders-v2", "--steps", "50,100", "--interval", "1s",
            "--min-requests", "20", "--max-p99-ratio", "100", "--max-hold", "3")
        #expect(started.status == 0, "\(started)")
        let running = NIOLockedValueBox(true)
        let load = Task {
            var answered = 0
            while running.withLockedValue({ $0 }) {
                answered += (try? await Self.sendThroughBalancer(port: server.port, clients: 50, group: group))?
                    .values.reduce(0, +) ?? 0
            }
            return answered
        }
        let status = await Self.waitForPhase("paused", sandbox, "orders", seconds: 30)
        running.withLockedValue { $0 = false }
        let answered = await load.value
        #expect(answered > 100)
        #expect(status["phase"] as? String == "paused", "\(status)")
        #expect(status["weight"] as? Int == 50, "\(status)")
        let reason = status["reason"] as? String ?? ""
        #expect(reason.contains("no evidence"), "\(status)")
        #expect(
            reason.contains("cannot split") || reason.contains("too few distinct users: "), "\(status)")
        #expect(reason.contains("--trusted-proxy"), "the setting to change is named: \(status)")
        server.stop()
        try await legacy.shutdown()
        try await modern.shutdown()
        try await group.shutdownGracefully()
    }
}

extension CLITests.Canary {
    /// A new service that refuses every connection, behind fallback (the default): users never see a failure (every
    /// request is answered by legacy), yet the canary aborts on the new side's error rate, since fallback protects
    /// users, never the canary's verdict (issue 17 item 1).
    @Test(.timeLimit(.minutes(1))) func aCanaryWhoseNewSideFailsBehindFallbackStillAborts() async throws {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let sandbox = try Sandbox()
        try sandbox.ok("init")
        try sandbox.ok("upstream", "add", "legacy", legacy.address)
        try sandbox.ok("upstream", "add", "orders-v2", "127.0.0.1:\(try freePort())")
        try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
        let server = try Server(store: sandbox.store, directory: sandbox.directory)
        defer { server.stop() }
        #expect(await Self.waitUntilServing(server, group: group))
        let running = NIOLockedValueBox(true)
        let load = Self.load(port: server.port, group: group, running: running)
        let started = await Self.start(sandbox)
        #expect(started.status == 0, "\(started)")
        let status = await Self.waitForPhase("aborted", sandbox, "orders", seconds: 20)
        running.withLockedValue { $0 = false }
        let bodies = await load.value
        #expect(status["phase"] as? String == "aborted", "\(status)")
        #expect((status["reason"] as? String)?.contains("error rate") == true, "\(status)")
        #expect(bodies.keys.allSatisfy { $0 == "200 legacy" }, "users saw only legacy's answers: \(bodies)")
        #expect(legacy.received.contains { $0.header("x-ficus-fallback") == "1" }, "requests fell back")
        server.stop()
        try await legacy.shutdown()
        try await group.shutdownGracefully()
    }
}
