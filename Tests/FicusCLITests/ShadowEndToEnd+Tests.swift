import FicusCore
import FicusDiff
import FicusStore
import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// Shadowing through a running `ficus serve`: planted regressions land in the store, noise does not.
    @Suite struct ShadowEndToEnd {
        static func answer(_ request: TestUpstream.RecordedRequest, modern: Bool) -> TestUpstream.Response {
            let id = UUID().uuidString
            let body = modern
                ? "{\"id\":7,\"amount\":\"100\",\"tags\":[\"b\",\"a\"],\"requestId\":\"\(id)\"}"
                : "{\"id\":7,\"amount\":100,\"tags\":[\"a\",\"b\"],\"note\":\"kept\",\"requestId\":\"\(id)\"}"
            return TestUpstream.Response(status: 200, headers: [("Content-Type", "application/json")], body: body)
        }

        @Test func plantedRegressionsAreStoredAndNoiseIsFiltered() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.custom { Self.answer($0, modern: false) }, group: group)
            let modern = try await TestUpstream.start(.custom { Self.answer($0, modern: true) }, group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            // The policy goes in through the store API, as any process sharing the store could write it.
            let store = try SQLiteConfigurationStore(path: sandbox.store)
            let shadowed = try await store.commit(
                ChangeAuthor(author: "test", reason: "shadow orders", action: "shadow"),
                expectRevision: nil
            ) { configuration in
                configuration.routes[0].shadow = ShadowPolicy(to: "orders-v2", percent: 100, noisePercent: 100)
            }
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            let health = "\"revision\":\(shadowed.number)"
            let deadline = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < deadline {
                let body = (try? await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group))?
                    .bodyString ?? ""
                if body.contains(health) { break }
                try await Task.sleep(for: .milliseconds(50))
            }

            let client = try await RawClient.connect(port: server.port, group: group)
            for i in 0..<30 {
                let response = try await client.request(path: "/orders/\(i)")
                // The client always gets the serving side's bytes.
                #expect(response.status == 200)
                #expect(response.bodyString.contains("\"amount\":100"))
                #expect(response.bodyString.contains("\"note\":\"kept\""))
            }
            client.close()

            var summaries: [ShadowEndpointSummary] = []
            let stored = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < stored {
                summaries = try await store.shadowEndpoints(route: "orders", from: nil, to: nil)
                if summaries.first?.compared == 30 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            let endpoint = try #require(summaries.first)
            #expect(endpoint.endpoint == "GET /orders/{id}")
            #expect(endpoint.compared == 30)
            let regressions = Set(endpoint.regressions(thresholds: NoiseThresholds()).map { "\($0.kind.rawValue) \($0.path)" })
            #expect(regressions.contains("type_changed $.amount"), "\(endpoint.fields)")
            #expect(regressions.contains("missing $.note"))
            #expect(regressions.contains("array_order $.tags"))
            #expect(!regressions.contains { $0.hasSuffix("$.requestId") }, "request ids are noise: \(regressions)")
            let samples = try await store.shadowSamples(
                route: "orders", endpoint: "GET /orders/{id}", path: "$.amount", kind: .typeChanged)
            #expect(!samples.isEmpty)
            #expect(samples.first?.servingBody.isEmpty == false)
            #expect(modern.received.allSatisfy { $0.header("x-ficus-shadow") == "1" })

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        /// Coverage through the real binary: copies whose answers do not fit `--shadow-memory` are dropped, and the
        /// report says per endpoint how many requests were eligible, compared and dropped, and why; eligible is always
        /// compared + shadow errors + dropped.
        @Test func theReportSaysWhatShareOfTrafficEachVerdictRestsOn() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let answer: @Sendable (TestUpstream.RecordedRequest) -> TestUpstream.Response = { request in
                let size = request.uri.hasPrefix("/orders/big/") ? 20_000 : 20
                return TestUpstream.Response(
                    status: 200, headers: [("Content-Type", "text/plain")], body: String(repeating: "x", count: size))
            }
            let legacy = try await TestUpstream.start(.custom(answer), group: group)
            let modern = try await TestUpstream.start(.custom(answer), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("shadow", "set", "orders", "--to", "orders-v2", "--percent", "100")
            let server = try AgainstServe.Server(
                store: sandbox.store, directory: sandbox.directory,
                extraArguments: ["--shadow-memory", "8192", "--window-interval", "1"])
            defer { server.stop() }
            let twenty = String(repeating: "x", count: 20)
            #expect(await AgainstServe.waitFor(twenty, path: "/orders/small/0", server: server, group: group) == twenty)
            /// The report's endpoints once `done` holds for them, or the last read after 10 s.
            func endpointsOnce(_ done: ([String: [String: Any]]) -> Bool) async throws -> [String: [String: Any]] {
                var endpoints: [String: [String: Any]] = [:]
                let deadline = ContinuousClock.now + .seconds(10)
                while ContinuousClock.now < deadline {
                    let report = try sandbox.ficus(["report", "--format", "json", "--route", "orders"])
                    let items = ((try? decodeJSON(report.stdout)) as? [String: Any])?["endpoints"] as? [[String: Any]] ?? []
                    endpoints = Dictionary(
                        items.map { ($0["endpoint"] as? String ?? "", $0) }, uniquingKeysWith: { a, _ in a })
                    if done(endpoints) { break }
                    try await Task.sleep(for: .milliseconds(200))
                }
                return endpoints
            }
            func eligible(_ endpoints: [String: [String: Any]], _ name: String) -> Int {
                (endpoints[name]?["coverage"] as? [String: Any])?["eligible"] as? Int ?? 0
            }
            // The small answers first, all stored before any big one is sent: a big answer's capture holds the whole
            // --shadow-memory budget while it grows, and a small copy answered meanwhile would be dropped for memory
            // (rightly, but then the small endpoint would not show what fits).
            let client = try await RawClient.connect(port: server.port, group: group)
            for index in 0..<12 {
                #expect(try await client.request(path: "/orders/small/\(index)").status == 200)
            }
            _ = try await endpointsOnce { eligible($0, "GET /orders/small/{id}") >= 12 }
            for index in 0..<12 {
                #expect(try await client.request(path: "/orders/big/\(index)").status == 200)
            }
            client.close()
            let endpoints = try await endpointsOnce {
                eligible($0, "GET /orders/small/{id}") >= 12 && eligible($0, "GET /orders/big/{id}") >= 12
            }
            for (name, endpoint) in endpoints {
                let coverage = try #require(endpoint["coverage"] as? [String: Any])
                let eligible = coverage["eligible"] as? Int ?? -1
                let sum = (coverage["compared"] as? Int ?? 0) + (coverage["errors"] as? Int ?? 0)
                    + (coverage["dropped"] as? Int ?? 0)
                #expect(eligible == sum, "\(name): \(coverage)")
            }
            let small = try #require(endpoints["GET /orders/small/{id}"]?["coverage"] as? [String: Any])
            #expect(small["compared"] as? Int == small["eligible"] as? Int, "\(small)")
            let big = try #require(endpoints["GET /orders/big/{id}"]?["coverage"] as? [String: Any])
            #expect(big["eligible"] as? Int ?? 0 >= 12, "\(big)")
            #expect(big["compared"] as? Int == 0, "an answer of 20,000 bytes never fits 8,192: \(big)")
            let drops = big["drops"] as? [[String: Any]] ?? []
            #expect(drops.first?["reason"] as? String == "memory", "\(drops)")
            let text = try sandbox.ficus(["report", "--route", "orders"]).stdout
            #expect(text.contains("dropped (memory "), "\(text)")
            #expect(text.contains("Coverage: "), "\(text)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }

        /// `ficus shadow ignore` on a running proxy: comparisons after the proxy picks up the revision leave the path
        /// out (the comparison settings are cached per routing table, so a new table must replace them).
        @Test func anIgnoredPathAppliesToARunningProxy() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let json = [("Content-Type", "application/json")]
            let legacy = try await TestUpstream.start(
                .fixed(status: 200, headers: json, body: Array(#"{"id":7,"generation":1}"#.utf8)), group: group)
            let modern = try await TestUpstream.start(
                .fixed(status: 200, headers: json, body: Array(#"{"id":7,"generation":2}"#.utf8)), group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            let shadowed = try #require(
                try sandbox.ok("shadow", "orders", "--to", "orders-v2", "--percent", "100", "--noise-percent", "0")
                    .revision)
            let server = try AgainstServe.Server(store: sandbox.store, directory: sandbox.directory)
            defer { server.stop() }
            let store = try SQLiteConfigurationStore(path: sandbox.store)

            /// Sends `count` requests once the proxy serves `revision`, then waits until `total` are compared.
            func shadow(_ count: Int, serving revision: Int, total: Int) async throws -> ShadowEndpointSummary? {
                let deadline = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < deadline {
                    let body = (try? await HTTPTestClient.get(port: server.adminPort, path: "/healthz", group: group))?
                        .bodyString ?? ""
                    if body.contains("\"revision\":\(revision)") { break }
                    try await Task.sleep(for: .milliseconds(50))
                }
                let client = try await RawClient.connect(port: server.port, group: group)
                for i in 0..<count {
                    #expect(try await client.request(path: "/orders/\(i)").bodyString == #"{"id":7,"generation":1}"#)
                }
                client.close()
                var summary: ShadowEndpointSummary?
                let stored = ContinuousClock.now + .seconds(5)
                while ContinuousClock.now < stored {
                    summary = try await store.shadowEndpoints(route: "orders", from: nil, to: nil).first
                    if summary?.compared == total { break }
                    try await Task.sleep(for: .milliseconds(100))
                }
                return summary
            }

            let before = try #require(try await shadow(10, serving: shadowed, total: 10))
            #expect(before.compared == 10)
            #expect(before.fields.first { $0.path == "$.generation" }?.raw == 10, "\(before.fields)")

            let ignored = try #require(try sandbox.ok("shadow", "ignore", "orders", "$.generation").revision)
            let after = try #require(try await shadow(10, serving: ignored, total: 20))
            #expect(after.compared == 20)
            #expect(after.differing == 10, "only the comparisons before the ignore differ")
            #expect(after.fields.first { $0.path == "$.generation" }?.raw == 10, "\(after.fields)")

            server.stop()
            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
