import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// A store that becomes unreadable under a running proxy never takes it down.
    @Suite struct ServeStoreFailure {
        @Test func corruptStoreKeepsTheLastGoodRevisionServing() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("legacy".utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            let revision = try #require(
                try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy").revision)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            #expect(await AgainstServe.waitFor("legacy", path: "/orders/1", server: server, group: group) == "legacy")

            // Garbage over the SQLite header (and the WAL, if any): the file is no longer a database.
            for path in [sandbox.store, sandbox.store + "-wal"] where FileManager.default.fileExists(atPath: path) {
                let handle = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
                try handle.write(contentsOf: Data(repeating: 0x5A, count: 4096))
                try handle.close()
            }

            // The proxy notices, says so on /healthz and /metrics, and keeps serving the last good revision.
            let health = await waitForHealth("degraded", adminPort: server.adminPort, group: group)
            #expect(health.contains("\"status\":\"degraded\""), "\(health)")
            #expect(health.contains("\"revision\":\(revision)"))
            #expect(health.contains("last_error"))
            let metrics = try await HTTPTestClient.get(port: server.adminPort, path: "/metrics", group: group)
            let errors = metrics.bodyString.split(separator: "\n").first { $0.hasPrefix("ficus_config_errors_total ") }
            #expect(errors.flatMap { Double($0.split(separator: " ")[1]) } ?? 0 >= 1, "\(errors ?? "no counter")")
            #expect(metrics.bodyString.contains("ficus_config_revision \(revision)"))
            let response = try await HTTPTestClient.get(port: server.port, path: "/orders/2", group: group)
            #expect(response.status == 200)
            #expect(response.bodyString == "legacy")

            server.stop()
            try await legacy.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
