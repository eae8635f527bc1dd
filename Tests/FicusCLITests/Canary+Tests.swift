import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// Canaries driven by a real `ficus serve` over real traffic, steered by real CLI processes.
    @Suite(.serialized) struct Canary {
        /// A `ficus serve` with one-second metric windows, so that canary steps of one second see their traffic.
        final class Server: @unchecked Sendable {
            let process = Process()
            let port: Int
            let adminPort: Int

            init(store: String, directory: URL, extraArguments: [String] = []) throws {
                self.port = try freePort()
                self.adminPort = try freePort()
                self.process.executableURL = FicusProcess.binary
                self.process.arguments = [
                    "serve", "--store", store, "--listen", "127.0.0.1:\(self.port)",
                    "--admin", "127.0.0.1:\(self.adminPort)", "--threads", "1", "--access-log", "off",
                    "--poll-interval", "5", "--heartbeat-interval", "1", "--window-interval", "1",
                    "--drain-timeout", "1", "--log-level", "warning",
                ] + extraArguments
                self.process.currentDirectoryURL = directory
                self.process.standardOutput = FileHandle.nullDevice
                self.process.standardError = FileHandle.nullDevice
                try self.process.run()
            }

            func stop() {
                if self.process.isRunning {
                    self.process.terminate()
                }
                self.process.waitUntilExit()
            }

            /// Ends the process with SIGKILL: no graceful shutdown, so it releases nothing it holds.
            func crash() {
                if self.process.isRunning {
                    kill(self.process.processIdentifier, SIGKILL)
                }
                self.process.waitUntilExit()
            }
        }

        /// Waits until `server` serves `revision` (see `waitForServedRevision`); false without a revision.
        static func waitForRevision(_ revision: Int?, _ server: Server, group: any EventLoopGroup) async -> Bool {
            guard let revision else { return false }
            return await waitForServedRevision(revision, adminPort: server.adminPort, group: group)
        }

        /// Waits until `server` serves the store's newest revision (the one a controller's abort or a flip wrote).
        static func waitForNewestRevision(_ sandbox: Sandbox, _ server: Server, group: any EventLoopGroup) async -> Bool {
            let status = await Self.ficus(sandbox, "status", "--json")
            let object = try? JSONSerialization.jsonObject(with: Data(status.stdout.utf8)) as? [String: Any]
            return await Self.waitForRevision(object?["revision"] as? Int, server, group: group)
        }

        /// Waits up to 5 s for the proxy to answer with legacy.
        static func waitUntilServing(_ server: Server, group: any EventLoopGroup) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                let response = try? await HTTPTestClient.get(port: server.port, path: "/orders/0", group: group)
                if response?.bodyString == "legacy" {
                    return true
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return false
        }

        /// Runs a CLI process on a thread of its own, so that the load's tasks keep the cooperative threads.
        static func ficus(_ sandbox: Sandbox, _ arguments: String...) async -> FicusResult {
            await withCheckedContinuation { continuation in
                Thread {
                    let result =
                        (try? sandbox.ficus(arguments))
                        ?? FicusResult(status: -1, stdout: "", stderr: "could not run")
                    continuation.resume(returning: result)
                }.start()
            }
        }

        /// `ficus canary status ROUTE --json`, decoded.
        static func status(_ sandbox: Sandbox, _ route: String) async -> [String: Any] {
            let result = await Self.ficus(sandbox, "canary", "status", route, "--json")
            return ((try? decodeJSON(result.stdout)) as? [String: Any]) ?? [:]
        }

        /// Polls the canary's status until its phase is `phase`, for up to `seconds`; the last status seen.
        static func waitForPhase(
            _ phase: String,
            _ sandbox: Sandbox,
            _ route: String,
            seconds: Int
        ) async -> [String: Any] {
            let deadline = ContinuousClock.now + .seconds(seconds)
            var last: [String: Any] = [:]
            while ContinuousClock.now < deadline {
                last = await Self.status(sandbox, route)
                if last["phase"] as? String == phase {
                    break
                }
                try? await Task.sleep(for: .milliseconds(250))
            }
            return last
        }

        /// Keep-alive clients, each a different user (X-User), until `running` turns false; the bodies seen.
        static func load(port: Int, group: any EventLoopGroup, running: NIOLockedValueBox<Bool>) -> Task<
            [String: Int], Never
        > {
            Task {
                await withTaskGroup(of: [String: Int].self) { clients in
                    for worker in 0..<2 {
                        clients.addTask {
                            var bodies: [String: Int] = [:]
                            guard let client = try? await RawClient.connect(port: port, group: group) else {
                                return ["no connection": 1]
                            }
                            defer { client.close() }
                            var sequence = 0
                            while running.withLockedValue({ $0 }) {
                                sequence += 1
                                let user = "user-\(worker)-\(sequence)"
                                guard
                                    let response = try? await client.request(
                                        path: "/orders/\(sequence)",
                                        headers: [("X-User", user)]
                                    )
                                else {
                                    bodies["error", default: 0] += 1
                                    return bodies
                                }
                                bodies["\(response.status) \(response.bodyString)", default: 0] += 1
                            }
                            return bodies
                        }
                    }
                    var all: [String: Int] = [:]
                    for await bodies in clients {
                        all.merge(bodies, uniquingKeysWith: +)
                    }
                    return all
                }
            }
        }

        /// A store with `legacy` and `orders-v2` at the given upstreams and a route `orders` on legacy.
        static func sandbox(legacy: TestUpstream, modern: TestUpstream) throws -> Sandbox {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            return sandbox
        }

        /// A new service answering `v2`, and a 500 to every `failingEvery`-th request when given.
        static func newService(failingEvery: Int?, group: any EventLoopGroup) async throws -> TestUpstream {
            let counter = NIOLockedValueBox(0)
            return try await TestUpstream.start(
                .custom { _ in
                    let count = counter.withLockedValue { count in
                        count += 1
                        return count
                    }
                    if let every = failingEvery, count % every == 0 {
                        return TestUpstream.Response(status: 500, body: "boom")
                    }
                    return TestUpstream.Response(body: "v2")
                },
                group: group
            )
        }

        /// Starts a short canary: steps 20, 50, 100 of one second, 20 requests per step, sticky by X-User.
        ///
        /// The p99 gate is wide because loopback latencies of a few hundred microseconds are noise, not evidence.
        static func start(_ sandbox: Sandbox, interval: String = "1s") async -> FicusResult {
            await Self.ficus(
                sandbox, "canary", "start", "orders", "--to", "orders-v2", "--steps", "20,50,100", "--interval",
                interval, "--min-requests", "20", "--max-error-rate", "1%", "--max-p99-ratio", "100", "--sticky",
                "header:X-User"
            )
        }

        @Test(.timeLimit(.minutes(1))) func healthyNewServicePromotesToAll() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await Self.waitUntilServing(server, group: group))
            let running = NIOLockedValueBox(true)
            let load = Self.load(port: server.port, group: group, running: running)

            let started = await Self.start(sandbox)
            #expect(started.status == 0, "\(started)")
            let status = await Self.waitForPhase("promoted", sandbox, "orders", seconds: 25)
            running.withLockedValue { $0 = false }
            let bodies = await load.value

            #expect(status["phase"] as? String == "promoted", "\(status)")
            #expect(status["weight"] as? Int == 100)
            #expect(bodies["200 v2", default: 0] > 0 && bodies["200 legacy", default: 0] > 0, "\(bodies)")
            #expect(bodies.keys.allSatisfy { $0.hasPrefix("200 ") }, "\(bodies)")
            let exported = await Self.ficus(sandbox, "export")
            #expect(exported.stdout.contains("default: orders-v2"), "\(exported)")
            #expect(!exported.stdout.contains("canary-orders"), "\(exported)")
            // The report's migration-progress section shows the canary and every judgement it made.
            let report = await Self.ficus(sandbox, "report", "--format", "json", "--route", "orders")
            let routes = ((try? decodeJSON(report.stdout)) as? [String: Any])?["routes"] as? [[String: Any]]
            let canary = routes?.first?["canary"] as? [String: Any]
            #expect(canary?["phase"] as? String == "promoted", "\(report)")
            let verdicts = (canary?["judgements"] as? [[String: Any]])?.compactMap { $0["verdict"] as? String }
            #expect(verdicts?.filter { $0 == "pass" }.count == 3, "\(String(describing: canary))")
            let text = await Self.ficus(sandbox, "report", "--route", "orders")
            #expect(text.stdout.contains("canary → orders-v2: promoted, step 3 of 3, 100% new"), "\(text)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        @Test(.timeLimit(.minutes(1))) func failingNewServiceAbortsAtTheFirstStep() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await Self.newService(failingEvery: 20, group: group)
            let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await Self.waitUntilServing(server, group: group))
            let running = NIOLockedValueBox(true)
            let load = Self.load(port: server.port, group: group, running: running)

            let started = await Self.start(sandbox)
            #expect(started.status == 0, "\(started)")
            let status = await Self.waitForPhase("aborted", sandbox, "orders", seconds: 20)
            #expect(status["phase"] as? String == "aborted", "\(status)")
            #expect(status["step"] as? Int == 1, "\(status)")
            // About 5% (one in 20) of what reached the new side; the exact share depends on where the window cut.
            #expect((status["reason"] as? String)?.contains("error rate") == true, "\(status)")
            // As soon as the proxy serves the abort's revision, every user is back on legacy.
            #expect(await Self.waitForNewestRevision(sandbox, server, group: group))
            running.withLockedValue { $0 = false }
            _ = await load.value
            let afterRunning = NIOLockedValueBox(true)
            let after = Self.load(port: server.port, group: group, running: afterRunning)
            try await Task.sleep(for: .milliseconds(500))
            afterRunning.withLockedValue { $0 = false }
            let afterBodies = await after.value
            #expect(afterBodies["200 legacy", default: 0] > 0, "\(afterBodies)")
            #expect(afterBodies.keys.allSatisfy { $0 == "200 legacy" }, "every user back on legacy: \(afterBodies)")
            let exported = await Self.ficus(sandbox, "export")
            #expect(exported.stdout.contains("default: legacy"), "\(exported)")
            #expect(!exported.stdout.contains("canary-orders"), "\(exported)")
            let history = await Self.ficus(sandbox, "history")
            #expect(history.stdout.contains("aborted: error rate"), "\(history)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        /// A canary with 3 s steps judges them in time with `ficus serve` at its default 10 s windows: while it runs,
        /// every proxy writes four windows per canary interval (issue 15 item 4). A healthy new service is promoted;
        /// one that fails every 10th request is aborted.
        @Test(.timeLimit(.minutes(2))) func threeSecondStepsWorkWithServeAtItsDefaultWindows() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            for failing in [false, true] {
                let legacy = try await TestUpstream.start(
                    .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
                let modern = try await Self.newService(failingEvery: failing ? 10 : nil, group: group)
                let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
                // AgainstServe's server leaves --window-interval at its default (10 s).
                let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
                defer { server.stop() }
                #expect(await AgainstServe.waitFor("legacy", path: "/orders/0", server: server, group: group) == "legacy")
                let running = NIOLockedValueBox(true)
                let load = Self.load(port: server.port, group: group, running: running)
                let started = await Self.start(sandbox, interval: "3s")
                #expect(started.status == 0, "\(started)")
                let expected = failing ? "aborted" : "promoted"
                let status = await Self.waitForPhase(expected, sandbox, "orders", seconds: 40)
                running.withLockedValue { $0 = false }
                _ = await load.value
                #expect(status["phase"] as? String == expected, "\(status)")
                if failing {
                    #expect((status["reason"] as? String)?.contains("error rate") == true, "\(status)")
                }
                server.stop()
                try await legacy.shutdown()
                try await modern.shutdown()
            }
            try await group.shutdownGracefully()
        }

        @Test(.timeLimit(.minutes(1))) func flipDuringACanaryAbortsIt() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Self.sandbox(legacy: legacy, modern: modern)
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await Self.waitUntilServing(server, group: group))

            let started = await Self.start(sandbox, interval: "1m")
            #expect(started.status == 0, "\(started)")
            #expect((await Self.status(sandbox, "orders"))["phase"] as? String == "running")
            let flipped = await Self.ficus(sandbox, "flip", "orders", "--back", "--reason", "stop it")
            #expect(flipped.status == 0, "\(flipped)")
            let status = await Self.status(sandbox, "orders")
            #expect(status["phase"] as? String == "aborted", "\(status)")
            #expect((status["reason"] as? String)?.contains("ficus flip") == true, "\(status)")
            // The flip's own revision dropped the canary's rule; the proxy serves legacy to every user.
            let exported = await Self.ficus(sandbox, "export")
            #expect(!exported.stdout.contains("canary-orders"), "\(exported)")
            #expect(await Self.waitForNewestRevision(sandbox, server, group: group))
            for user in 0..<20 {
                let response = try await HTTPTestClient.get(
                    port: server.port,
                    path: "/orders/1",
                    headers: [("X-User", "u\(user)")],
                    group: group
                )
                #expect(response.bodyString == "legacy")
            }
            // Nothing is left to steer.
            let abort = await Self.ficus(sandbox, "canary", "abort", "orders")
            #expect(abort.status == 1, "\(abort)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
