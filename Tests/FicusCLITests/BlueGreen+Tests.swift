import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// `ficus bluegreen` through real processes: deploy, check and switch change what a running `ficus serve` serves.
    @Suite(.serialized) struct BlueGreen {
        /// A service answering `name` on every path, and `health` on /healthz.
        static func service(_ name: String, health: Int = 200, group: any EventLoopGroup) async throws -> TestUpstream {
            try await TestUpstream.start(
                .custom { request in
                    request.uri == "/healthz"
                        ? TestUpstream.Response(status: health, body: "health") : TestUpstream.Response(body: name)
                },
                group: group
            )
        }

        /// A store with a plain upstream `orders` at `blue` and a route `orders` on it.
        static func sandbox(blue: TestUpstream) throws -> Sandbox {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "orders", blue.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "orders")
            return sandbox
        }

        /// `bluegreen check` sends the Host the service expects (the route's, or --host) and ficus/VERSION, and
        /// reports every probe with --json.
        @Test func checkProbesWithTheExpectedHostAndItsOwnUserAgent() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blue = try await Self.service("blue", group: group)
            // A virtual host: 200 on /healthz only for its own name, 404 to any other Host.
            let green = try await TestUpstream.start(
                .custom { request in
                    request.header("host") == "orders.internal"
                        ? TestUpstream.Response(status: 200, body: "ok") : TestUpstream.Response(status: 404, body: "?")
                },
                group: group
            )
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "orders", blue.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "orders", "--host", "orders.internal")
            try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", green.address)
            let passed = try sandbox.ok("bluegreen", "check", "orders", "--path", "/healthz", "--path", "/ready", "--json")
            let json = try #require(try decodeJSON(passed.stdout) as? [String: Any])
            #expect(json["passed"] as? Bool == true, "\(passed)")
            let probes = try #require(json["probes"] as? [[String: Any]])
            #expect(probes.count == 2)
            #expect(probes.allSatisfy { $0["host"] as? String == "orders.internal" && $0["status"] as? Int == 200 })
            #expect(green.received.allSatisfy { $0.header("user-agent")?.hasPrefix("ficus/") == true })
            #expect(green.received.map(\.uri) == ["/healthz", "/ready"])

            let failed = try sandbox.ficus(["bluegreen", "check", "orders", "--host", "elsewhere", "--json"])
            #expect(failed.status == 1, "\(failed)")
            let failure = try #require(try decodeJSON(failed.stdout) as? [String: Any])
            #expect(failure["passed"] as? Bool == false)
            #expect((failure["failure"] as? String)?.contains("404") == true, "\(failed)")
            try await blue.shutdown()
            try await green.shutdown()
            try await group.shutdownGracefully()
        }

        /// `bluegreen check` of an `https://` slot speaks TLS with the upstream's `ca_file`, so it passes or fails
        /// where the proxy's requests would.
        @Test func checkSpeaksTLSToAnHTTPSSlotWithTheUpstreamsFiles() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let authority = try TestCertificateAuthority()
            let blue = try await Self.service("blue", group: group)
            let green = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("ok".utf8)),
                group: group,
                tls: try authority.issue(commonName: "green").serverContext()
            )
            let sandbox = try Self.sandbox(blue: blue)
            let other = try sandbox.write("other.pem", try TestCertificateAuthority(name: "Other CA").certificatePEM)
            try sandbox.ok("upstream", "set", "orders", "--ca-file", other)
            try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", "https://127.0.0.1:\(green.port)")
            let refused = try sandbox.ficus(["bluegreen", "check", "orders", "--json"])
            #expect(refused.status == 1, "\(refused)")
            #expect(green.received.isEmpty, "nothing is sent to a certificate that fails verification")

            let ca = try sandbox.write("ca.pem", authority.certificatePEM)
            try sandbox.ok("upstream", "set", "orders", "--ca-file", ca)
            let passed = try sandbox.ok("bluegreen", "check", "orders", "--json")
            let json = try #require(try decodeJSON(passed.stdout) as? [String: Any])
            #expect(json["passed"] as? Bool == true, "\(passed)")
            #expect(green.received.map(\.uri) == ["/healthz"])
            #expect(green.received.first?.header("host") == "127.0.0.1:\(green.port)", "host:port, no scheme")
            try await blue.shutdown()
            try await green.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func deployCheckSwitchAndBackChangeWhatClientsSee() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blue = try await Self.service("blue", group: group)
            let green = try await Self.service("green", group: group)
            let sandbox = try Self.sandbox(blue: blue)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("blue", path: "/orders/1", server: server, group: group) == "blue")

            // The first deploy turns the plain upstream into slots, its addresses active on blue.
            let deployed = try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", green.address)
            #expect(deployed.revision != nil)
            let exported = try sandbox.ok("export")
            #expect(exported.stdout.contains("active: blue"), "\(exported)")
            #expect(await AgainstServe.waitForRevision(try #require(deployed.revision), server: server, group: group))
            let still = try await HTTPTestClient.get(port: server.port, path: "/orders/1", group: group)
            #expect(still.bodyString == "blue", "deploying to the idle slot moves no traffic")

            let checked = try sandbox.ok("bluegreen", "check", "orders", "--path", "/healthz")
            #expect(checked.revision == nil, "a check writes no revision: \(checked)")
            #expect(green.received.contains { $0.uri == "/healthz" })
            let status = try decodeJSON(try sandbox.ok("bluegreen", "status", "orders", "--json").stdout)
            #expect((status as? [String: Any])?["greenCheck"] as? String == "passed", "\(status)")

            try sandbox.ok("bluegreen", "switch", "orders")
            #expect(await AgainstServe.waitFor("green", path: "/orders/2", server: server, group: group) == "green")
            try sandbox.ok("bluegreen", "switch", "orders", "--back")
            #expect(await AgainstServe.waitFor("blue", path: "/orders/3", server: server, group: group) == "blue")
            let history = try sandbox.ok("history")
            #expect(history.stdout.contains("switched back from 'green' to 'blue'"), "\(history)")

            server.stop()
            try await blue.shutdown()
            try await green.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func previewsReachTheIdleSlotOnlyWithTheTokenOrThePreviewSegment() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blue = try await Self.service("blue", group: group)
            let green = try await Self.service("green", group: group)
            let sandbox = try Self.sandbox(blue: blue)
            try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", green.address)
            try sandbox.ok("segment", "add", "testers", "--header", "X-Team=qa")
            // Two proxies on one store: one trusts loopback clients as proxies, the other trusts nobody. A trusted
            // address is not a secret: neither lets a header without the token reach the idle slot.
            let trusting = try AgainstServe.Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--trusted-proxy", "127.0.0.1"])
            defer { trusting.stop() }
            let plain = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { plain.stop() }
            let bare = [("X-Ficus-Preview", "green")]
            #expect(await AgainstServe.waitFor("blue", path: "/orders/1", headers: bare, server: trusting, group: group) == "blue")
            let made = try sandbox.ok("bluegreen", "preview", "orders", "--token")
            let token = try #require(made.stdout.split(separator: "\n").first { $0.hasPrefix("token ") }?.dropFirst(6))
            #expect(token.count == 64, "\(made)")
            #expect(made.stderr.contains("X-Ficus-Preview: green; token=\(token)"), "\(made)")
            #expect(!(try sandbox.ok("export").stdout.contains(String(token))), "the token itself is never stored")
            let preview = [("X-Ficus-Preview", "green; token=\(token)")]
            for server in [trusting, plain] {
                #expect(
                    await AgainstServe.waitFor("green", path: "/orders/1", headers: preview, server: server, group: group)
                        == "green")
                let wrong = try await HTTPTestClient.get(
                    port: server.port, path: "/orders/2", headers: [("X-Ficus-Preview", "green; token=guess")],
                    group: group)
                #expect(wrong.bodyString == "blue", "a wrong token cannot pick the idle slot")
                let untokened = try await HTTPTestClient.get(port: server.port, path: "/orders/2", headers: bare, group: group)
                #expect(untokened.bodyString == "blue", "no token, no preview, trusted address or not")
            }
            #expect(
                green.received.allSatisfy { request in !request.headers.contains { $0.0.lowercased() == "x-ficus-preview" } },
                "no client's X-Ficus-* field reaches an upstream: \(green.received)"
            )
            let explainedToken = try sandbox.ok(
                "explain", "GET", "/orders/3", "-H", "X-Ficus-Preview: green; token=\(token)")
            #expect(explainedToken.stdout.contains("preview: idle slot 'green' of 'orders' serves"), "\(explainedToken)")
            // A new token retires the old one.
            try sandbox.ok("bluegreen", "preview", "orders", "--token")
            #expect(await AgainstServe.waitFor("blue", path: "/orders/1", headers: preview, server: plain, group: group) == "blue")
            try sandbox.ok("bluegreen", "preview", "orders", "--token-off")

            // A preview segment needs no header and no trust; it follows the idle slot across a switch.
            let tester = [("X-Team", "qa")]
            try sandbox.ok("bluegreen", "preview", "orders", "--segment", "testers")
            #expect(
                await AgainstServe.waitFor("green", path: "/orders/3", headers: tester, server: plain, group: group)
                    == "green")
            let status = try sandbox.ok("bluegreen", "status", "orders")
            #expect(status.stdout.contains("preview: segment 'testers'"), "\(status)")
            let explained = try sandbox.ok("explain", "GET", "/orders/3", "-H", "X-Team: qa")
            #expect(explained.stdout.contains("=> orders@green"), "\(explained)")
            try sandbox.ok("bluegreen", "switch", "orders")
            #expect(
                await AgainstServe.waitFor("blue", path: "/orders/4", headers: tester, server: plain, group: group)
                    == "blue")
            #expect(await AgainstServe.waitFor("green", path: "/orders/5", server: plain, group: group) == "green")

            // The admin metrics label preview traffic with the preview name, apart from the active slot's.
            let metrics = try await HTTPTestClient.get(port: plain.adminPort, path: "/metrics", group: group)
            #expect(metrics.bodyString.contains("upstream=\"orders@green\""), "\(metrics.bodyString.prefix(2000))")

            // Both proxies write heartbeats and metric windows meanwhile: the configuration must stay as it is.
            try sandbox.refused(
                ["bluegreen", "preview", "orders"], status: 2, mentioning: "--token", whileServing: true)
            try sandbox.refused(
                ["bluegreen", "preview", "orders", "--segment", "nobody"], status: 3, mentioning: "unknown segment",
                whileServing: true)
            try sandbox.refused(
                ["segment", "rm", "testers"], status: 3, mentioning: "preview_segment: unknown segment 'testers'",
                whileServing: true)
            try sandbox.ok("bluegreen", "preview", "orders", "--off")
            try sandbox.ok("segment", "rm", "testers")

            trusting.stop()
            plain.stop()
            try await blue.shutdown()
            try await green.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func switchingUnderLoadLosesNoRequest() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blue = try await Self.service("blue", group: group)
            let green = try await Self.service("green", group: group)
            let sandbox = try Self.sandbox(blue: blue)
            try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", green.address)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("blue", path: "/orders/1", server: server, group: group) == "blue")

            let tally = NIOLockedValueBox(FlipUnderLoad.Tally())
            let running = NIOLockedValueBox(true)
            let port = server.port
            let load = FlipUnderLoad.keepAliveLoad(port: port, group: group, running: running, tally: tally)
            // The switches run in other processes, on a thread of their own so the clients keep theirs.
            let errors: [String] = await withCheckedContinuation { continuation in
                Thread {
                    var errors: [String] = []
                    for (index, arguments) in [["switch", "orders"], ["switch", "orders", "--back"]].enumerated() {
                        Thread.sleep(forTimeInterval: 0.5)
                        let result = (try? sandbox.ficus(["bluegreen"] + arguments)) ?? FicusResult(
                            status: -1, stdout: "", stderr: "could not run")
                        if result.status != 0 { errors.append("switch \(index): \(result)") }
                    }
                    Thread.sleep(forTimeInterval: 0.5)
                    continuation.resume(returning: errors)
                }.start()
            }
            running.withLockedValue { $0 = false }
            await load.value

            let seen = tally.withLockedValue { $0 }
            #expect(errors.isEmpty, "\(errors)")
            #expect(seen.failed.isEmpty, "\(seen.failed.prefix(5))")
            #expect(seen.ok > 50)
            #expect(seen.bodies == ["blue", "green"])

            server.stop()
            try await blue.shutdown()
            try await green.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func refusalsLeaveTheStoreUnchanged() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let blue = try await Self.service("blue", group: group)
            let sick = try await Self.service("green", health: 503, group: group)
            let sandbox = try Self.sandbox(blue: blue)

            try sandbox.refused(["bluegreen", "switch", "orders"], status: 1, mentioning: "no blue and green slots")
            try sandbox.refused(
                ["bluegreen", "deploy", "orders", "--slot", "green"], status: 1, mentioning: "no addresses")
            try sandbox.refused(["bluegreen", "deploy", "nope", sick.address], status: 1, mentioning: "no upstream")
            try sandbox.ok("bluegreen", "deploy", "orders", "--slot", "green", sick.address)
            try sandbox.refused(
                ["bluegreen", "deploy", "orders", "--slot", "blue", sick.address], status: 1, mentioning: "is active")
            try sandbox.refused(["bluegreen", "switch", "orders", "--back"], status: 1, mentioning: "no previous slot")

            // A failed check is recorded (and exits 1); the switch it blocks changes nothing.
            let check = try sandbox.ficus("bluegreen", "check", "orders")
            #expect(check.status == 1, "\(check)")
            #expect(check.stderr.contains("GET /healthz on \(sick.address): 503"), "\(check)")
            try sandbox.refused(["bluegreen", "switch", "orders"], status: 1, mentioning: "failed its last check")
            let forced = try sandbox.ok("bluegreen", "switch", "orders", "--force")
            #expect(forced.revision != nil)
            let status = try decodeJSON(try sandbox.ok("bluegreen", "status", "orders", "--json").stdout)
            #expect((status as? [String: Any])?["active"] as? String == "green", "\(status)")
            #expect((status as? [String: Any])?["previous"] as? String == "blue", "\(status)")

            try await blue.shutdown()
            try await sick.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
