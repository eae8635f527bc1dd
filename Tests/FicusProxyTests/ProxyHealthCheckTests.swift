import FicusCore
import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOSSL
import Testing

@testable import FicusProxy

/// Active health checks (issue 17 item 3) through a real proxy: an address failing its checks leaves rotation and
/// comes back when they pass; all out → 503 naming the upstream.
@Suite("Active health checks through a real proxy", .serialized)
struct ProxyHealthCheckTests {
    /// An upstream that answers `name` to requests and `health` (a status, changeable) to `/healthz`; over TLS with
    /// `tls`.
    final class Backend: Sendable {
        let upstream: TestUpstream
        let health: NIOLockedValueBox<Int>

        init(_ name: String, tls: NIOSSLContext? = nil) async throws {
            let health = NIOLockedValueBox(200)
            self.health = health
            self.upstream = try await TestUpstream.start(
                .custom { request in
                    request.uri == "/healthz"
                        ? .init(status: health.withLockedValue { $0 }, body: "health")
                        : .init(status: 200, body: name)
                },
                group: testGroup,
                tls: tls)
        }

        /// The health checks it received.
        var checks: [TestUpstream.RecordedRequest] {
            self.upstream.received.filter { $0.header("user-agent") == "ficus-health-check" }
        }
    }

    /// Starts a proxy serving `configuration`, runs `body`, then stops the proxy and `backends` whatever happens.
    static func with(
        _ configuration: Configuration, backends: [Backend], _ body: (ProxyHarness) async throws -> Void
    ) async throws {
        let harness = try await ProxyHarness.start(configuration: configuration)
        let result: Result<Void, any Error>
        do {
            try await body(harness)
            result = .success(())
        } catch {
            result = .failure(error)
        }
        await harness.stop()
        for backend in backends { try? await backend.upstream.shutdown() }
        try result.get()
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
        try await Self.with(configuration, backends: [good, bad]) { harness in
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
            #expect(!bad.checks.isEmpty)
        }
    }

    /// The idle slot of a blue-green upstream is checked too (as the upstream's), so neither a preview nor a flip
    /// sends to a dead slot; `/upstreams` lists it under its preview name.
    @Test func theIdleSlotIsCheckedSoPreviewsAndFlipsSkipADeadOne() async throws {
        let blue = try await Backend("blue")
        let green = try await Backend("green")
        green.health.withLockedValue { $0 = 503 }
        let token = PreviewToken.generate()
        var upstream = Upstream(
            name: "orders",
            slots: BlueGreenSlots(
                blue: [Endpoint(parsing: blue.upstream.address)!], green: [Endpoint(parsing: green.upstream.address)!],
                active: .blue, previewTokenSHA256: PreviewToken.digest(of: token)))
        upstream.healthCheck = HealthCheckPolicy(
            path: "/healthz", interval: TimeSpan(milliseconds: 100), healthy: 1, unhealthy: 1)
        let configuration = Configuration(
            upstreams: [upstream], routes: [Route(name: "orders", path: "/", legacy: "orders")])
        try await Self.with(configuration, backends: [blue, green]) { harness in
            let greenState = { harness.proxy.upstreamStates().first { $0.address == green.upstream.address } }
            #expect(try await Self.eventually { greenState()?.healthCheck == "unhealthy" })
            #expect(greenState()?.upstream == "orders@green")
            #expect(greenState()?.healthCheckFailure == "GET /healthz: status 503")
            let client = try await harness.client()
            let preview = [("X-Ficus-Preview", "green; token=\(token)")]
            #expect(try await client.request(path: "/p", headers: preview).status == 503, "the dead idle slot")
            #expect(try await client.request(path: "/a").bodyString == "blue")

            // A flip to the dead slot finds its health already known: no request reaches it.
            var flipped = configuration
            flipped.upstreams[0].slots?.active = .green
            harness.routing.replace(with: try RoutingTable(configuration: flipped, revision: 2))
            #expect(try await client.request(path: "/b").status == 503)
            #expect(!green.upstream.received.contains { $0.uri == "/b" || $0.uri == "/p" })
            let blueState = harness.proxy.upstreamStates().first { $0.address == blue.upstream.address }
            #expect(blueState?.upstream == "orders@blue", "the idle slot now")

            green.health.withLockedValue { $0 = 200 }
            #expect(try await Self.eventually { greenState()?.inRotation == true })
            #expect(try await client.request(path: "/c").bodyString == "green")
            let previewBlue = [("X-Ficus-Preview", "blue; token=\(token)")]
            #expect(try await client.request(path: "/d", headers: previewBlue).bodyString == "blue")
            client.close()
        }
    }
}
