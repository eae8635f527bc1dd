import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// Balancing, outlier ejection and limits per upstream through the CLI and rules files (issue 17 items 2, 4,
    /// 7): `upstream set`, `upstream show`, `explain`, export and apply, `status --admin` against a running proxy, and
    /// bad values refused with where they are and changing nothing.
    @Suite struct UpstreamResilience {
        /// Active health checks: `upstream set --health-check`, `show`, `explain --json`, export, bad values refused
        /// with the field named, and `--no-health-check`.
        @Test func healthChecks() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            #expect(try sandbox.ok("upstream", "show", "legacy").stdout.contains("health     no active checks"))
            try sandbox.ok("upstream", "set", "legacy", "--health-check", "/healthz", "--unhealthy", "2")
            #expect(
                try sandbox.ok("upstream", "show", "legacy").stdout.contains(
                    "health     GET /healthz every 10s, timeout 1s, 2 up, 2 down, expect 200-399"))
            try sandbox.ok("upstream", "set", "legacy", "--health-check-interval", "5s", "--health-check-expect", "200")
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let check = try #require(object["healthCheck"] as? [String: Any])
            #expect(check["path"] as? String == "/healthz" && check["interval"] as? String == "5s")
            #expect(check["unhealthy"] as? Int == 2 && check["expect"] as? String == "200")
            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("health_check:") && exported.contains("path: /healthz"), "\(exported)")

            let before = try sandbox.snapshot()
            let bad = try sandbox.ficus("upstream", "set", "legacy", "--health-check", "healthz", "--healthy", "0")
            #expect(bad.status == 3, "\(bad)")
            #expect(bad.stderr.contains("upstream 'legacy': health_check.path: 'healthz' must start with '/'"), "\(bad)")
            #expect(bad.stderr.contains("health_check.healthy: must be from 1 to 100, got 0"), "\(bad)")
            let orphan = try sandbox.ficus("upstream", "set", "legacy", "--no-health-check", "--healthy", "1")
            #expect(orphan.status != 0 && orphan.stderr.contains("--no-health-check or health check options"))
            #expect(try sandbox.snapshot() == before)
            try sandbox.ok("upstream", "set", "legacy", "--no-health-check")
            #expect(try sandbox.ok("upstream", "show", "legacy").stdout.contains("health     no active checks"))
        }

        @Test func setShowExplainExportAndApply() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("upstream", "add", "orders-v2", "127.0.0.1:8091", "127.0.0.1:8092 weight=3")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("flip", "orders", "--to", "orders-v2")
            let plain = try sandbox.ok("upstream", "show", "orders-v2").stdout
            #expect(plain.contains("addresses  127.0.0.1:8091,127.0.0.1:8092 weight=3"), "\(plain)")
            #expect(plain.contains("balance    round_robin (weighted)"), "\(plain)")
            #expect(plain.contains("outlier    off (no outlier ejection)"), "\(plain)")
            #expect(plain.contains("limits     connections 1024, pending 1024, requests 1024, retries 3"), "\(plain)")

            try sandbox.ok(
                "upstream", "set", "orders-v2", "--balance", "least_request", "--outlier-consecutive-5xx", "3",
                "--outlier-base-ejection-time", "10s", "--max-retries", "5", "--max-pending", "0"
            )
            let diff = try sandbox.ok("diff", "4", "5").stdout
            #expect(diff.contains("balance round_robin → least_request"), "a settings-only change is visible: \(diff)")
            #expect(diff.contains("outlier off → 5xx×3, gateway×5, 10s…5m, ≤10%"), "\(diff)")
            #expect(!diff.contains("addresses"), "the addresses did not change: \(diff)")
            let shown = try sandbox.ok("upstream", "show", "orders-v2").stdout
            #expect(shown.contains("balance    least_request (weighted)"), "\(shown)")
            #expect(shown.contains("outlier    5xx×3, gateway×5, 10s…5m, ≤10%"), "\(shown)")
            #expect(shown.contains("limits     connections 1024, pending 0, requests 1024, retries 5"), "\(shown)")
            #expect(shown.contains("127.0.0.1:8092 weight=3"), "the addresses are kept: \(shown)")

            let explained = try sandbox.ok("explain", "GET", "/orders/1").stdout
            #expect(explained.contains("upstream orders-v2:\n  balance    least_request"), "\(explained)")
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try decodeJSON(json) as? [String: Any])
            #expect(object["balance"] as? String == "least_request")
            let outlier = try #require(object["outlier"] as? [String: Any])
            #expect(outlier["consecutive_5xx"] as? Int == 3 && outlier["max_ejection_time"] as? String == "5m")
            #expect((object["limits"] as? [String: Any])?["max_retries"] as? Int == 5)

            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("balance: least_request"), "\(exported)")
            #expect(exported.contains("consecutive_5xx: 3"), "\(exported)")
            #expect(exported.contains("base_ejection_time: 10s"), "\(exported)")
            #expect(exported.contains("max_retries: 5"), "\(exported)")
            #expect(exported.contains("127.0.0.1:8092 weight=3"), "\(exported)")
            // Applying what was exported changes nothing: every field round-trips.
            let file = try sandbox.write("exported.yaml", exported)
            try sandbox.ok("apply", file)
            #expect(try sandbox.ok("upstream", "show", "orders-v2").stdout == shown)

            try sandbox.ok("upstream", "set", "orders-v2", "--outlier", "off", "--balance", "round_robin", "--default-limits")
            let reset = try sandbox.ok("upstream", "show", "orders-v2").stdout
            #expect(reset.contains("outlier    off\n"), "\(reset)")
            #expect(reset.contains("balance    round_robin"), "\(reset)")
            #expect(reset.contains("retries 3"), "\(reset)")
        }

        @Test func badValuesAreRefusedAndChangeNothing() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            let before = try sandbox.snapshot()
            let balance = try sandbox.ficus("upstream", "set", "legacy", "--balance", "random")
            #expect(balance.status != 0 && balance.stderr.contains("expected round_robin or least_request"), "\(balance)")
            let percent = try sandbox.ficus("upstream", "set", "legacy", "--outlier-max-ejection-percent", "150")
            #expect(
                percent.status != 0 && percent.stderr.contains("outlier max_ejection_percent: 150 is outside 0–100"),
                "\(percent)")
            let times = try sandbox.ficus(
                "upstream", "set", "legacy", "--outlier-base-ejection-time", "10m", "--outlier-max-ejection-time", "1m")
            #expect(times.status != 0 && times.stderr.contains("is longer than max_ejection_time"), "\(times)")
            let weight = try sandbox.ficus("upstream", "set", "legacy", "127.0.0.1:8081 weight=0")
            #expect(weight.status != 0 && weight.stderr.contains("weight 0 of '127.0.0.1:8081' is outside 1–1000"), "\(weight)")
            let limit = try sandbox.ficus("upstream", "set", "legacy", "--max-requests", "0")
            #expect(limit.status != 0 && limit.stderr.contains("limits max_requests: 0 is outside 1–1000000"), "\(limit)")
            #expect(try sandbox.snapshot() == before)

            let file = try sandbox.write(
                "rules.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                    balance: fastest
                    outlier:
                      consecutive_5xxx: 3
                    limits:
                      max_retry: 1
                """
            )
            let applied = try sandbox.ficus("apply", file)
            #expect(applied.status != 0)
            #expect(applied.stderr.contains("unknown field 'consecutive_5xxx'"), "\(applied.stderr)")
            #expect(applied.stderr.contains("unknown field 'max_retry'"), "\(applied.stderr)")
            #expect(try sandbox.snapshot() == before)

            let values = try sandbox.write(
                "values.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                    outlier:
                      base_ejection_time: soon
                """
            )
            let badTime = try sandbox.ficus("apply", values)
            #expect(badTime.status != 0 && badTime.stderr.contains("invalid time 'soon'"), "\(badTime.stderr)")
            #expect(try sandbox.snapshot() == before)
        }

        /// A running proxy whose upstream answers 503: after one gateway failure (the configured trigger) the address
        /// is out, and `ficus status --admin` says until when.
        @Test func statusShowsEachAddressFromARunningProxy() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let failing = try await TestUpstream.start(
                .fixed(status: 503, headers: [], body: Array("busy".utf8)), group: group)
            let healthy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("ok".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok(
                "upstream", "add", "orders", failing.address, healthy.address,
                "--outlier-consecutive-gateway-failure", "1", "--outlier-max-ejection-percent", "50")
            try sandbox.ok("route", "add", "orders", "--prefix", "/", "--to", "orders")
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitForRevision(2, server: server, group: group))
            for _ in 0..<4 {
                _ = try? await HTTPTestClient.get(port: server.port, path: "/x", group: group, timeout: .seconds(2))
            }
            let status = try sandbox.ok("status", "--admin", "127.0.0.1:\(server.adminPort)").stdout
            #expect(status.contains("upstream addresses seen by the proxy at 127.0.0.1:\(server.adminPort)"), "\(status)")
            let failingLine = status.split(separator: "\n").first { $0.contains(failing.address) } ?? ""
            let healthyLine = status.split(separator: "\n").first { $0.contains(healthy.address) } ?? ""
            #expect(failingLine.contains("ejected until"), "\(status)")
            #expect(healthyLine.contains("in rotation"), "\(status)")
            let json = try sandbox.ok("status", "--json", "--admin", "127.0.0.1:\(server.adminPort)").stdout
            #expect(json.contains("\"ejected_until\""), "\(json)")
            server.stop()
            try await failing.shutdown()
            try await healthy.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
