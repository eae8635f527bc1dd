import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension CLITests {
    /// Commands change what clients of a running `ficus serve` see, without a restart.
    @Suite struct AgainstServe {
        /// A `ficus serve` process on free loopback ports, reading `store`.
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
                    "--poll-interval", "5", "--heartbeat-interval", "1", "--drain-timeout", "1", "--log-level",
                    "warning",
                ] + extraArguments
                self.process.currentDirectoryURL = directory
                self.process.standardOutput = FileHandle.nullDevice
                self.process.standardError = FileHandle.nullDevice
                try self.process.run()
            }

            /// SIGTERM, then waits for the exit; a proxy still running 30 s later (its drain timeout is 1 s) is a
            /// failure of the test, and is killed so that the run goes on instead of hanging.
            func stop() {
                guard self.process.isRunning else {
                    self.process.waitUntilExit()
                    return
                }
                self.process.terminate()
                let deadline = ContinuousClock.now + .seconds(30)
                while self.process.isRunning, ContinuousClock.now < deadline {
                    Thread.sleep(forTimeInterval: 0.01)
                }
                if self.process.isRunning {
                    Issue.record("ficus serve (pid \(self.process.processIdentifier)) did not exit within 30 s of SIGTERM")
                    kill(self.process.processIdentifier, SIGKILL)
                }
                self.process.waitUntilExit()
            }
        }

        /// GETs `path` until the body is `expected`, for up to 5 s; the body last seen otherwise.
        static func waitFor(
            _ expected: String,
            path: String,
            headers: [(String, String)] = [],
            server: Server,
            group: any EventLoopGroup
        ) async -> String {
            let deadline = ContinuousClock.now + .seconds(5)
            var last = "(no answer)"
            while ContinuousClock.now < deadline {
                if let response = try? await HTTPTestClient.get(
                    port: server.port,
                    path: path,
                    headers: headers,
                    group: group,
                    timeout: .seconds(2)
                ) {
                    last = "\(response.status) \(response.bodyString)"
                    if response.status == 200, response.bodyString == expected {
                        return expected
                    }
                }
                try? await Task.sleep(for: .milliseconds(20))
            }
            return last
        }

        /// Waits until `server` serves `revision` (see `waitForServedRevision`).
        static func waitForRevision(_ revision: Int, server: Server, group: any EventLoopGroup) async -> Bool {
            await waitForServedRevision(revision, adminPort: server.adminPort, group: group)
        }

        @Test func flipKillUnkillAndRollbackChangeWhatClientsSee() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("route", "add", "users", "--prefix", "/users", "--to", "legacy")
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }

            #expect(await Self.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")
            #expect(try sandbox.ok("flip", "orders", "--to", "orders-v2").revision == 5)
            #expect(await Self.waitFor("v2", path: "/orders/1", server: server, group: group) == "v2")
            #expect(await Self.waitFor("legacy", path: "/users/1", server: server, group: group) == "legacy")
            try sandbox.ok("flip", "users", "--to", "orders-v2")
            #expect(await Self.waitFor("v2", path: "/users/1", server: server, group: group) == "v2")

            try sandbox.ok("kill")
            #expect(await Self.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")
            #expect(await Self.waitFor("legacy", path: "/users/1", server: server, group: group) == "legacy")
            try sandbox.ok("unkill")
            #expect(await Self.waitFor("v2", path: "/orders/1", server: server, group: group) == "v2")

            // Whole rollback to the default (the revision before the newest: killed).
            #expect(try sandbox.ok("rollback").revision == 9)
            #expect(await Self.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")
            try sandbox.ok("rollback", "--to", "6")
            #expect(await Self.waitFor("v2", path: "/orders/1", server: server, group: group) == "v2")

            // Route rollback: orders back to before its flip; users stays on v2.
            try sandbox.ok("rollback", "--route", "orders", "--to", "4")
            #expect(await Self.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")
            #expect(await Self.waitFor("v2", path: "/users/1", server: server, group: group) == "v2")

            // A rule: beta users of orders get v2 again.
            try sandbox.ok("segment", "add", "beta", "--header", "X-Beta=1")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            #expect(
                await Self.waitFor("v2", path: "/orders/1", headers: [("X-Beta", "1")], server: server, group: group)
                    == "v2")

            // The proxy reports itself, with the revision it serves.
            var proxies: [[String: Any]] = []
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                let status = try decodeJSON(try sandbox.ok("status", "--json").stdout) as? [String: Any]
                proxies = status?["proxies"] as? [[String: Any]] ?? []
                if proxies.first?["current"] as? Bool == true {
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(proxies.count == 1)
            #expect(proxies.first?["listen"] as? String == "127.0.0.1:\(server.port)")
            #expect(proxies.first?["current"] as? Bool == true)
            #expect(try sandbox.ok("status").stdout.contains("127.0.0.1:\(server.port)"))

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
///
/// `ficus serve` needs its ports on the command line; binding port 0 and closing is the usual, slightly racy, way.
func freePort() throws -> Int {
    let socket = Glibc.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard socket >= 0 else {
        throw POSIXError(.EMFILE)
    }
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = 0
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    let bound = withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(socket, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard bound == 0 else {
        throw POSIXError(.EADDRINUSE)
    }
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    _ = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(socket, $0, &length) }
    }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Polls `/healthz` on `adminPort` until the proxy serves `revision` or a later one, for up to 20 s: what a test waits
/// for after a change, instead of sleeping and hoping the proxy has picked it up.
func waitForServedRevision(_ revision: Int, adminPort: Int, group: any EventLoopGroup) async -> Bool {
    let deadline = ContinuousClock.now + .seconds(20)
    while ContinuousClock.now < deadline {
        if let health = try? await HTTPTestClient.get(
            port: adminPort, path: "/healthz", group: group, timeout: .seconds(2)),
            let range = health.bodyString.range(of: "\"revision\":"),
            let served = Int(health.bodyString[range.upperBound...].prefix { $0.isNumber }),
            served >= revision
        {
            return true
        }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return false
}
