import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

/// One client loop for the edge-hardening tests; it lives as long as the test process.
private let edgeGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

extension CLITests {
    /// Hostile input against the real `ficus serve` binary (issue 14): the process keeps running and answering.
    @Suite struct EdgeHardening {
        /// Chunk sizes that sum past Int64.max.
        static let overflowingChunks = "1\r\na\r\n7fffffffffffffff\r\n"

        @Test func theHostileRequestAndItsResponseTwinLeaveTheProcessRunning() async throws {
            let group = edgeGroup
            let (server, upstream, _) = try await ServeLogging.serve(["--access-log", "off"], group: group)
            defer { server.stop() }
            #expect(await server.waitUntilServing(group: group))
            let client = try await RawClient.connect(port: server.port, group: group)
            try await client.send(
                "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.overflowingChunks)
            let refused = try await client.readResponse()
            #expect(refused?.status == 413)
            client.close()
            #expect(server.process.isRunning)
            let after = try await HTTPTestClient.get(port: server.port, path: "/after", group: group)
            #expect(after.status == 200)
            try await upstream.shutdown()

            // The same bytes as an upstream's answer.
            let hostile = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.overflowingChunks
            let bad = try await TestUpstream.start(.raw(Array(hostile.utf8)), group: group)
            let sandbox = try Sandbox()
            let second = try ServeLogging.Server(
                ["--upstream", "b=\(bad.address)", "--default", "b", "--access-log", "off"],
                directory: sandbox.directory)
            defer { second.stop() }
            for _ in 0..<3 {
                var answered: RawClient?
                let deadline = ContinuousClock.now + .seconds(10)
                while answered == nil && ContinuousClock.now < deadline {
                    answered = try? await RawClient.connect(port: second.port, group: group)
                    if answered == nil { try await Task.sleep(for: .milliseconds(20)) }
                }
                let raw = try #require(answered)
                try await raw.send("GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                let text = String(decoding: try await raw.readAll(timeout: .seconds(3)), as: UTF8.self)
                #expect(text.hasPrefix("HTTP/1.1 200"), "\(text)")
                #expect(!text.hasSuffix("0\r\n\r\n"), "a truncated answer looked complete: \(text)")
                raw.close()
                #expect(second.process.isRunning)
            }
            try await bad.shutdown()
        }

        /// `--max-connections` holds in the binary: over it a connection is closed at once and counted.
        @Test func maxConnectionsHolds() async throws {
            let group = edgeGroup
            let (server, upstream, _) = try await ServeLogging.serve(
                ["--access-log", "off", "--max-connections", "2"], group: group)
            defer { server.stop() }
            #expect(await server.waitUntilServing(group: group))
            // The probes of waitUntilServing close on the client's side first: until the proxy has seen them go, they
            // still hold places, so a connection is retried until it is admitted (answered).
            func admitted(_ path: String) async throws -> RawClient {
                let deadline = ContinuousClock.now + .seconds(5)
                while true {
                    let client = try await RawClient.connect(port: server.port, group: group)
                    if (try? await client.send("GET \(path) HTTP/1.1\r\nHost: a\r\n\r\n")) != nil,
                        (try? await client.readResponse())??.status == 200
                    {
                        return client
                    }
                    client.close()
                    guard ContinuousClock.now < deadline else { throw FicusTestingError(.timedOut, "no place for \(path)") }
                    try await Task.sleep(for: .milliseconds(20))
                }
            }
            let first = try await admitted("/a")
            let second = try await admitted("/b")
            let third = try await RawClient.connect(port: server.port, group: group)
            #expect(await third.isClosed(within: .seconds(2)))
            third.close()
            try await first.send("GET /again HTTP/1.1\r\nHost: a\r\n\r\n")
            #expect(try await first.readResponse()?.status == 200, "admitted connections keep working")
            first.close()
            second.close()
            try await upstream.shutdown()
        }

        /// A shadow upstream that answers hostile bytes changes nothing for clients, and the proxy keeps running.
        @Test func aHostileShadowUpstreamChangesNothingForClients() async throws {
            let group = edgeGroup
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [("Content-Type", "application/json")], body: Array("{\"a\":1}".utf8)),
                group: group)
            let answers = [
                "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + Self.overflowingChunks,
                "HTTP/1.1 200 OK\r\nContent-Length: 99999999999999999999\r\n\r\n",
                "HTTP/1.1 9999 OK\r\n\r\n",
                "HTTP/1.1 200 OK\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\nabc",
                "\u{0}\u{1B}[2J garbage\r\n\r\n",
            ]
            for answer in answers {
                let shadow = try await TestUpstream.start(.raw(Array(answer.utf8)), group: group)
                let sandbox = try Sandbox()
                try sandbox.ok("init")
                try sandbox.ok("upstream", "add", "legacy", legacy.address)
                try sandbox.ok("upstream", "add", "orders-v2", shadow.address)
                try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
                try sandbox.ok("shadow", "orders", "--to", "orders-v2", "--percent", "100")
                let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
                defer { server.stop() }
                #expect(
                    await AgainstServe.waitFor("{\"a\":1}", path: "/orders/0", server: server, group: group)
                        == "{\"a\":1}")
                for index in 1...10 {
                    let response = try await HTTPTestClient.get(port: server.port, path: "/orders/\(index)", group: group)
                    #expect(response.status == 200, "\(answer)")
                    #expect(response.bodyString == "{\"a\":1}")
                }
                let deadline = ContinuousClock.now + .seconds(5)
                while shadow.connectionsAccepted < 5 && ContinuousClock.now < deadline {
                    try await Task.sleep(for: .milliseconds(20))
                }
                #expect(shadow.connectionsAccepted >= 5, "the copies were sent")
                #expect(server.process.isRunning, "\(answer)")
                let health = try await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group)
                #expect(health.status == 200)
                server.stop()
                try await shadow.shutdown()
            }
            try await legacy.shutdown()
        }

        /// Behind a trusted proxy the client is the right-most untrusted X-Forwarded-For address, and that is what
        /// an `ip` segment sees; a spoofed left-most entry, or the same field from an untrusted peer, is not.
        @Test func ipSegmentsSeeTheClientBehindATrustedProxy() async throws {
            let group = edgeGroup
            let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("modern".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("segment", "add", "office", "--ip", "203.0.113.0/24")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "office")
            let trusting = try AgainstServe.Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--trusted-proxy", "127.0.0.0/8"])
            defer { trusting.stop() }
            let plain = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { plain.stop() }
            let office = [("X-Forwarded-For", "198.51.100.7, 203.0.113.9")]
            #expect(
                await AgainstServe.waitFor("modern", path: "/orders/1", headers: office, server: trusting, group: group)
                    == "modern")
            let spoofed = [("X-Forwarded-For", "203.0.113.9, 198.51.100.7")]
            let fromSpoofed = try await HTTPTestClient.get(
                port: trusting.port, path: "/orders/2", headers: spoofed, group: group)
            #expect(fromSpoofed.bodyString == "legacy", "a spoofed left-most entry was believed")
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/0", server: plain, group: group) == "legacy")
            let untrusted = try await HTTPTestClient.get(port: plain.port, path: "/orders/3", headers: office, group: group)
            #expect(untrusted.bodyString == "legacy", "an untrusted peer's X-Forwarded-For was believed")
            trusting.stop()
            plain.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
        }
    
        /// From the start of a graceful shutdown `/healthz` answers 503 `draining`, while the request in flight
        /// still finishes.
        @Test func healthzAnswers503WhileDraining() async throws {
            let group = edgeGroup
            let slow = try await TestUpstream.start(
                .slow(delay: .milliseconds(1500), then: .fixed(status: 200, headers: [], body: Array("done".utf8))),
                group: group)
            let sandbox = try Sandbox()
            let port = try freePort()
            let adminPort = try freePort()
            let process = Process()
            process.executableURL = FicusProcess.binary
            process.arguments = [
                "serve", "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(adminPort)", "--threads", "1",
                "--drain-timeout", "5", "--upstream", "b=\(slow.address)", "--default", "b", "--access-log", "off",
            ]
            process.currentDirectoryURL = sandbox.directory
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer {
                if process.isRunning { process.terminate() }
                process.waitUntilExit()
            }
            var ready: RawResponse?
            let deadline = ContinuousClock.now + .seconds(10)
            while ready?.status != 200 && ContinuousClock.now < deadline {
                ready = try? await HTTPTestClient.get(port: adminPort, path: "/healthz", group: group)
                if ready?.status != 200 { try await Task.sleep(for: .milliseconds(20)) }
            }
            #expect(ready?.status == 200)
            let inFlight = Task { try await HTTPTestClient.get(port: port, path: "/slow", group: group) }
            _ = try await slow.waitForRequests(1, timeout: .seconds(5))
            process.terminate()
            var draining: RawResponse?
            let drainDeadline = ContinuousClock.now + .seconds(3)
            while draining?.status != 503 && ContinuousClock.now < drainDeadline {
                draining = try? await HTTPTestClient.get(port: adminPort, path: "/healthz", group: group)
                if draining?.status != 503 { try await Task.sleep(for: .milliseconds(10)) }
            }
            #expect(draining?.status == 503)
            #expect(draining?.bodyString.contains("\"status\":\"draining\"") == true, "\(String(describing: draining))")
            let finished = try await inFlight.value
            #expect(finished.status == 200)
            #expect(finished.bodyString == "done")
            process.waitUntilExit()
            #expect(process.terminationStatus == 0)
            try await slow.shutdown()
        }
}
}
