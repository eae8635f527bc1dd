import FicusCore
import FicusDiff
import FicusStore
import FicusTesting
import Foundation
import GRDB
import NIOCore
import NIOPosix
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension CLITests {
    /// The store's files under a running `ficus serve`: creation, the telemetry file beside it, and replacement.
    @Suite struct StoreFiles {
        /// A `ficus serve` on a store, on free loopback ports, keeping what it writes to standard error.
        final class Server: @unchecked Sendable {
            let process = Process()
            let port: Int
            let adminPort: Int
            let stderrURL: URL
            private let stderr: FileHandle

            init(store: String, directory: URL, extraArguments: [String] = []) throws {
                self.port = try freePort()
                self.adminPort = try freePort()
                self.stderrURL = directory.appendingPathComponent("serve-\(UUID().uuidString).err")
                _ = FileManager.default.createFile(atPath: self.stderrURL.path, contents: nil)
                self.stderr = try FileHandle(forWritingTo: self.stderrURL)
                self.process.executableURL = FicusProcess.binary
                self.process.arguments = [
                    "serve", "--store", store, "--listen", "127.0.0.1:\(self.port)",
                    "--admin", "127.0.0.1:\(self.adminPort)", "--threads", "1", "--access-log", "off",
                    "--poll-interval", "5", "--heartbeat-interval", "1", "--window-interval", "1",
                    "--drain-timeout", "1", "--log-level", "notice",
                ] + extraArguments
                self.process.currentDirectoryURL = directory
                self.process.environment = ["PATH": "/usr/bin:/bin", "HOME": directory.path, "USER": "tester"]
                self.process.standardOutput = FileHandle.nullDevice
                self.process.standardError = self.stderr
                self.process.standardInput = FileHandle.nullDevice
                try self.process.run()
            }

            /// Stops the server (SIGTERM) and returns everything it wrote to standard error.
            @discardableResult
            func stop() -> String {
                if self.process.isRunning {
                    self.process.terminate()
                }
                self.process.waitUntilExit()
                try? self.stderr.close()
                return (try? String(contentsOf: self.stderrURL, encoding: .utf8)) ?? ""
            }

            /// Waits up to `seconds` for the process to exit by itself; its status, or nil if it still runs.
            func exitStatus(within seconds: Double) async -> Int32? {
                let deadline = ContinuousClock.now + .milliseconds(Int(seconds * 1000))
                while self.process.isRunning, ContinuousClock.now < deadline {
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return self.process.isRunning ? nil : self.process.terminationStatus
            }

            /// `/healthz` once it contains `text` (up to 5 s), else the last body seen.
            func health(containing text: String, group: any EventLoopGroup) async -> String {
                var body = ""
                let deadline = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < deadline {
                    body =
                        (try? await HTTPTestClient.get(
                            port: self.adminPort, path: "/healthz", group: group, timeout: .seconds(2)))?.bodyString
                        ?? ""
                    if body.contains(text) {
                        break
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return body
            }

            /// GETs `path` until the body is `expected`, for up to 5 s; the body last seen otherwise.
            func waitFor(_ expected: String, path: String, group: any EventLoopGroup) async -> String {
                let deadline = ContinuousClock.now + .seconds(5)
                var last = "(no answer)"
                while ContinuousClock.now < deadline {
                    if let response = try? await HTTPTestClient.get(
                        port: self.port, path: path, group: group, timeout: .seconds(2))
                    {
                        last = "\(response.status) \(response.bodyString)"
                        if response.status == 200, response.bodyString.hasPrefix(expected) {
                            return expected
                        }
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return last
            }
        }

        /// The permission bits of the file at `path`.
        static func mode(_ path: String) -> mode_t? {
            var info = stat()
            guard stat(path, &info) == 0 else {
                return nil
            }
            return info.st_mode & 0o777
        }

        /// A store at `path` (in `sandbox`) with upstreams `legacy` and `orders-v2` and route `orders` on `serving`.
        @discardableResult
        static func seed(_ sandbox: Sandbox, store path: String, legacy: String, modern: String, serving: String)
            throws -> Int?
        {
            for arguments in [
                ["init"], ["upstream", "add", "legacy", legacy], ["upstream", "add", "orders-v2", modern],
                ["route", "add", "orders", "--prefix", "/orders", "--to", serving],
            ] {
                let result = try sandbox.ficus(arguments, store: path)
                #expect(result.status == 0, "\(arguments): \(result)")
                if arguments[0] == "route" {
                    return result.revision
                }
            }
            return nil
        }

        @Test func serveWithoutInitRefusesAMissingStoreAndCreatesItWithInit() async throws {
            let sandbox = try Sandbox()
            let refused = try Server(store: sandbox.store, directory: sandbox.directory)
            let status = await refused.exitStatus(within: 10)
            let stderr = refused.stop()
            #expect(status == 1, "serve on a missing store: \(stderr)")
            #expect(!FileManager.default.fileExists(atPath: sandbox.store))
            // The same words as every other command.
            let flip = try sandbox.ficus("flip", "orders", "--to", "v2")
            #expect(flip.status == 1)
            #expect(stderr.contains(flip.stderr.trimmingCharacters(in: .whitespacesAndNewlines)), "\(stderr)")
            #expect(stderr.contains("no store at '\(sandbox.store)'"))

            // A size that is not one is a usage error, before anything is opened.
            let badSize = try sandbox.ficus("serve", "--init", "--telemetry-max-size", "lots")
            #expect(badSize.status == 2, "\(badSize)")
            #expect(badSize.stderr.contains("--telemetry-max-size 'lots'"), "\(badSize)")
            #expect(!FileManager.default.fileExists(atPath: sandbox.store))

            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let created = try Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--init", "--telemetry-max-size", "1M"])
            let health = await created.health(containing: "\"revision\":0", group: group)
            #expect(health.contains("\"status\":\"ok\""), "\(health)")
            #expect(FileManager.default.fileExists(atPath: sandbox.store))
            #expect(Self.mode(sandbox.store) == 0o600)
            created.stop()
            try await group.shutdownGracefully()
        }

        @Test func storeFilesAreCreatedPrivate() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            #expect(Self.mode(sandbox.store) == 0o600)
            for side in ["-wal", "-shm"] where FileManager.default.fileExists(atPath: sandbox.store + side) {
                #expect(Self.mode(sandbox.store + side) == 0o600, "\(side)")
            }
        }

        /// A telemetry file at its size bound, and then one locked by another process, under shadowed traffic: a
        /// flip goes through and is served, telemetry is dropped (and counted) only while it cannot be written, and
        /// the file keeps the newest records within its bound.
        @Test func aFullOrLockedTelemetryFileNeverStopsAFlip() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let json = [("Content-Type", "application/json")]
            let padding = String(repeating: "x", count: 3_000)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: json, body: Array("{\"side\":\"legacy\",\"pad\":\"\(padding)\"}".utf8)),
                group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: json, body: Array("{\"side\":\"v2\",\"pad\":\"\(padding)\"}".utf8)),
                group: group)
            let sandbox = try Sandbox()
            try Self.seed(
                sandbox, store: sandbox.store, legacy: legacy.address, modern: modern.address, serving: "legacy")
            try sandbox.ok("shadow", "set", "orders", "--to", "orders-v2", "--percent", "100")
            let bound = 256 * 1024
            let server = try Server(
                store: sandbox.store, directory: sandbox.directory, extraArguments: ["--telemetry-max-size", "256KiB"])
            defer { server.stop() }
            let legacyBody = "{\"side\":\"legacy\""
            #expect(await server.waitFor(legacyBody, path: "/orders", group: group) == legacyBody)
            let telemetryPath = sandbox.directory.appendingPathComponent("ficus-telemetry.sqlite").path

            // Phase 1: far more differing records than 256 KiB holds.
            let client = try await RawClient.connect(port: server.port, group: group)
            for index in 0..<300 {
                #expect(try await client.request(path: "/orders/\(index)").status == 200)
            }
            let reader = try SQLiteConfigurationStore(path: sandbox.store)
            // Until every one of the 300 requests is accounted for (compared, a shadow error or dropped): a pause of the
            // comparer on a loaded machine must not pass for the end. Before the flip, so that no comparison still
            // under way meets the next revision.
            var compared = 0
            var copiesDropped: [ShadowDropSummary] = []
            let settled = ContinuousClock.now + .seconds(30)
            while ContinuousClock.now < settled {
                // The waits for an answer ask for `/orders`, so that only these requests count.
                let endpoints = try await reader.shadowEndpoints(route: "orders", from: nil, to: nil)
                    .filter { $0.endpoint == "GET /orders/{id}" }
                compared = endpoints.reduce(0) { $0 + $1.compared + $1.errors }
                copiesDropped = endpoints.flatMap(\.dropped)
                if endpoints.reduce(0, { $0 + $1.eligible }) >= 300 {
                    break
                }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(copiesDropped.isEmpty, "no copy dropped: \(copiesDropped)")
            let samples = try await reader.shadowSamples(
                route: "orders", endpoint: "GET /orders/{id}", path: nil, kind: nil, limit: 1_000)
            let flipped = try sandbox.ok("flip", "orders", "--to", "orders-v2")
            #expect(flipped.revision != nil)
            #expect(await server.waitFor("{\"side\":\"v2\"", path: "/orders", group: group) == "{\"side\":\"v2\"")
            let indices = samples.compactMap { Int($0.target.split(separator: "/").last ?? "") }.sorted()
            #expect(compared > samples.count, "retention kept \(samples.count) of \(compared) compared requests")
            // The newest compared requests are kept, whatever the comparer's batches were: the newest records of
            // each batch (at most an eighth of the bound per batch), then the newest batches (retention by id).
            #expect(
                indices.last ?? 0 >= 290,
                "the newest records are kept: \(indices.suffix(10)) of \(compared) compared, dropped \(copiesDropped)")
            // Retention deletes by insertion order and a batch that hit the bound is stored again after the trim, so a
            // few older requests can outlive newer ones; most of what is kept is from the newer half all the same.
            #expect(
                indices.filter { $0 >= 150 }.count * 2 >= indices.count,
                "the oldest records made room: \(indices)"
            )
            #expect(!samples.isEmpty)
            let size = try FileManager.default.attributesOfItem(atPath: telemetryPath)[.size] as? Int ?? Int.max
            #expect(size <= bound, "telemetry file \(size) bytes, bound \(bound)")
            #expect(Self.mode(telemetryPath) == 0o600)

            // Phase 2: another process holds the telemetry file's write lock; a flip back goes through all the same.
            let holder = try TelemetryLock(path: telemetryPath)
            for index in 300..<340 {
                #expect(try await client.request(path: "/orders/\(index)").status == 200)
            }
            let started = ContinuousClock.now
            let back = try sandbox.ok("flip", "orders", "--to", "legacy")
            let flipTook = ContinuousClock.now - started
            #expect(back.revision == flipped.revision.map { $0 + 1 })
            #expect(await server.waitFor(legacyBody, path: "/orders", group: group) == legacyBody)
            // The comparer's batch waits out the telemetry busy timeout (2 s), is dropped and counted.
            var dropped = 0.0
            let counted = ContinuousClock.now + .seconds(8)
            while ContinuousClock.now < counted, dropped == 0 {
                try await Task.sleep(for: .milliseconds(200))
                let metrics = try await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group)
                dropped = metrics.bodyString.split(separator: "\n")
                    .filter { $0.hasPrefix("ficus_shadow_dropped_total") && $0.contains("store_failed") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
            }
            var storeCounted = 0.0
            let exported = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < exported, storeCounted == 0 {
                let metrics = try await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group)
                storeCounted = metrics.bodyString.split(separator: "\n")
                    .filter { $0.hasPrefix("ficus_telemetry_dropped_total{kind=\"batches\"}") }
                    .compactMap { Double($0.split(separator: " ").last ?? "") }.reduce(0, +)
                try await Task.sleep(for: .milliseconds(200))
            }
            holder.release()
            #expect(dropped > 0, "no shadow record was counted as dropped while the telemetry file was locked")
            #expect(storeCounted > 0, "ficus_telemetry_dropped_total{kind=\"batches\"} did not count the drop")
            print("flip with a locked telemetry file took \(flipTook); \(Int(dropped)) shadow records dropped")

            // Telemetry resumes once the lock is gone.
            for index in 340..<350 {
                #expect(try await client.request(path: "/orders/\(index)").status == 200)
            }
            client.close()
            var resumed = false
            let again = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < again, !resumed {
                resumed = try await reader.shadowSamples(
                    route: "orders", endpoint: "GET /orders/{id}", path: nil, kind: nil, limit: 1_000
                ).contains { $0.target == "/orders/349" }
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(resumed, "telemetry did not resume after the lock was released")
            let stderr = server.stop()
            #expect(stderr.contains("telemetry dropped"), "\(stderr.suffix(2_000))")
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func aStoreReplacedUnderServeIsServedWithAWarning() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Sandbox()
            try Self.seed(
                sandbox, store: sandbox.store, legacy: legacy.address, modern: modern.address, serving: "legacy")
            try sandbox.ok("segment", "add", "beta", "--header", "X-Beta=1")
            // The backup: another store with one revision fewer, whose route is on orders-v2.
            let backup = sandbox.directory.appendingPathComponent("backup.sqlite").path
            let backupRevision = try Self.seed(
                sandbox, store: backup, legacy: legacy.address, modern: modern.address, serving: "orders-v2")
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await server.waitFor("legacy", path: "/orders/1", group: group) == "legacy")

            #expect(rename(backup, sandbox.store) == 0)
            #expect(await server.waitFor("v2", path: "/orders/1", group: group) == "v2")
            let health = await server.health(containing: "\"revision\":\(backupRevision ?? -1)", group: group)
            #expect(health.contains("\"status\":\"ok\""), "\(health)")
            // The proxy writes to the new file too: its heartbeat shows up there, and commits to it are served.
            try sandbox.ok("flip", "orders", "--to", "legacy")
            #expect(await server.waitFor("legacy", path: "/orders/1", group: group) == "legacy")
            var proxies: [[String: Any]] = []
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline, proxies.isEmpty {
                let status = try decodeJSON(try sandbox.ok("status", "--json").stdout) as? [String: Any]
                proxies = status?["proxies"] as? [[String: Any]] ?? []
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(proxies.count == 1)
            let stderr = server.stop()
            #expect(stderr.contains("the store was replaced or restored"), "\(stderr)")
            #expect(stderr.contains("the store file was replaced (inode"), "\(stderr)")
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func healthzClearsDegradedOnceALaterRevisionLoads() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("v2".utf8)), group: group)
            let sandbox = try Sandbox()
            let seeded = try #require(
                try Self.seed(
                    sandbox, store: sandbox.store, legacy: legacy.address, modern: modern.address, serving: "legacy"))
            try sandbox.ok("flip", "orders", "--to", "orders-v2")
            let server = try Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await server.waitFor("v2", path: "/orders/1", group: group) == "v2")

            // A revision this binary cannot decode (as from a newer Ficus): reported, the last good one serves on.
            var configuration = GRDB.Configuration()
            configuration.busyMode = .timeout(5)
            let writer = try DatabaseQueue(path: sandbox.store, configuration: configuration)
            try await writer.write { db in
                try db.execute(
                    sql: """
                        INSERT INTO config_objects (id, digest, kind, name, body)
                        VALUES (900001, 'future', 'route', 'x', '{"routes": 5}');
                        INSERT INTO revisions (number, author, reason, created_at, summary, routes_changed, checkpoint,
                            layout)
                        VALUES (
                            (SELECT MAX(number) + 1 FROM revisions), 'future', 'newer model',
                            '2030-01-01 00:00:00.000', 'x', '[]', (SELECT MAX(number) + 1 FROM revisions),
                            '{"objects": [900001]}'
                        )
                        """
                )
            }
            try writer.close()
            let degraded = await server.health(containing: "degraded", group: group)
            #expect(degraded.contains("\"status\":\"degraded\""), "\(degraded)")
            #expect(degraded.contains("cannot be decoded"), "\(degraded)")
            #expect(await server.waitFor("v2", path: "/orders/2", group: group) == "v2")

            // A later revision that loads ends the episode (a rollback, as an operator would write after it).
            let store = try SQLiteConfigurationStore(path: sandbox.store)
            let rolledBack = try await store.rollback(
                to: seeded, ChangeAuthor(author: "tester", reason: "undo the unreadable revision", action: "rollback"))
            #expect(await server.waitFor("legacy", path: "/orders/1", group: group) == "legacy")
            let recovered = await server.health(containing: "\"revision\":\(rolledBack.number)", group: group)
            #expect(recovered.contains("\"status\":\"ok\""), "\(recovered)")
            #expect(!recovered.contains("last_error"), "\(recovered)")
            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}

/// Holds the write lock of an SQLite file on a thread of its own, as another process would, until `release()`.
final class TelemetryLock: @unchecked Sendable {
    private let locked = DispatchSemaphore(value: 0)
    private let done = DispatchSemaphore(value: 0)
    private let finished = DispatchSemaphore(value: 0)

    init(path: String) throws {
        let queue = try DatabaseQueue(path: path)
        Thread {
            try? queue.inDatabase { db in
                try db.execute(sql: "BEGIN IMMEDIATE")
                self.locked.signal()
                self.done.wait()
                try db.execute(sql: "ROLLBACK")
            }
            try? queue.close()
            self.finished.signal()
        }.start()
        self.locked.wait()
    }

    func release() {
        self.done.signal()
        self.finished.wait()
    }
}
