import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// A proxy starts from its configuration cache when its store cannot be read, and catches up when it can
    /// (docs/FLEET.md, "Starting without the store").
    @Suite struct ConfigurationCache {
        /// Moves the store's files (database, WAL, shared memory) from `from` to `to`.
        static func move(_ from: String, _ to: String) throws {
            for suffix in ["", "-wal", "-shm"] where FileManager.default.fileExists(atPath: from + suffix) {
                try FileManager.default.moveItem(atPath: from + suffix, toPath: to + suffix)
            }
        }

        @Test func aProxyStartsFromTheCacheWithoutItsStoreAndCatchesUpWhenItReturns() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("modern".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            let revision = try #require(
                try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy").revision)
            let cache = sandbox.store + ".served.json"

            // A first run serves the store and leaves the cache beside it.
            let first = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/1", server: first, group: group) == "legacy")
            first.stop()
            let header = try String(contentsOfFile: cache, encoding: .utf8).prefix { $0 != "\n" }
            #expect(header.contains("\"revision\":\(revision)"), "\(header)")
            #expect(header.contains("\"sha256\""), "\(header)")

            // The store goes away; a proxy started now serves the cached revision and says why.
            let away = sandbox.directory.appendingPathComponent("away.sqlite").path
            try Self.move(sandbox.store, away)
            let second = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { second.stop() }
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/1", server: second, group: group) == "legacy")
            let health = await waitForHealth("degraded", adminPort: second.adminPort, group: group)
            #expect(health.contains("\"status\":\"degraded\""), "\(health)")
            #expect(health.contains("\"revision\":\(revision)"), "\(health)")
            #expect(health.contains("configuration cache"), "\(health)")
            let metrics = try await HTTPTestClient.get(port: second.adminPort, path: "/metrics", group: group)
            #expect(metrics.bodyString.contains("ficus_store_up 0"), "\(metrics.bodyString.prefix(2000))")

            // The store comes back and a flip is committed: the proxy opens it, serves the flip, and is healthy.
            try Self.move(away, sandbox.store)
            let flipped = try #require(try sandbox.ok("flip", "orders", "--to", "orders-v2").revision)
            #expect(await AgainstServe.waitForRevision(flipped, server: second, group: group))
            #expect(await AgainstServe.waitFor("modern", path: "/orders/1", server: second, group: group) == "modern")
            let recovered = await waitForHealth("\"status\":\"ok\"", adminPort: second.adminPort, group: group)
            #expect(recovered.contains("\"status\":\"ok\""), "\(recovered)")
            // ... and caches the flip.
            let cached = try String(contentsOfFile: cache, encoding: .utf8).prefix { $0 != "\n" }
            #expect(cached.contains("\"revision\":\(flipped)"), "\(cached)")

            second.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func withoutStoreAndCacheServeRefusesToStartAndSaysWhy() throws {
            let sandbox = try Sandbox()
            let missing = sandbox.directory.appendingPathComponent("missing.sqlite").path
            let arguments = [
                "serve", "--listen", "127.0.0.1:\(try freePort())", "--admin", "127.0.0.1:\(try freePort())",
            ]
            let refused = try sandbox.ficus(arguments, store: missing)
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderr.contains("run 'ficus init"), "\(refused)")
            #expect(refused.stderr.contains("no configuration to start from"), "\(refused)")
            #expect(refused.stderr.contains("missing.sqlite.served.json': does not exist"), "\(refused)")
            #expect(!FileManager.default.fileExists(atPath: missing), "serve created the store")

            let off = try sandbox.ficus(arguments + ["--config-cache", "off"], store: missing)
            #expect(off.status == 1, "\(off)")
            #expect(off.stderr.contains("run 'ficus init"), "\(off)")
            #expect(!off.stderr.contains("configuration cache"), "\(off)")
        }

        @Test func aDamagedOrForeignCacheIsNeverServed() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:9")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            let cache = sandbox.directory.appendingPathComponent("cache.json").path
            let arguments = [
                "serve", "--listen", "127.0.0.1:\(try freePort())", "--admin", "127.0.0.1:\(try freePort())",
                "--config-cache", cache,
            ]
            // A first run writes the cache; then the store goes away.
            let server = try AgainstServe.Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--config-cache", cache])
            let deadline = ContinuousClock.now + .seconds(20)
            while !FileManager.default.fileExists(atPath: cache), ContinuousClock.now < deadline {
                Thread.sleep(forTimeInterval: 0.05)
            }
            server.stop()
            try Self.move(sandbox.store, sandbox.store + ".away")

            // One byte of the configuration changed: refused, naming the file and the checksum.
            var bytes = try [UInt8](Data(contentsOf: URL(fileURLWithPath: cache)))
            let newline = try #require(bytes.firstIndex(of: UInt8(ascii: "\n")))
            let target = try #require(bytes[(newline + 1)...].firstIndex(of: UInt8(ascii: "l")))
            bytes[target] = UInt8(ascii: "L")
            try Data(bytes).write(to: URL(fileURLWithPath: cache))
            let damaged = try sandbox.ficus(arguments, store: sandbox.store)
            #expect(damaged.status == 1, "\(damaged)")
            #expect(damaged.stderr.contains("cache.json': damaged"), "\(damaged)")
            #expect(damaged.stderr.contains("SHA-256"), "\(damaged)")

            // A cache written for another store: refused, naming both.
            bytes[target] = UInt8(ascii: "l")
            try Data(bytes).write(to: URL(fileURLWithPath: cache))
            let other = sandbox.directory.appendingPathComponent("other.sqlite").path
            let foreign = try sandbox.ficus(arguments, store: other)
            #expect(foreign.status == 1, "\(foreign)")
            #expect(foreign.stderr.contains("field store: written for '\(sandbox.store)'"), "\(foreign)")
        }
    }
}

extension CLITests.Fleet {
    @Test func aProxyStartsFromTheCacheWhilePostgresIsDownAndCatchesUp() async throws {
        // A cluster of its own, paused while the proxy starts.
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-pg-\(UUID().uuidString)")
        let cluster = try FleetPostgres.cluster("start", directory.path)
        defer { _ = try? FleetPostgres.cluster("stop", directory.path) }
        let database = try FleetPostgres.createDatabase(on: cluster)
        let proxy = try await FleetProxy.start(database: database)
        let (group, sandbox) = (proxy.group, proxy.sandbox)
        proxy.server.stop()
        let cached = try FileManager.default.contentsOfDirectory(atPath: sandbox.directory.path)
            .filter { $0.hasPrefix("ficus-served-") }
        #expect(cached.count == 1, "\(cached)")

        try FleetPostgres.cluster("pause", directory.path)
        let server = try CLITests.AgainstServe.Server(store: database, directory: sandbox.directory)
        defer { server.stop() }
        let first = await CLITests.AgainstServe.waitFor("legacy", path: "/orders/1", server: server, group: group)
        #expect(first == "legacy")
        let health = await waitForHealth("degraded", adminPort: server.adminPort, group: group)
        #expect(health.contains("configuration cache"), "\(health)")

        try FleetPostgres.cluster("resume", directory.path)
        let flip = try sandbox.ficus(["flip", "orders", "--to", "orders-v2"], store: database)
        let revision = try #require(flip.revision, "\(flip)")
        #expect(await CLITests.AgainstServe.waitForRevision(revision, server: server, group: group))
        #expect(await CLITests.AgainstServe.waitFor("modern", path: "/orders/1", server: server, group: group) == "modern")
        let recovered = await waitForHealth("\"status\":\"ok\"", adminPort: server.adminPort, group: group, seconds: 10)
        #expect(recovered.contains("\"status\":\"ok\""), "\(recovered)")

        server.stop()
        try await proxy.stop()
    }
}
