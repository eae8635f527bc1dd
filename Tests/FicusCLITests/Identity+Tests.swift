import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// The store-wide identity and canaries that split behind a load balancer (issue 15 item 3).
    @Suite(.serialized) struct Identity {
        @Test func identityIsSetShownExportedAndApplied() throws {
            let sandbox = try Sandbox().seeded()
            #expect(try sandbox.ok("identity", "show").stdout.contains("client_ip (the default)"))
            let set = try sandbox.ok("identity", "set", "header:X-User-Id")
            #expect(set.revision != nil, "\(set)")
            #expect(try sandbox.ok("identity", "show").stdout.contains("header:X-User-Id"))
            let history = try sandbox.ok("history")
            #expect(history.stdout.contains("identity"), "\(history)")
            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("identity: header:X-User-Id"), "\(exported)")
            // The export applies back as the same configuration, identity included.
            let file = try sandbox.write("all.yaml", exported)
            let applied = try sandbox.ficus(["apply", file])
            #expect(applied.status == 0, "\(applied)")
            #expect(applied.stdout.contains("No changes: the store already holds this configuration."), "\(applied)")
            try sandbox.refused(["identity", "set", "header:bad name"], status: 3, mentioning: "identity")
            try sandbox.refused(["identity", "set", "path"], status: 2, mentioning: "expected header:NAME")
            try sandbox.ok("identity", "clear")
            #expect(try sandbox.ok("identity", "show").stdout.contains("client_ip (the default)"))
        }

        /// Behind a trusted load balancer with many X-Forwarded-For clients, a canary at the default stickiness
        /// (the client address) splits close to its weight; so does one on the store-wide identity header.
        @Test func aCanaryBehindATrustedProxySplitsCloseToItsWeight() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(.fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try CLITests.Canary.sandbox(legacy: legacy, modern: modern)
            let server = try AgainstServe.Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--trusted-proxy", "127.0.0.1"])
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/0", server: server, group: group) == "legacy")
            try sandbox.ok("canary", "start", "orders", "--to", "orders-v2", "--steps", "30,100", "--interval", "10m")
            let client = try await RawClient.connect(port: server.port, group: group)
            defer { client.close() }
            // Wait for the canary's revision to be served.
            let deadline = ContinuousClock.now + .seconds(5)
            var seen = 0
            while seen == 0 && ContinuousClock.now < deadline {
                for index in 0..<20 {
                    let response = try await client.request(
                        path: "/orders/1", headers: [("X-Forwarded-For", "198.51.100.\(index)")])
                    if response.bodyString == "v2" { seen += 1 }
                }
            }
            var byAddress = 0
            for index in 0..<600 {
                let address = "10.\(index / 250).\(index % 250).7"
                let response = try await client.request(path: "/orders/1", headers: [("X-Forwarded-For", address)])
                if response.bodyString == "v2" { byAddress += 1 }
            }
            #expect((120...240).contains(byAddress), "\(byAddress) of 600 at 30% by client address")
            let revision = try #require(try sandbox.ok("identity", "set", "header:X-User-Id").revision)
            // Wait until the proxy serves that revision (it reports it on /healthz).
            let served = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < served {
                let health = try? await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group)
                if health?.bodyString.contains("\"revision\":\(revision)") == true { break }
                try await Task.sleep(for: .milliseconds(20))
            }
            var byUser = 0
            for index in 0..<600 {
                let response = try await client.request(
                    path: "/orders/1", headers: [("X-Forwarded-For", "10.0.0.1"), ("X-User-Id", "user-\(index)")])
                if response.bodyString == "v2" { byUser += 1 }
            }
            #expect((120...240).contains(byUser), "\(byUser) of 600 at 30% by X-User-Id from one address")
            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
