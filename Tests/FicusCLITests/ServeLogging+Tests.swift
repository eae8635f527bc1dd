import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

/// One client loop for the access-log tests; it lives as long as the test process.
private let loggingGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)

extension CLITests {
    /// The access log of a real `ficus serve --upstream …` process, read from its standard error.
    @Suite struct ServeLogging {
        /// A `ficus serve` process serving from memory on free loopback ports, its standard error kept in a file.
        final class Server: @unchecked Sendable {
            let process = Process()
            let port: Int
            let stderrURL: URL
            private let stderr: FileHandle

            init(_ arguments: [String], directory: URL) throws {
                self.port = try freePort()
                let adminPort = try freePort()
                self.stderrURL = directory.appendingPathComponent("serve-\(UUID().uuidString).err")
                _ = FileManager.default.createFile(atPath: self.stderrURL.path, contents: nil)
                self.stderr = try FileHandle(forWritingTo: self.stderrURL)
                self.process.executableURL = FicusProcess.binary
                self.process.arguments =
                    [
                        "serve", "--listen", "127.0.0.1:\(self.port)", "--admin", "127.0.0.1:\(adminPort)",
                        "--threads", "1", "--drain-timeout", "1",
                    ] + arguments
                self.process.currentDirectoryURL = directory
                self.process.environment = ["PATH": "/usr/bin:/bin", "HOME": directory.path]
                self.process.standardOutput = FileHandle.nullDevice
                self.process.standardError = self.stderr
                self.process.standardInput = FileHandle.nullDevice
                try self.process.run()
            }

            /// Stops the server (SIGTERM) and returns everything it wrote to standard error.
            @discardableResult
            func stop() -> String {
                if self.process.isRunning { self.process.terminate() }
                self.process.waitUntilExit()
                try? self.stderr.close()
                return (try? String(contentsOf: self.stderrURL, encoding: .utf8)) ?? ""
            }

            /// Waits until what the server wrote to standard error so far contains `text`, for up to `seconds`.
            func waitForLog(_ text: String, seconds: Int = 10) async -> Bool {
                let deadline = ContinuousClock.now + .seconds(seconds)
                while ContinuousClock.now < deadline {
                    if let log = try? String(contentsOf: self.stderrURL, encoding: .utf8), log.contains(text) {
                        return true
                    }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return false
            }

            /// GETs `/ready` until it is answered 200, for up to 10 s.
            func waitUntilServing(group: any EventLoopGroup) async -> Bool {
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline, self.process.isRunning {
                    let response = try? await HTTPTestClient.get(
                        port: self.port, path: "/ready", group: group, timeout: .seconds(2))
                    if response?.status == 200 { return true }
                    try? await Task.sleep(for: .milliseconds(20))
                }
                return false
            }
        }

        /// Starts an upstream answering `hello from b` and a server in front of it with `arguments`.
        static func serve(
            _ arguments: [String],
            group: any EventLoopGroup
        ) async throws -> (Server, TestUpstream, Sandbox) {
            let upstream = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("hello from b".utf8)), group: group)
            let sandbox = try Sandbox()
            let server = try Server(
                ["--upstream", "b=\(upstream.address)", "--default", "b"] + arguments,
                directory: sandbox.directory
            )
            return (server, upstream, sandbox)
        }

        @Test func jsonAccessLogHasOneObjectPerRequest() async throws {
            let group = loggingGroup
            let (server, upstream, sandbox) = try await Self.serve(
                ["--log-format", "json", "--access-log", "on"], group: group)
            defer { server.stop() }
            _ = sandbox
            try #require(await server.waitUntilServing(group: group), "ficus serve did not answer: \(server.stop())")
            let get = try await HTTPTestClient.get(port: server.port, path: "/orders/7?x=1", group: group)
            #expect(get.status == 200)
            let post = try await HTTPTestClient.request(
                method: "POST", port: server.port, path: "/submit", body: Array("abc".utf8), group: group)
            #expect(post.status == 200)
            let log = server.stop()
            try await upstream.shutdown()

            let lines = log.split(separator: "\n").map(String.init)
            var objects: [[String: Any]] = []
            for line in lines {
                let object = try? JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any]
                #expect(object != nil, "a stderr line is not a JSON object: \(line)")
                if let object { objects.append(object) }
            }
            let access = objects.filter { "\($0["message"] ?? "")" == "request" }
            let forGet = access.filter { "\($0["path"] ?? "")" == "/orders/7?x=1" }
            let forPost = access.filter { "\($0["path"] ?? "")" == "/submit" }
            #expect(forGet.count == 1, "\(log)")
            #expect(forPost.count == 1, "\(log)")
            for (object, method, response) in [(forGet.first, "GET", get), (forPost.first, "POST", post)] {
                let object = try #require(object)
                #expect("\(object["method"] ?? "")" == method)
                // Numbers are numbers, times are RFC 3339 in UTC, and every line has its request's id.
                #expect(object["status"] as? Int == 200, "status: \(object)")
                #expect(object["bytes"] is Int && object["duration_ms"] is Double, "\(object)")
                #expect((object["time"] as? String)?.hasSuffix("Z") == true, "time: \(object)")
                #expect(RequestIDCheck.plausible(object["request_id"] as? String), "request_id: \(object)")
                #expect("\(object["upstream"] ?? "")" == "b")
                let duration = Double("\(object["duration_ms"] ?? "")")
                #expect(duration != nil && duration! >= 0 && duration! < 5000, "duration_ms: \(object)")
                #expect(Int("\(object["bytes"] ?? "")") == response.raw.count, "bytes: \(object)")
            }
            // Every access line is a request that was made: the readiness probes and the two above.
            #expect(access.allSatisfy { ["/ready", "/orders/7?x=1", "/submit"].contains("\($0["path"] ?? "")") })
        }

        /// `--log-redact-query` leaves query strings out of access log lines.
        @Test func queryStringsCanBeLeftOutOfTheAccessLog() async throws {
            let group = loggingGroup
            let (server, upstream, sandbox) = try await Self.serve(
                ["--log-format", "json", "--access-log", "on", "--log-redact-query"], group: group)
            defer { server.stop() }
            _ = sandbox
            try #require(await server.waitUntilServing(group: group), "ficus serve did not answer: \(server.stop())")
            let response = try await HTTPTestClient.get(port: server.port, path: "/search?card=4111", group: group)
            #expect(response.status == 200)
            let log = server.stop()
            try await upstream.shutdown()
            #expect(!log.contains("4111"), "\(log)")
            #expect(log.contains("\"path\":\"/search?REDACTED\""), "\(log)")
        }

        @Test func textAccessLogIsOneLinePerRequest() async throws {
            let group = loggingGroup
            let (server, upstream, sandbox) = try await Self.serve(
                ["--log-format", "text", "--access-log", "on"], group: group)
            defer { server.stop() }
            _ = sandbox
            try #require(await server.waitUntilServing(group: group), "ficus serve did not answer: \(server.stop())")
            let response = try await HTTPTestClient.get(port: server.port, path: "/text/check", group: group)
            #expect(response.status == 200)
            let log = server.stop()
            try await upstream.shutdown()

            let lines = log.split(separator: "\n").filter { $0.contains("path=/text/check") }
            #expect(lines.count == 1, "\(log)")
            let line = String(lines.first ?? "")
            #expect(!line.hasPrefix("{"), "\(line)")
            for field in ["method=GET", "status=200", "upstream=b", "bytes=\(response.raw.count)", "duration_ms="] {
                #expect(line.contains(field), "'\(field)' missing from: \(line)")
            }
            #expect(line.contains("request"), "\(line)")
        }

        @Test func accessLogOffWritesNoAccessLine() async throws {
            let group = loggingGroup
            let (server, upstream, sandbox) = try await Self.serve(
                ["--log-format", "json", "--access-log", "off"], group: group)
            defer { server.stop() }
            _ = sandbox
            try #require(await server.waitUntilServing(group: group), "ficus serve did not answer: \(server.stop())")
            let response = try await HTTPTestClient.get(port: server.port, path: "/silent", group: group)
            #expect(response.status == 200)
            let log = server.stop()
            try await upstream.shutdown()

            #expect(!log.contains("/silent"), "\(log)")
            #expect(!log.contains("/ready"), "\(log)")
            #expect(!log.contains("\"message\":\"request\""), "\(log)")
            // The server did log (its start-up line), so silence is the access log's, not a lost stderr.
            #expect(log.contains("ficus serving"), "\(log)")
        }

        @Test func nonsenseListenAddressIsAUsageError() throws {
            let sandbox = try Sandbox()
            let result = try sandbox.bare(["serve", "--listen", "nonsense"])
            #expect(result.status == 2, "\(result)")
            #expect(result.stderr.contains("--listen"), "\(result)")
            #expect(result.stderr.contains("nonsense"), "\(result)")
        }
    }
}

/// What the CLI tests accept as a request id (they cannot see FicusProxy's internals).
enum RequestIDCheck {
    static func plausible(_ id: String?) -> Bool {
        guard let id, !id.isEmpty, id.count <= 128 else { return false }
        return id.allSatisfy { $0.isLetter || $0.isNumber || "-._:".contains($0) }
    }
}
