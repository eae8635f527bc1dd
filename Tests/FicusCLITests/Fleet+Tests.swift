import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

/// The PostgreSQL server of the fleet tests: `FICUS_TEST_POSTGRES` (`.ci/run` starts one with
/// `scripts/postgres-test-cluster.sh`).
///
/// Without it these tests are skipped, visibly; under `CI=true` they run and fail, so CI cannot pass untested.
enum FleetPostgres {
    static let url = ProcessInfo.processInfo.environment["FICUS_TEST_POSTGRES"]
    static let enabled = url != nil || ProcessInfo.processInfo.environment["CI"] == "true"
    static let script = FicusProcess.repository.appendingPathComponent("scripts/postgres-test-cluster.sh").path

    /// `url` with its database replaced by `name`.
    static func url(database name: String, on server: String) -> String {
        let (base, query) = server.split(separator: "?", maxSplits: 1).map(String.init).pairOrEmpty
        let host = base[..<(base.lastIndex(of: "/") ?? base.endIndex)]
        return "\(host)/\(name)" + (query.isEmpty ? "" : "?\(query)")
    }

    /// Creates a database of its own on `server` and returns its URL; `drop` removes it.
    static func createDatabase(on server: String? = Self.url) throws -> String {
        guard let server else {
            throw FleetTestFailure("FICUS_TEST_POSTGRES is not set (CI=true requires it)")
        }
        let name = "ficus_cli_\(UUID().uuidString.replacingOccurrences(of: "-", with: "").lowercased().prefix(16))"
        try self.psql(server, "CREATE DATABASE \(name)")
        return Self.url(database: name, on: server)
    }

    static func drop(_ database: String) {
        let name = database.split(separator: "?")[0].split(separator: "/").last.map(String.init) ?? ""
        try? self.psql(Self.url(database: "postgres", on: database), "DROP DATABASE IF EXISTS \(name) WITH (FORCE)")
    }

    /// Runs one statement with `psql`.
    static func psql(_ server: String, _ sql: String) throws {
        let result = try self.run("/usr/bin/psql", [server, "-v", "ON_ERROR_STOP=1", "-qc", sql])
        guard result.status == 0 else {
            throw FleetTestFailure("psql \(sql): \(result)")
        }
    }

    /// The rows of a one-column query, as text.
    static func query(_ database: String, _ sql: String) throws -> [String] {
        let result = try self.run("/usr/bin/psql", [database, "-v", "ON_ERROR_STOP=1", "-Atc", sql])
        guard result.status == 0 else {
            throw FleetTestFailure("psql \(sql): \(result)")
        }
        return result.stdout.split(separator: "\n").map(String.init)
    }

    /// Runs `scripts/postgres-test-cluster.sh COMMAND DIR`.
    @discardableResult
    static func cluster(_ command: String, _ directory: String, environment: [String: String] = [:]) throws -> String {
        let result = try self.run("/bin/bash", [self.script, command, directory], environment: environment)
        guard result.status == 0 else {
            throw FleetTestFailure("postgres-test-cluster.sh \(command): \(result)")
        }
        return result.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
    }

    /// Runs a tool (psql, the cluster script) as `FicusProcess` runs ficus, with the sbin directories on the PATH
    /// (`runuser`).
    private static func run(
        _ executable: String,
        _ arguments: [String],
        environment: [String: String] = [:]
    ) throws -> FicusResult {
        let directory = FileManager.default.temporaryDirectory
            .appendingPathComponent("ficus-tool-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        return try FicusProcess.run(
            arguments,
            in: directory,
            environment: environment.merging(["PATH": "/usr/sbin:/usr/bin:/sbin:/bin"]) { _, path in path },
            executable: URL(fileURLWithPath: executable)
        )
    }
}

extension Array where Element == String {
    /// The first two elements, the second empty when missing.
    fileprivate var pairOrEmpty: (String, String) {
        (self.first ?? "", self.count > 1 ? self[1] : "")
    }
}

extension CLITests {
    /// Any command with a store URL that is wrong or names a server that does not answer fails at once, says why
    /// and never shows the password; these need no PostgreSQL.
    @Suite struct FleetStoreURLs {
        @Test func aMalformedStoreURLIsAUsageErrorNamingThePart() throws {
            let sandbox = try Sandbox()
            let result = try sandbox.ficus(["history"], store: "postgres://ficus:s3cret@db.internal:99999/ficus")
            #expect(result.status == 2, "\(result)")
            #expect(result.stderr.contains("the port '99999' is not a number from 1 to 65535"), "\(result)")
            #expect(!result.stderr.contains("s3cret"), "\(result)")
            let scheme = try sandbox.ficus(["history"], store: "mysql://root@db/ficus")
            #expect(scheme.status == 2)
            #expect(scheme.stderr.contains("unknown store scheme 'mysql'"), "\(scheme)")
        }

        @Test func aServerThatDoesNotAnswerFailsFastWithTheStoreExitCode() throws {
            let sandbox = try Sandbox()
            let port = try freePort()
            let store = "postgres://ficus:s3cret@127.0.0.1:\(port)/ficus?sslmode=disable"
            let started = ContinuousClock.now
            let result = try sandbox.ficus(["flag", "on", "beta"], store: store)
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(result.status == 1, "\(result)")
            #expect(result.stderr.contains("cannot be reached"), "\(result)")
            #expect(result.stderr.contains("postgres://ficus:***@127.0.0.1:\(port)/ficus"), "\(result)")
            #expect(!result.stderr.contains("s3cret"), "\(result)")
        }
    }

    /// Several processes on one PostgreSQL store (docs/FLEET.md): writers, a proxy following them, an outage.
    @Suite(.serialized, .enabled(if: FleetPostgres.enabled, "needs FICUS_TEST_POSTGRES (a PostgreSQL server)"))
    struct Fleet {
        @Test func twoWriterProcessesFiftyCommitsEachLoseNothingAndLeaveNoGap() throws {
            let database = try FleetPostgres.createDatabase()
            defer { FleetPostgres.drop(database) }
            let sandbox = try Sandbox()
            #expect(try sandbox.ficus(["init"], store: database).status == 0)
            let perWriter = 50
            let failures = Failures()
            DispatchQueue.concurrentPerform(iterations: 2) { writer in
                for index in 0..<perWriter {
                    let arguments = ["flag", "on", "\(writer == 0 ? "a" : "b")-\(index)"]
                    do {
                        let result = try sandbox.ficus(arguments, store: database)
                        if result.status != 0 {
                            failures.append("\(arguments): \(result)")
                        }
                    } catch {
                        failures.append("\(arguments): \(error)")
                    }
                }
            }
            #expect(failures.all.isEmpty, "\(failures.all)")
            let flags = try decodeJSON(try sandbox.ficus(["flag", "list", "--json"], store: database).stdout)
            let names = Set((flags as? [[String: Any]] ?? []).compactMap { $0["name"] as? String })
            #expect(names.count == 2 * perWriter)
            let history = try decodeJSON(try sandbox.ficus(["history", "--json"], store: database).stdout)
            let numbers = (history as? [[String: Any]] ?? []).compactMap { $0["revision"] as? Int }
            #expect(numbers == Array((1...(2 * perWriter)).reversed()))
        }

        @Test func aServeOnPostgresServesAFlipFromAnotherProcessAtOnce() async throws {
            let database = try FleetPostgres.createDatabase()
            defer { FleetPostgres.drop(database) }
            let proxy = try await FleetProxy.start(database: database)
            let (group, sandbox, server) = (proxy.group, proxy.sandbox, proxy.server)
            defer { server.stop() }

            let flip = try sandbox.ficus(["flip", "orders", "--to", "orders-v2"], store: database)
            let committed = ContinuousClock.now
            let revision = try #require(flip.revision, "\(flip)")
            #expect(await AgainstServe.waitForRevision(revision, server: server, group: group))
            // Notified, not found by the one-second safety net (milliseconds on an idle machine).
            #expect(ContinuousClock.now - committed < .milliseconds(900))
            #expect(await AgainstServe.waitFor("modern", path: "/orders/1", server: server, group: group) == "modern")

            try await proxy.stop()
        }

        /// Telemetry on PostgreSQL: a proxy compares shadow copies and writes metric windows there, and a report from
        /// another process (another host, in a fleet) reads them.
        @Test func aServeOnPostgresStoresShadowComparisonsThatAReportFromAnotherProcessReads() async throws {
            let database = try FleetPostgres.createDatabase()
            defer { FleetPostgres.drop(database) }
            let proxy = try await FleetProxy.start(database: database, extraArguments: ["--window-interval", "1"])
            let (group, sandbox, server) = (proxy.group, proxy.sandbox, proxy.server)
            defer { server.stop() }
            let shadow = try sandbox.ficus(
                ["shadow", "orders", "--to", "orders-v2", "--percent", "100", "--noise-percent", "0"], store: database)
            let revision = try #require(shadow.revision, "\(shadow)")
            #expect(await AgainstServe.waitForRevision(revision, server: server, group: group))
            for index in 0..<20 {
                let response = try await HTTPTestClient.get(port: server.port, path: "/orders/\(index)", group: group)
                #expect(response.bodyString == "legacy")
            }

            var report: [String: Any] = [:]
            var endpoint: [String: Any] = [:]
            let deadline = ContinuousClock.now + .seconds(15)
            while ContinuousClock.now < deadline {
                let result = try sandbox.ficus(["report", "--format", "json", "--route", "orders"], store: database)
                #expect(result.status == 0 || result.status == 4 || result.status == 5, "\(result)")
                report = (try? decodeJSON(result.stdout)) as? [String: Any] ?? [:]
                endpoint = (report["endpoints"] as? [[String: Any]])?.first ?? [:]
                let observed = ((report["routes"] as? [[String: Any]])?.first?["observed"] as? [[String: Any]]) ?? []
                let requests = observed.reduce(0) { $0 + ($1["requests"] as? Int ?? 0) }
                if endpoint["compared"] as? Int == 20, requests >= 20 { break }
                try await Task.sleep(for: .milliseconds(200))
            }
            #expect(endpoint["endpoint"] as? String == "GET /orders/{id}", "\(report)")
            #expect(endpoint["compared"] as? Int == 20, "\(endpoint)")
            #expect(endpoint["differing"] as? Int == 20, "legacy and modern answer differently: \(endpoint)")
            let observed = ((report["routes"] as? [[String: Any]])?.first?["observed"] as? [[String: Any]]) ?? []
            #expect(observed.first?["upstream"] as? String == "legacy", "\(observed)")
            #expect(observed.first?["requests"] as? Int ?? 0 >= 20, "metric windows from the proxy: \(observed)")
            let text = try sandbox.ficus(["report", "--route", "orders"], store: database)
            #expect(text.stdout.contains("GET /orders/{id}"), "\(text)")
            #expect(!text.stderr.contains("not supported"), "\(text)")

            try await proxy.stop()
        }

        @Test func aPostgresOutageKeepsServingAndCatchesUpAfterwards() async throws {
            // A cluster of its own: stopping the shared one would fail every other PostgreSQL test.
            let directory = FileManager.default.temporaryDirectory
                .appendingPathComponent("ficus-pg-\(UUID().uuidString)")
            let server0 = try FleetPostgres.cluster("start", directory.path)
            defer { _ = try? FleetPostgres.cluster("stop", directory.path) }
            let database = try FleetPostgres.createDatabase(on: server0)
            let proxy = try await FleetProxy.start(database: database)
            let (group, sandbox, server) = (proxy.group, proxy.sandbox, proxy.server)
            defer { server.stop() }

            try FleetPostgres.cluster("pause", directory.path)
            // The proxy says degraded, store_up 0, and keeps answering from its last table.
            let health = await waitForHealth("degraded", adminPort: server.adminPort, group: group, seconds: 10)
            #expect(health.contains("\"status\":\"degraded\""), "\(health)")
            #expect(health.contains("cannot be reached"), "\(health)")
            let metrics = try await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group)
            #expect(metrics.bodyString.contains("ficus_store_up 0"), "\(metrics.bodyString.prefix(2000))")
            for index in 0..<20 {
                let response = try await HTTPTestClient.get(port: server.port, path: "/orders/\(index)", group: group)
                #expect(response.status == 200)
                #expect(response.bodyString == "legacy")
            }
            // A command fails fast, with the store's exit code, and changes nothing.
            let started = ContinuousClock.now
            let refused = try sandbox.ficus(["flip", "orders", "--to", "orders-v2"], store: database)
            #expect(ContinuousClock.now - started < .seconds(5))
            #expect(refused.status == 1, "\(refused)")
            #expect(refused.stderr.contains("cannot be reached"), "\(refused)")

            try FleetPostgres.cluster("resume", directory.path)
            let flip = try sandbox.ficus(["flip", "orders", "--to", "orders-v2"], store: database)
            let revision = try #require(flip.revision, "\(flip)")
            #expect(revision == 4, "the refused flip wrote nothing")
            #expect(await AgainstServe.waitForRevision(revision, server: server, group: group))
            #expect(await AgainstServe.waitFor("modern", path: "/orders/1", server: server, group: group) == "modern")
            let recovered = try await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group)
            #expect(recovered.bodyString.contains("\"status\":\"ok\""), "\(recovered.bodyString)")
            let after = try await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group)
            #expect(after.bodyString.contains("ficus_store_up 1"))

            try await proxy.stop()
        }
    }
}

/// A `ficus serve` on a PostgreSQL store whose route `orders` goes to `legacy` (answering "legacy"), with upstream
/// `orders-v2` (answering "modern") ready to flip to.
struct FleetProxy {
    let group: MultiThreadedEventLoopGroup
    let legacy: TestUpstream
    let modern: TestUpstream
    let sandbox: Sandbox
    let server: CLITests.AgainstServe.Server

    /// Seeds `database` (`init`, both upstreams, the route) from CLI processes and starts the proxy on it (with
    /// `extraArguments` for `ficus serve`), once it answers from legacy.
    static func start(database: String, extraArguments: [String] = []) async throws -> FleetProxy {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let legacy = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
        let modern = try await TestUpstream.start(
            .fixed(status: 200, headers: [], body: Array("modern".utf8)), group: group)
        let sandbox = try Sandbox()
        for arguments in [
            ["init"], ["upstream", "add", "legacy", legacy.address], ["upstream", "add", "orders-v2", modern.address],
            ["route", "add", "orders", "--prefix", "/orders", "--to", "legacy"],
        ] {
            let result = try sandbox.ficus(arguments, store: database)
            #expect(result.status == 0, "\(arguments): \(result)")
        }
        let server = try CLITests.AgainstServe.Server(
            store: database, directory: sandbox.directory, extraArguments: extraArguments)
        let proxy = FleetProxy(group: group, legacy: legacy, modern: modern, sandbox: sandbox, server: server)
        let first = await CLITests.AgainstServe.waitFor("legacy", path: "/orders/1", server: server, group: group)
        #expect(first == "legacy")
        return proxy
    }

    func stop() async throws {
        self.server.stop()
        try await self.legacy.shutdown()
        try await self.modern.shutdown()
        try await self.group.shutdownGracefully()
    }
}

/// The `/healthz` body once it contains `text`, or the last one seen after `seconds`.
func waitForHealth(_ text: String, adminPort: Int, group: any EventLoopGroup, seconds: Int = 5) async -> String {
    var health = ""
    let deadline = ContinuousClock.now + .seconds(seconds)
    while ContinuousClock.now < deadline {
        health = (try? await HTTPTestClient.get(port: adminPort, path: "/healthz", group: group))?.bodyString ?? ""
        if health.contains(text) { break }
        try? await Task.sleep(for: .milliseconds(50))
    }
    return health
}

/// A fleet test's set-up failed (no server named, psql or the cluster script failed).
struct FleetTestFailure: Error, CustomStringConvertible {
    var description: String

    init(_ description: String) {
        self.description = description
    }
}
