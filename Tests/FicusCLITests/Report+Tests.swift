import FicusCore
import FicusDiff
import FicusStore
import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import Testing

extension CLITests {
    /// `ficus report` in its three formats and its CI gate's exit codes.
    @Suite struct Report {
        /// A compared request `secondsAgo` before now (records older than the retention would be dropped).
        static func record(
            secondsAgo: Double,
            endpoint: String = "GET /orders/{id}",
            differences: [Difference] = [],
            noiseSample: Bool = false
        ) -> ShadowRecord {
            let time = Date().addingTimeInterval(-secondsAgo)
            return ShadowRecord(
                timestamp: Int64(time.timeIntervalSince1970 * 1_000_000),
                route: "orders",
                endpoint: endpoint,
                method: "GET",
                target: "/orders/7",
                servingUpstream: "legacy",
                shadowUpstream: "orders-v2",
                servingStatus: 200,
                shadowStatus: 200,
                servingLatencyMicroseconds: 1_500,
                shadowLatencyMicroseconds: 2_500,
                shadowError: nil,
                differences: differences,
                noiseDifferences: noiseSample ? [] : nil,
                requestHeaders: [],
                requestBody: [],
                servingHeaders: [],
                servingBody: Array(#"{"amount":100}"#.utf8),
                servingTruncated: false,
                shadowHeaders: [],
                shadowBody: Array((differences.isEmpty ? #"{"amount":100}"# : #"{"amount":"100"}"#).utf8),
                shadowTruncated: false
            )
        }

        static let typeChanged = Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: "\"100\"")

        /// A seeded sandbox with `identical` identical and `differing` type-changed requests in the last minutes;
        /// the first `noiseSamples` differing requests are also noise samples whose two legacy answers agreed.
        static func sandbox(identical: Int, differing: Int, noiseSamples: Int = 20) async throws -> Sandbox {
            let sandbox = try Sandbox().seeded()
            let store = try SQLiteConfigurationStore(path: sandbox.store)
            var records: [ShadowRecord] = []
            for index in 0..<identical {
                records.append(Self.record(secondsAgo: Double(index), endpoint: "GET /orders"))
            }
            for index in 0..<differing {
                records.append(
                    Self.record(
                        secondsAgo: Double(index), differences: [Self.typeChanged], noiseSample: index < noiseSamples))
            }
            if !records.isEmpty {
                try await store.appendShadowRecords(records)
            }
            return sandbox
        }

        @Test func threeFormatsShowTheSameEndpoints() async throws {
            let sandbox = try await Self.sandbox(identical: 40, differing: 20)
            let text = try sandbox.ficus("report")
            #expect(text.status == 0, "\(text)")
            #expect(text.stdout.contains("GET /orders/{id}"))
            #expect(text.stdout.contains("$.amount  type_changed  20/20"))
            #expect(!text.stdout.contains("\u{1B}["), "no colour when standard output is not a terminal")

            let json = try sandbox.ficus("report", "--format", "json", "--since", "1h")
            #expect(json.status == 0, "\(json)")
            let root = try #require(try decodeJSON(json.stdout) as? [String: Any])
            #expect(root["verdict"] as? String == "regressions")
            let endpoints = try #require(root["endpoints"] as? [[String: Any]])
            #expect(endpoints.map { $0["endpoint"] as? String } == ["GET /orders", "GET /orders/{id}"])
            #expect(endpoints.map { $0["verdict"] as? String } == ["ready", "regressions"])
            #expect(endpoints.map { $0["compared"] as? Int } == [40, 20])
            let window = try #require(root["window"] as? [String: Any])
            #expect(window["from"] is String)
            #expect(window["to"] is NSNull)

            let html = try sandbox.ficus("report", "--format", "html", "--out", "report.html")
            #expect(html.status == 0, "\(html)")
            #expect(html.stdout.isEmpty)
            #expect(html.stderr.contains("wrote html report to report.html"))
            let page = try String(
                contentsOf: sandbox.directory.appendingPathComponent("report.html"), encoding: .utf8)
            #expect(page.hasPrefix("<!DOCTYPE html>"))
            #expect(!page.lowercased().contains("<script"))
            #expect(page.contains("data-total-compared=\"60\""))

            let users = try sandbox.ficus("report", "--route", "orders", "--format", "json")
            #expect(users.status == 0)
            let missing = try sandbox.ficus("report", "--route", "nope")
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("no route 'nope'"), "\(missing)")
        }

        @Test func gateExitsFourOnRegressions() async throws {
            let sandbox = try await Self.sandbox(identical: 40, differing: 20)
            let result = try sandbox.ficus("report", "--fail-on-regression", "--format", "json")
            #expect(result.status == 4, "\(result)")
            #expect(result.stderr.contains("gate failed: regressions in 1 endpoint(s): GET /orders/{id}"))
            // The report is still written: CI keeps it as the evidence.
            #expect(result.stdout.contains("\"verdict\" : \"regressions\""))
            // Without the flag the report only informs.
            #expect(try sandbox.ficus("report").status == 0)
        }

        /// A difference the endpoint's few noise samples never showed is unconfirmed, not a regression: the gate
        /// holds it with exit 5 and names it; with the noise floor met, the same field is a regression (exit 4).
        @Test func aDifferenceWithTooFewNoiseSamplesIsUnconfirmed() async throws {
            let sandbox = try await Self.sandbox(identical: 40, differing: 10, noiseSamples: 3)
            let held = try sandbox.ficus("report", "--fail-on-regression", "--format", "json")
            #expect(held.status == 5, "\(held)")
            #expect(held.stderr.contains("gate held: 1 endpoint(s) differ where too few noise samples"), "\(held)")
            let root = try #require(try decodeJSON(held.stdout) as? [String: Any])
            let endpoints = try #require(root["endpoints"] as? [[String: Any]])
            let orders = try #require(endpoints.first { $0["endpoint"] as? String == "GET /orders/{id}" })
            #expect(orders["verdict"] as? String == "unconfirmed")
            let fields = try #require(orders["fields"] as? [[String: Any]])
            #expect(fields.first?["unconfirmed"] as? Bool == true)
            #expect((root["totals"] as? [String: Any])?["unconfirmed"] as? Int == 1)
            let text = try sandbox.ficus("report")
            #expect(text.stdout.contains("unconfirmed (3 noise samples so far"), "\(text)")
            // The same differences are a regression once the floor is met (here: lowered to what was taken).
            let confirmed = try sandbox.ficus("report", "--fail-on-regression", "--noise-floor", "3")
            #expect(confirmed.status == 4, "\(confirmed)")
        }

        @Test func gateExitsFiveWithoutEnoughTrafficAndZeroWhenReady() async throws {
            let empty = try Sandbox()
            try empty.ok("init")
            let none = try empty.ficus("report", "--fail-on-regression")
            #expect(none.status == 5, "an empty store never passes a gate: \(none)")
            #expect(none.stderr.contains("no endpoint reached 30 compared requests"))

            let starved = try await Self.sandbox(identical: 5, differing: 0)
            #expect(try starved.ficus("report", "--fail-on-regression").status == 5)
            #expect(try starved.ficus("report", "--fail-on-regression", "--min-requests", "5").status == 0)

            let ready = try await Self.sandbox(identical: 30, differing: 0)
            let passed = try ready.ficus("report", "--fail-on-regression")
            #expect(passed.status == 0, "\(passed)")
            #expect(passed.stdout.contains("Gate: pass"))
            // A window with nothing in it is a starved store again.
            let old = try ready.ficus("report", "--fail-on-regression", "--from", "2020-01-01", "--to", "2020-01-02")
            #expect(old.status == 5, "\(old)")
        }

        @Test func badWindowsAreUsageErrors() async throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            for arguments in [
                ["report", "--since", "soon"], ["report", "--since", "1h", "--from", "2025-01-01"],
                ["report", "--from", "yesterday"], ["report", "--from", "2025-01-02", "--to", "2025-01-01"],
                ["report", "--format", "pdf"], ["report", "--min-requests", "0"],
            ] {
                let result = try sandbox.ficus(arguments)
                #expect(result.status == 2, "\(arguments): \(result)")
            }
            let missing = try sandbox.bare(["report", "--store", sandbox.directory.appendingPathComponent("x").path])
            #expect(missing.status == 1, "\(missing)")
            #expect(missing.stderr.contains("no store at"))
        }

        static func answer(_ request: TestUpstream.RecordedRequest, modern: Bool) -> TestUpstream.Response {
            let id = UUID().uuidString
            let body = modern
                ? "{\"id\":7,\"amount\":\"100\",\"requestId\":\"\(id)\"}"
                : "{\"id\":7,\"amount\":100,\"note\":\"kept\",\"requestId\":\"\(id)\"}"
            return TestUpstream.Response(status: 200, headers: [("Content-Type", "application/json")], body: body)
        }

        /// A real shadowing run through `ficus serve`, then the report of its store in all three formats.
        @Test func reportOfARealShadowingRun() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let legacy = try await TestUpstream.start(.custom { Self.answer($0, modern: false) }, group: group)
            let modern = try await TestUpstream.start(.custom { Self.answer($0, modern: true) }, group: group)
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", legacy.address)
            try sandbox.ok("upstream", "add", "orders-v2", modern.address)
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
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
            for index in 0..<35 {
                let response = try await client.request(path: "/orders/\(index)")
                #expect(response.status == 200)
            }
            client.close()
            let stored = ContinuousClock.now + .seconds(5)
            while ContinuousClock.now < stored {
                let summaries = try await store.shadowEndpoints(route: "orders", from: nil, to: nil)
                if summaries.first?.compared == 35 { break }
                try await Task.sleep(for: .milliseconds(100))
            }
            server.stop()

            let json = try sandbox.ficus("report", "--format", "json", "--fail-on-regression")
            #expect(json.status == 4, "\(json)")
            let root = try #require(try decodeJSON(json.stdout) as? [String: Any])
            let endpoint = try #require((root["endpoints"] as? [[String: Any]])?.first)
            #expect(endpoint["endpoint"] as? String == "GET /orders/{id}")
            #expect(endpoint["compared"] as? Int == 35)
            let fields = try #require(endpoint["fields"] as? [[String: Any]])
            let flagged = Set(
                fields.map { field in
                    let noise = field["noise"] as? Bool ?? false
                    return "\(field["kind"] as? String ?? "") \(field["path"] as? String ?? "") \(noise)"
                })
            #expect(flagged.contains("type_changed $.amount false"), "\(flagged)")
            #expect(flagged.contains("missing $.note false"))
            #expect(flagged.contains("value_changed $.requestId true"), "request ids are noise: \(flagged)")
            let samples = try #require(endpoint["samples"] as? [[String: Any]])
            #expect(samples.contains { $0["path"] as? String == "$.amount" })

            let text = try sandbox.ficus("report")
            #expect(text.status == 0)
            #expect(text.stdout.contains("regressions"))
            let html = try sandbox.ficus("report", "--format", "html")
            #expect(html.status == 0)
            #expect(html.stdout.contains("<mark>  &quot;amount&quot;: 100,</mark>"))
            #expect(html.stdout.contains("data-total-compared=\"35\""))

            try await legacy.shutdown()
            try await modern.shutdown()
            try await group.shutdownGracefully()
        }
    }
}
