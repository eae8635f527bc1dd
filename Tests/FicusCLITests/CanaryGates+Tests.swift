import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests.Canary {
    /// The canary's shadow-diff gate through real processes: a planted type change aborts the first step.
    ///
    /// Kept apart from the error gate's tests so each gate's evidence is set up where it is checked.
    @Suite(.serialized) struct Gates {
        /// A JSON answer whose `amount` is a number on legacy and a string on the new service.
        ///
        /// The request id differs on every answer, so the noise filter has something to learn and must ignore it.
        static func answer(modern: Bool) -> TestUpstream.Response {
            let id = UUID().uuidString
            let amount = modern ? "\"100\"" : "100"
            return TestUpstream.Response(
                status: 200,
                headers: [("Content-Type", "application/json")],
                body: "{\"id\":7,\"amount\":\(amount),\"requestId\":\"\(id)\"}"
            )
        }

        /// On a shadowed route the diff gate is on at 1% unless turned off, and `start` prints every gate in effect;
        /// an interval under 1 s is refused.
        @Test func theDiffGateIsOnByDefaultOnAShadowedRoute() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.echo, group: group)
            let modern = try await TestUpstream.start(.echo, group: group)
            let sandbox = try CLITests.Canary.sandbox(legacy: legacy, modern: modern)
            let plain = try sandbox.ok("canary", "start", "orders", "--to", "orders-v2")
            #expect(plain.stderr.contains("no diff gate (the route is not shadowed)"), "\(plain)")
            #expect(plain.stderr.contains("error rate ≤ 1%; p99 ratio ≤ 1.5"), "\(plain)")
            try sandbox.ok("canary", "abort", "orders")
            try sandbox.ok("shadow", "orders", "--to", "orders-v2", "--percent", "100")
            let shadowed = try sandbox.ok("canary", "start", "orders", "--to", "orders-v2", "--on-fail", "pause")
            #expect(shadowed.stderr.contains("diff rate ≤ 1% (noise-filtered)"), "\(shadowed)")
            #expect(shadowed.stderr.contains("on fail: pause"), "\(shadowed)")
            let status = try sandbox.ok("canary", "status", "orders")
            #expect(status.stdout.contains("diff rate: - (≤ 1%)"), "\(status)")
            #expect(status.stdout.contains("on fail: pause"), "\(status)")
            try sandbox.ok("canary", "abort", "orders")
            let off = try sandbox.ok("canary", "start", "orders", "--to", "orders-v2", "--max-diff-rate", "off")
            #expect(off.stderr.contains("no diff gate (--max-diff-rate off)"), "\(off)")
            try sandbox.ok("canary", "abort", "orders")
            let fast = try sandbox.ficus(["canary", "start", "orders", "--to", "orders-v2", "--interval", "500ms"])
            #expect(fast.status != 0, "\(fast)")
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        @Test(.timeLimit(.minutes(1))) func plantedShadowDiffAbortsAtTheFirstStep() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.custom { _ in Self.answer(modern: false) }, group: group)
            let modern = try await TestUpstream.start(.custom { _ in Self.answer(modern: true) }, group: group)
            let sandbox = try CLITests.Canary.sandbox(legacy: legacy, modern: modern)
            try sandbox.ok("shadow", "set", "orders", "--to", "orders-v2", "--noise-percent", "100")
            let server = try CLITests.Canary.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            // The sandbox's legacy answers JSON here, so wait on the status rather than on a body.
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                let response = try? await HTTPTestClient.get(port: server.port, path: "/orders/0", group: group)
                if response?.bodyString.contains("\"amount\":100") == true {
                    break
                }
                try await Task.sleep(for: .milliseconds(20))
            }
            let running = NIOLockedValueBox(true)
            let load = CLITests.Canary.load(port: server.port, group: group, running: running)

            let started = await CLITests.Canary.ficus(
                sandbox, "canary", "start", "orders", "--to", "orders-v2", "--steps", "20,50,100", "--interval",
                "1s", "--min-requests", "20", "--max-error-rate", "1%", "--max-p99-ratio", "100",
                "--max-diff-rate", "0.5%", "--sticky", "header:X-User"
            )
            #expect(started.status == 0, "\(started)")
            let status = await CLITests.Canary.waitForPhase("aborted", sandbox, "orders", seconds: 25)
            running.withLockedValue { $0 = false }
            let bodies = await load.value

            #expect(status["phase"] as? String == "aborted", "\(status)")
            #expect(status["step"] as? Int == 1, "\(status)")
            #expect((status["reason"] as? String)?.contains("diff rate") == true, "\(status)")
            #expect(bodies.keys.allSatisfy { $0.hasPrefix("200 ") }, "\(bodies)")
            // The abort's revision put every user back on legacy.
            let exported = await CLITests.Canary.ficus(sandbox, "export")
            #expect(exported.stdout.contains("default: legacy"), "\(exported)")
            #expect(!exported.stdout.contains("canary-orders"), "\(exported)")
            #expect(await CLITests.Canary.waitForNewestRevision(sandbox, server, group: group))
            for user in 0..<20 {
                let response = try await HTTPTestClient.get(
                    port: server.port,
                    path: "/orders/1",
                    headers: [("X-User", "u\(user)")],
                    group: group
                )
                #expect(response.bodyString.contains("\"amount\":100"), "\(response.bodyString)")
            }
            let history = await CLITests.Canary.ficus(sandbox, "history")
            #expect(history.stdout.contains("aborted: diff rate"), "\(history)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
