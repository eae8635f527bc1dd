import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests.Fleet {
    /// Two proxies on one PostgreSQL database, the driver of a canary reaching it through a link the test cuts: the
    /// other proxy takes the canary over once the lease lapses, and the cut proxy, when its link is mended, does not
    /// drive it again: every step after the takeover is the survivor's (one driver at any time).
    @Test(.timeLimit(.minutes(2))) func aCanaryKeepsOneDriverWhileItsDriversLinkIsCut() async throws {
        let server = try #require(FleetPostgres.url, "FICUS_TEST_POSTGRES is not set")
        let database = try FleetPostgres.createDatabase()
        defer { FleetPostgres.drop(database) }
        let proxy = try await FleetProxy.start(database: database)
        let (group, sandbox) = (proxy.group, proxy.sandbox)
        proxy.server.stop()

        // The first proxy talks to PostgreSQL through the relay; the second directly.
        let port = try #require(Int(server.split(separator: ":").last?.split(separator: "/").first ?? ""))
        let relay = try await TCPRelay.start(to: "127.0.0.1", port: port, group: group)
        let relayed = database.replacingOccurrences(of: ":\(port)/", with: ":\(relay.port)/")
        let lease = ["--lease-ttl", "3"]
        let first = try CLITests.AgainstServe.Server(store: relayed, directory: sandbox.directory, extraArguments: lease)
        defer { first.stop() }
        #expect(await CLITests.AgainstServe.waitFor("legacy", path: "/orders/1", server: first, group: group) == "legacy")

        // A canary that holds every step (no traffic reaches it): its driver writes a step every second.
        let started = try sandbox.ficus(
            ["canary", "start", "orders", "--to", "orders-v2", "--steps", "50,100", "--interval", "1s", "--max-hold", "1000"],
            store: database)
        #expect(started.status == 0, "\(started)")
        func driver() throws -> String {
            let status = try sandbox.ficus(["canary", "status", "orders", "--json"], store: database)
            return ((try? decodeJSON(status.stdout)) as? [String: Any])?["driver"] as? String ?? ""
        }
        var deadline = ContinuousClock.now + .seconds(10)
        while !(try driver()).contains(":\(first.process.processIdentifier):"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(100))
        }
        #expect(try driver().contains(":\(first.process.processIdentifier):"), "the first proxy drives")
        let second = try CLITests.AgainstServe.Server(store: database, directory: sandbox.directory, extraArguments: lease)
        defer { second.stop() }
        #expect(await CLITests.AgainstServe.waitFor("legacy", path: "/orders/1", server: second, group: group) == "legacy")

        // Cut the driver's link: the lease lapses (3 s) and the second proxy drives.
        relay.cut()
        deadline = ContinuousClock.now + .seconds(20)
        while !(try driver()).contains(":\(second.process.processIdentifier):"), ContinuousClock.now < deadline {
            try await Task.sleep(for: .milliseconds(200))
        }
        #expect(try driver().contains(":\(second.process.processIdentifier):"), "the second proxy took over")
        // Mend the link: the first proxy reconnects and must stand by.
        relay.mend()
        try await Task.sleep(for: .seconds(6))
        #expect(try driver().contains(":\(second.process.processIdentifier):"), "the second proxy still drives")

        // The canary's steps in the audit log, by author: the first proxy's, then only the second's.
        let authors = try FleetPostgres.query(
            database, "SELECT author FROM audit WHERE action = 'canary.step' ORDER BY id")
        let firstID = ":\(first.process.processIdentifier):"
        let secondID = ":\(second.process.processIdentifier):"
        let takeover = try #require(authors.firstIndex { $0.contains(secondID) }, "\(authors)")
        #expect(authors[..<takeover].allSatisfy { $0.contains(firstID) }, "\(authors)")
        #expect(authors[takeover...].allSatisfy { $0.contains(secondID) }, "two drivers: \(authors)")
        #expect(authors.count - takeover >= 3, "the second proxy kept driving: \(authors)")

        first.stop()
        second.stop()
        try await relay.stop()
        try await proxy.stop()
    }
}
