import FicusCore
import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import FicusProxy

/// Active health checks (issue 17 item 3) through a real proxy: an address failing its checks leaves rotation and
/// comes back when they pass; all out → 503 naming the upstream.
@Suite("Active health checks through a real proxy", .serialized)
struct ProxyHealthCheckTests {
    /// An upstream that answers `name` to requests and `health` (a status, changeable) to `/healthz`.
    final class Backend: Sendable {
        let upstream: TestUpstream
        let health: NIOLockedValueBox<Int>

        init(_ name: String) async throws {
            let health = NIOLockedValueBox(200)
            self.health = health
            self.upstream = try await TestUpstream.start(
                .custom { request in
                    request.uri == "/healthz"
                        ? .init(status: health.withLockedValue { $0 }, body: "health")
                        : .init(status: 200, body: name)
                },
                group: testGroup)
        }
    }

    /// Polls `condition` every 20 ms for up to 10 s (the checks run every 100 ms).
    static func eventually(_ condition: () -> Bool) async throws -> Bool {
        for _ in 0..<500 {
            if condition() { return true }
            try await Task.sleep(for: .milliseconds(20))
        }
        return condition()
    }

    @Test func anUnhealthyAddressLeavesRotationAndComesBack() async throws {
        let good = try await Backend("good")
        let bad = try await Backend("bad")
        var upstream = Upstream(
            name: "orders", addresses: [Endpoint(parsing: good.upstream.address)!, Endpoint(parsing: bad.upstream.address)!])
        upstream.healthCheck = HealthCheckPolicy(
            path: "/healthz", interval: TimeSpan(milliseconds: 100), healthy: 1, unhealthy: 2)
        let configuration = Configuration(
            upstreams: [upstream], routes: [Route(name: "orders", path: "/", legacy: "orders")])
        let harness = try await ProxyHarness.start(configuration: configuration)
        do {
            bad.health.withLockedValue { $0 = 503 }
            #expect(
                try await Self.eventually {
                    harness.proxy.upstreamStates().first { $0.address == bad.upstream.address }?.healthCheck
                        == "unhealthy"
                })
            #expect(harness.proxy.upstreamStates().first { $0.address == good.upstream.address }?.inRotation == true)
            let client = try await harness.client()
            var bodies: [String] = []
            for index in 0..<6 { bodies.append(try await client.request(path: "/o/\(index)").bodyString) }
            #expect(bodies == Array(repeating: "good", count: 6), "only the healthy address serves")

            good.health.withLockedValue { $0 = 500 }
            #expect(try await Self.eventually { harness.proxy.upstreamStates().allSatisfy { !$0.inRotation } })
            let none = try await client.request(path: "/o/x")
            #expect(none.status == 503, "\(none.status) \(none.bodyString)")
            #expect(none.bodyString.contains("orders") && !none.bodyString.contains("127.0.0.1"), "\(none.bodyString)")
            #expect(none.header("retry-after") != nil)

            bad.health.withLockedValue { $0 = 204 }
            #expect(
                try await Self.eventually {
                    harness.proxy.upstreamStates().first { $0.address == bad.upstream.address }?.inRotation == true
                })
            #expect(try await client.request(path: "/o/y").bodyString == "bad", "back in rotation")
            client.close()
            #expect(bad.upstream.received.contains { $0.header("user-agent") == "ficus-health-check" })
        } catch {
            await harness.stop()
            throw error
        }
        await harness.stop()
        try await good.upstream.shutdown()
        try await bad.upstream.shutdown()
    }
}
