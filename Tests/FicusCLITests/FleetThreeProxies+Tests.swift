import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import Testing

extension CLITests.Fleet {
    /// Three `ficus serve` on one database: flips and rollbacks from separate CLI processes reach all three, and
    /// `ficus status` lists the three.
    @Test func flipsAndRollbacksFromOtherProcessesReachThreeProxies() async throws {
        let database = try FleetPostgres.createDatabase()
        defer { FleetPostgres.drop(database) }
        let first = try await FleetProxy.start(database: database)
        let (group, sandbox) = (first.group, first.sandbox)
        defer { first.server.stop() }
        let others = try (0..<2).map { _ in
            try CLITests.AgainstServe.Server(store: database, directory: sandbox.directory)
        }
        defer { others.forEach { $0.stop() } }
        let servers = [first.server] + others
        for server in servers {
            #expect(await CLITests.AgainstServe.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")
        }

        for (arguments, body) in [
            (["flip", "orders", "--to", "orders-v2"], "modern"), (["rollback"], "legacy"),
            (["rollback", "--to", "4"], "modern"), (["kill"], "legacy"), (["unkill"], "modern"),
        ] {
            let result = try sandbox.ficus(arguments, store: database)
            let revision = try #require(result.revision, "\(arguments): \(result)")
            for (index, server) in servers.enumerated() {
                #expect(
                    await CLITests.AgainstServe.waitForRevision(revision, server: server, group: group),
                    "proxy \(index) after \(arguments)")
                let seen = await CLITests.AgainstServe.waitFor(body, path: "/orders/1", server: server, group: group)
                #expect(seen == body, "proxy \(index) after \(arguments)")
            }
        }

        var proxies: [[String: Any]] = []
        let deadline = ContinuousClock.now + .seconds(10)
        while ContinuousClock.now < deadline {
            let status = try decodeJSON(try sandbox.ficus(["status", "--json"], store: database).stdout)
            proxies = (status as? [String: Any])?["proxies"] as? [[String: Any]] ?? []
            if proxies.count == 3, proxies.allSatisfy({ $0["current"] as? Bool == true }) {
                break
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(Set(proxies.compactMap { $0["listen"] as? String }) == Set(servers.map { "127.0.0.1:\($0.port)" }))
        #expect(proxies.allSatisfy { $0["current"] as? Bool == true }, "\(proxies)")

        others.forEach { $0.stop() }
        try await first.stop()
    }

    /// PostgreSQL stopped and started again while keep-alive clients send requests without pause: not one fails,
    /// and a change committed once it is back is served.
    @Test func aPostgresRestartUnderKeepAliveLoadFailsNoRequest() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-pg-\(UUID().uuidString)")
        let cluster = try FleetPostgres.cluster("start", directory.path)
        defer { _ = try? FleetPostgres.cluster("stop", directory.path) }
        let database = try FleetPostgres.createDatabase(on: cluster)
        let proxy = try await FleetProxy.start(database: database)
        let (group, sandbox, server) = (proxy.group, proxy.sandbox, proxy.server)
        defer { server.stop() }

        let tally = NIOLockedValueBox(CLITests.FlipUnderLoad.Tally())
        let running = NIOLockedValueBox(true)
        let load = CLITests.FlipUnderLoad.keepAliveLoad(
            port: server.port, group: group, running: running, tally: tally)
        try await Task.sleep(for: .milliseconds(300))
        try FleetPostgres.cluster("pause", directory.path)
        let health = await waitForHealth("degraded", adminPort: server.adminPort, group: group, seconds: 10)
        #expect(health.contains("cannot be reached"), "\(health)")
        let duringOutage = tally.withLockedValue { $0.ok }
        try await Task.sleep(for: .seconds(1))
        #expect(tally.withLockedValue { $0.ok } > duringOutage, "requests kept being answered during the outage")
        try FleetPostgres.cluster("resume", directory.path)
        let flip = try sandbox.ficus(["flip", "orders", "--to", "orders-v2"], store: database)
        let revision = try #require(flip.revision, "\(flip)")
        #expect(await CLITests.AgainstServe.waitForRevision(revision, server: server, group: group))
        let deadline = ContinuousClock.now + .seconds(10)
        while !tally.withLockedValue({ $0.bodies.contains("modern") }), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(20))
        }
        running.withLockedValue { $0 = false }
        await load.value

        let result = tally.withLockedValue { $0 }
        #expect(result.failed.isEmpty, "\(result.failed.prefix(5))")
        #expect(result.ok > 100, "\(result.ok) answers")
        #expect(result.bodies == ["legacy", "modern"], "\(result.bodies)")
        try await proxy.stop()
    }
}
