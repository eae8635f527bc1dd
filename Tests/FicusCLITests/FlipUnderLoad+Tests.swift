import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// A route flipped back and forth by another process while clients keep requesting it.
    @Suite struct FlipUnderLoad {
        /// Counts what the clients saw.
        struct Tally: Sendable {
            var ok = 0
            var failed: [String] = []
            var bodies: Set<String> = []
        }

        /// Four keep-alive clients sending `/orders/...` one request after the other until `running` turns false.
        ///
        /// Shared by the tests that change the configuration under load: every answer is tallied, and a client
        /// stops at its first failure so that the failure is reported, not retried away.
        static func keepAliveLoad(
            port: Int,
            group: any EventLoopGroup,
            running: NIOLockedValueBox<Bool>,
            tally: NIOLockedValueBox<Tally>
        ) -> Task<Void, Never> {
            Task {
                await withTaskGroup(of: Void.self) { clients in
                    for worker in 0..<4 {
                        clients.addTask {
                            guard let client = try? await RawClient.connect(port: port, group: group) else {
                                tally.withLockedValue { $0.failed.append("worker \(worker): no connection") }
                                return
                            }
                            defer { client.close() }
                            var sequence = 0
                            while running.withLockedValue({ $0 }) {
                                sequence += 1
                                do {
                                    let response = try await client.request(path: "/orders/\(worker)-\(sequence)")
                                    tally.withLockedValue { tally in
                                        if response.status == 200 {
                                            tally.ok += 1
                                            tally.bodies.insert(response.bodyString)
                                        } else {
                                            tally.failed.append("status \(response.status): \(response.bodyString)")
                                        }
                                    }
                                } catch {
                                    tally.withLockedValue { $0.failed.append("\(error)") }
                                    return
                                }
                            }
                        }
                    }
                }
            }
        }

        @Test func hundredFlipsFailNoRequest() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            let added = try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            let before = try #require(added.revision)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")

            let tally = NIOLockedValueBox(Tally())
            let flipping = NIOLockedValueBox(true)
            let port = server.port
            // Keep-alive clients, each sending one request after the other until the flips are done.
            let load = Self.keepAliveLoad(port: port, group: group, running: flipping, tally: tally)
            // The flips run in other processes; a dedicated thread waits on them so the clients keep their threads.
            let flipErrors: [String] = await withCheckedContinuation { continuation in
                Thread {
                    var errors: [String] = []
                    for flip in 0..<100 {
                        let target = flip % 2 == 0 ? "orders-v2" : "legacy"
                        do {
                            let result = try sandbox.ficus("flip", "orders", "--to", target, "--reason", "flip \(flip)")
                            if result.status != 0 { errors.append("flip \(flip): \(result)") }
                        } catch {
                            errors.append("flip \(flip): \(error)")
                        }
                    }
                    continuation.resume(returning: errors)
                }.start()
            }
            // Let the last revision reach the proxy while the clients are still running.
            try await Task.sleep(for: .milliseconds(200))
            flipping.withLockedValue { $0 = false }
            await load.value

            let seen = tally.withLockedValue { $0 }
            #expect(flipErrors.isEmpty, "\(flipErrors.prefix(3))")
            #expect(seen.failed.isEmpty, "\(seen.failed.prefix(5))")
            #expect(seen.ok > 100)
            #expect(seen.bodies == ["legacy", "v2"])
            // Every flip is a revision: the proxy ends on the last one.
            let health = try await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group)
            #expect(health.bodyString.contains("\"revision\":\(before + 100)"))

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
