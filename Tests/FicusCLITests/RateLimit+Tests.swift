import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// Rate limits through the CLI, rules files and `ficus serve` (issue 17 item 6): `route set`, `route show`,
    /// `explain`, export, removal, bad values refused with the field named, and two proxies on one store each
    /// enforcing half of the fleet's limit.
    @Suite struct RateLimits {
        static func sandbox() throws -> Sandbox {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            return sandbox
        }

        @Test func routeSetShowExplainExportAndRemove() throws {
            let sandbox = try Self.sandbox()
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("rate limit  none"))
            #expect(try sandbox.ok("explain", "GET", "/orders/1").stdout.contains("rate limit: none"))

            try sandbox.ok(
                "route", "set", "orders", "--rate-limit", "100/1s", "--burst", "200", "--rate-limit-key", "client_ip",
                "--rate-limit-mode", "observe")
            let shown = try sandbox.ok("route", "show", "orders").stdout
            #expect(
                shown.contains(
                    "rate limit  100/1s burst 200 key client_ip observe (fleet-wide: each proxy enforces its share)"),
                "\(shown)")
            let status = try sandbox.ok("status").stdout
            #expect(status.contains("RATE LIMIT"), "\(status)")
            #expect(status.contains("100/1s burst 200 key client_ip observe"), "\(status)")
            let statusJSON = try decodeJSON(try sandbox.ok("status", "--json").stdout) as? [String: Any]
            let statusRoutes = statusJSON?["routes"] as? [[String: Any]]
            #expect(statusRoutes?.first?["rateLimit"] as? String == "100/1s burst 200 key client_ip observe")
            let explained = try sandbox.ok("explain", "GET", "/orders/1").stdout
            #expect(explained.contains("rate limit: 100/1s burst 200 key client_ip observe"), "\(explained)")
            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("rate_limit:"), "\(exported)")
            #expect(exported.contains("per: 1s") && exported.contains("key: client_ip"), "\(exported)")

            // Options without --rate-limit change the limit there is; the rest of it stays.
            try sandbox.ok(
                "route", "set", "orders", "--rate-limit-mode", "enforce", "--rate-limit-key", "header:X-Api-Key")
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let limit = try #require(object["rateLimit"] as? [String: Any], "\(json)")
            #expect(limit["requests"] as? Int == 100 && limit["per"] as? String == "1s")
            #expect(limit["burst"] as? Int == 200 && limit["key"] as? String == "header:X-Api-Key")
            #expect(limit["mode"] as? String == "enforce")

            try sandbox.ok("route", "set", "orders", "--no-rate-limit")
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("rate limit  none"))
            #expect(!(try sandbox.ok("export").stdout.contains("rate_limit")))
            // Defaults are written out where a person reads them.
            try sandbox.ok("route", "set", "orders", "--rate-limit", "5/500ms")
            let defaults = try sandbox.ok("route", "show", "orders").stdout
            #expect(defaults.contains("rate limit  5/500ms burst 5 key none enforce"), "\(defaults)")
        }

        @Test func rulesFilesSetLimitsWithPeriodsAsTextOrSeconds() throws {
            let sandbox = try Self.sandbox()
            let file = try sandbox.write(
                "rules.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    rate_limit: {requests: 100, per: 1m, burst: 20, key: identity, mode: observe}
                  - name: users
                    path: /users
                    legacy: legacy
                    rate_limit:
                      requests: 5
                      per: 10
                """
            )
            try sandbox.ok("apply", file)
            #expect(
                try sandbox.ok("route", "show", "orders").stdout.contains(
                    "rate limit  100/1m burst 20 key identity observe"))
            #expect(try sandbox.ok("route", "show", "users").stdout.contains("rate limit  5/10s burst 5 key none enforce"))
        }

        @Test func badValuesAreRefusedWithTheirPlaceAndChangeNothing() throws {
            let sandbox = try Self.sandbox()
            let before = try sandbox.snapshot()
            let cases: [([String], String)] = [
                (["--rate-limit", "100"], "--rate-limit '100': expected REQUESTS/PERIOD such as 100/1s"),
                (["--rate-limit", "0/1s"], "--rate-limit '0/1s': expected REQUESTS/PERIOD such as 100/1s"),
                (["--rate-limit", "100/1d"], "'1d' is not a period from 1ms to 24h"),
                (
                    ["--rate-limit", "100/1s", "--rate-limit-key", "cookie:s"],
                    "--rate-limit-key 'cookie:s': expected none, client_ip, header:NAME or identity"
                ),
                (
                    ["--rate-limit", "100/1s", "--rate-limit-mode", "loud"],
                    "--rate-limit-mode 'loud': expected enforce or observe"
                ),
                (["--rate-limit", "100/1s", "--burst", "0"], "--burst 0: expected 1 to 1000000000"),
                (["--burst", "10"], "--burst needs a rate limit: give --rate-limit REQUESTS/PERIOD too"),
                (["--rate-limit", "1/1s", "--no-rate-limit"], "give --no-rate-limit or rate limit options, not both"),
            ]
            for (options, message) in cases {
                let result = try sandbox.ficus(["route", "set", "orders"] + options)
                #expect(result.status != 0 && result.stderr.contains(message), "\(options): \(result)")
            }
            #expect(try sandbox.snapshot() == before)

            let file = try sandbox.write(
                "rules.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    rate_limit:
                      requests: 100
                      per: soon
                      key: cookie:s
                      burts: 3
                """
            )
            let applied = try sandbox.ficus("apply", file)
            #expect(applied.status != 0)
            #expect(applied.stderr.contains("burts"), "the misspelt field: \(applied.stderr)")
            let fixedSpelling = try sandbox.write(
                "rules.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    rate_limit:
                      requests: 100
                      per: soon
                      key: cookie:s
                """
            )
            let invalid = try sandbox.ficus("apply", fixedSpelling)
            #expect(invalid.status != 0)
            #expect(invalid.stderr.contains("rate_limit.per: must be a duration"), "\(invalid.stderr)")
            #expect(invalid.stderr.contains("rate_limit.key: must be none, client_ip"), "\(invalid.stderr)")
            #expect(try sandbox.snapshot() == before)
        }

        /// Two `ficus serve` processes on one store: once each sees the other's heartbeat, each enforces half of
        /// the route's limit, so the fleet answers the limit and no more.
        @Test func twoProxiesOnOneStoreEachEnforceHalf() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            let revision = try #require(
                try sandbox.ok("route", "set", "orders", "--rate-limit", "10/1h").revision)
            let first = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            let second = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer {
                first.stop()
                second.stop()
            }
            for server in [first, second] {
                #expect(await waitForServedRevision(revision, adminPort: server.adminPort, group: group))
                #expect(await Self.waitForProxies(2, adminPort: server.adminPort, group: group), "both counted")
            }
            var allowed: [Int] = []
            for server in [first, second] {
                var count = 0
                for index in 0..<8 {
                    let response = try await HTTPTestClient.get(
                        port: server.port, path: "/orders/\(index)", group: group)
                    if response.status == 200 { count += 1 }
                    if response.status == 429 {
                        #expect(response.header("ratelimit-policy") == "\"orders\";q=10;w=3600")
                    }
                }
                allowed.append(count)
            }
            #expect(allowed == [5, 5], "half of 10 each")
            let metrics = try await HTTPTestClient.get(port: first.adminPort, path: "/metrics", group: group)
            #expect(metrics.bodyString.contains("ficus_rate_limited_total{route=\"orders\",mode=\"enforce\"} 3"))

            first.stop()
            second.stop()
            try await legacy.shutdown()
            try await group.shutdownGracefully()
        }

        /// Polls `/metrics` until `ficus_rate_limit_proxies` is `count`, for up to 20 s.
        static func waitForProxies(_ count: Int, adminPort: Int, group: any EventLoopGroup) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(20)
            while ContinuousClock.now < deadline {
                if let metrics = try? await HTTPTestClient.get(
                    port: adminPort, path: "/metrics", group: group, timeout: .seconds(2)),
                    metrics.bodyString.split(separator: "\n").contains(where: {
                        $0 == "ficus_rate_limit_proxies \(count)" || $0 == "ficus_rate_limit_proxies \(count).0"
                    })
                {
                    return true
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return false
        }
    }
}
