import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// Every proxy's /metrics shows where the rollouts stand (issue 15 item 7).
    @Suite struct RolloutGaugesOnMetrics {
        @Test func canaryAndBlueGreenGaugesFollowTheStore() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("modern".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("upstream", "add", "checkout", legacy.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("route", "add", "checkout", "--prefix", "/checkout", "--to", "checkout")
            try sandbox.ok("bluegreen", "deploy", "checkout", "--slot", "green", modern.address)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/0", server: server, group: group) == "legacy")
            try sandbox.ok("canary", "start", "orders", "--to", "orders-v2", "--steps", "5,100", "--interval", "10m")

            /// Scrapes /metrics until every line of `wanted` is there, for up to 10 s; the last scrape.
            func scrape(until wanted: [String]) async -> String {
                var text = ""
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline {
                    text = (try? await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group))?
                        .bodyString ?? ""
                    if wanted.allSatisfy(text.contains) { return text }
                    try? await Task.sleep(for: .milliseconds(100))
                }
                return text
            }
            let running = [
                "ficus_canary_weight{route=\"orders\"} 5", "ficus_canary_step{route=\"orders\"} 1",
                "ficus_canary_phase{route=\"orders\",phase=\"running\"} 1",
                "ficus_canary_phase{route=\"orders\",phase=\"paused\"} 0",
                "ficus_bluegreen_active_slot{upstream=\"checkout\",slot=\"blue\"} 1",
                "ficus_bluegreen_active_slot{upstream=\"checkout\",slot=\"green\"} 0",
            ]
            let first = await scrape(until: running)
            for line in running { #expect(first.contains(line), "\(line)") }

            try sandbox.ok("canary", "pause", "orders")
            try sandbox.ok("bluegreen", "switch", "checkout")
            let paused = [
                "ficus_canary_phase{route=\"orders\",phase=\"paused\"} 1",
                "ficus_canary_phase{route=\"orders\",phase=\"running\"} 0",
                "ficus_bluegreen_active_slot{upstream=\"checkout\",slot=\"green\"} 1",
                "ficus_bluegreen_active_slot{upstream=\"checkout\",slot=\"blue\"} 0",
            ]
            let second = await scrape(until: paused)
            for line in paused { #expect(second.contains(line), "\(line)") }

            try sandbox.ok("canary", "abort", "orders")
            let aborted = [
                "ficus_canary_weight{route=\"orders\"} 0", "ficus_canary_step{route=\"orders\"} 0",
                "ficus_canary_phase{route=\"orders\",phase=\"aborted\"} 1",
            ]
            let third = await scrape(until: aborted)
            for line in aborted { #expect(third.contains(line), "\(line)") }
            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
