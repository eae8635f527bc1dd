import FicusDiff
import FicusReport
import FicusStore
import Foundation
import Testing

@Suite("Report renderers")
struct RendererTests {
    static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    static let schema = Self.repository.appendingPathComponent("docs/report.schema.json")

    /// The fixture report, with a hostile body planted in one sample.
    static func report() async throws -> (ReportStore, MigrationReport) {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.deployGreen()
        try await fixture.fill()
        var hostile = ReportStore.record(
            at: 200,
            endpoint: "GET /orders/{id}",
            target: "/orders/<script>",
            differences: [Difference(path: "$", kind: .body, serving: "a", shadow: "b")],
            servingBody: "</pre><script>alert(1)</script>",
            shadowBody: "<img src=x onerror=alert(2)>"
        )
        hostile.shadowWaitMicroseconds = 7_000
        try await fixture.append([hostile])
        // Copies of the endpoint that were never compared: coverage says what share the verdict rests on.
        try await fixture.store.appendShadowDrops([
            ShadowDropCount(
                minute: Int64(ReportStore.start.timeIntervalSince1970) + 180, route: "orders",
                endpoint: "GET /orders/{id}", reason: "capacity", sent: false, count: 9),
            ShadowDropCount(
                minute: Int64(ReportStore.start.timeIntervalSince1970) + 180, route: "orders",
                endpoint: "GET /orders/{id}", reason: "comparer_queue_full", sent: true, count: 1),
        ])
        let report = try await ReportBuilder(
            store: fixture.store,
            canaries: ["orders": ReportStore.runningCanary()],
            now: { ReportStore.time(3_600) }
        ).build()
        return (fixture, report)
    }

    @Test("the JSON validates against docs/report.schema.json and round-trips")
    func jsonSchema() async throws {
        let (_, report) = try await Self.report()
        let text = try JSONRenderer().render(report)
        let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
        let checker = try JSONSchemaChecker(schemaAt: Self.schema)
        #expect(try checker.problems(value) == [])
        #expect(try JSONRenderer.decode(Data(text.utf8)) == report)

        // The minimum the issue promises, by key.
        let root = try #require(value as? [String: Any])
        #expect(root["generatedAt"] as? String == "2025-06-15T16:06:00Z")
        #expect(root["window"] is [String: Any])
        let routes = try #require(root["routes"] as? [[String: Any]])
        let orders = try #require(routes.first { $0["route"] as? String == "orders" })
        #expect((orders["canary"] as? [String: Any])?["phase"] as? String == "running")
        #expect((orders["slots"] as? [[String: Any]])?.first?["idle"] as? String == "green")
        #expect(routes.first { $0["route"] as? String == "users" }?["canary"] is NSNull)
        let endpoints = try #require(root["endpoints"] as? [[String: Any]])
        let item = try #require(endpoints.first { $0["endpoint"] as? String == "GET /orders/{id}" })
        #expect(item["route"] as? String == "orders")
        #expect(item["compared"] as? Int == 41)
        #expect(item["differing"] as? Int == 41)
        #expect(item["verdict"] as? String == "regressions")
        let fields = try #require(item["fields"] as? [[String: Any]])
        let amount = try #require(fields.first { $0["path"] as? String == "$.amount" })
        #expect(amount["kind"] as? String == "type_changed")
        #expect(amount["count"] as? Int == 40)
        #expect(amount["noise"] as? Bool == false)
        let coverage = try #require(item["coverage"] as? [String: Any])
        let errors = try #require(item["errors"] as? Int)
        #expect(coverage["eligible"] as? Int == 41 + errors + 10, "eligible = compared + errors + dropped")
        #expect(coverage["shadowed"] as? Int == 41 + errors + 1)
        #expect(coverage["dropped"] as? Int == 10)
        let drops = try #require(coverage["drops"] as? [[String: Any]])
        #expect(drops.first?["reason"] as? String == "capacity" && drops.first?["count"] as? Int == 9)
        let latency = try #require(item["latency"] as? [String: Any])
        #expect((latency["shadowWait"] as? [String: Any])?["count"] as? Int == 1)
        let totals = try #require(root["totals"] as? [String: Any])
        #expect(totals["dropped"] as? Int == 10)

        // An empty report validates too: nulls where nothing is known.
        let empty = try await ReportBuilder(store: ReportStore().store).build()
        let emptyValue = try JSONSerialization.jsonObject(with: try JSONRenderer().data(empty))
        #expect(try checker.problems(emptyValue) == [])
        #expect((emptyValue as? [String: Any])?["revision"] is NSNull)
    }

    @Test("the checker catches undocumented keys, wrong types and bad enum values")
    func checkerCatches() throws {
        let checker = try JSONSchemaChecker(schemaAt: Self.schema)
        let problems = try checker.problems([
            "schemaVersion": 1, "generatedAt": "x", "window": ["from": NSNull(), "to": NSNull(), "bucketSeconds": 60],
            "thresholds": ["relative": 0.2, "absolute": 0.0003, "minRequests": 30], "revision": "7",
            "totals": [String: Any](), "verdict": "maybe", "endpoints": [Any](), "timeline": [Any](),
            "routes": [Any](), "extra": true,
        ])
        #expect(problems.contains("$: undocumented key 'extra'"))
        #expect(problems.contains("$.revision: string, expected integer or null"))
        #expect(problems.contains { $0.hasPrefix("$.verdict: maybe is not one of") })
        #expect(problems.contains("$.totals: missing required key 'compared'"))
    }

    /// Whether `python3` with the `jsonschema` module is on this machine (`.ci/run` installs it).
    static let pythonHasJSONSchema: Bool = {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", "-c", "import jsonschema"]
        process.standardOutput = FileHandle.nullDevice
        process.standardError = FileHandle.nullDevice
        guard (try? process.run()) != nil else { return false }
        process.waitUntilExit()
        return process.terminationStatus == 0
    }()

    /// Skipped, visibly, where Python's jsonschema is missing: the Swift checker above then is the only check.
    @Test(
        "the JSON also validates with Python's jsonschema",
        .enabled(if: RendererTests.pythonHasJSONSchema, "python3 with the jsonschema module is not installed")
    )
    func pythonJSONSchema() async throws {
        let (fixture, report) = try await Self.report()
        let file = fixture.directory.appendingPathComponent("report.json")
        try JSONRenderer().data(report).write(to: file)
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = [
            "python3", "-c",
            """
            import json, sys
            import jsonschema
            jsonschema.validate(json.load(open(sys.argv[2])), json.load(open(sys.argv[1])))
            """,
            Self.schema.path, file.path,
        ]
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        let output = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        #expect(process.terminationStatus == 0, "\(String(decoding: output, as: UTF8.self))")
    }

    @Test("text: endpoints, verdicts, regression fields and routes; ANSI colour only when asked")
    func text() async throws {
        let (_, report) = try await Self.report()
        let plain = TextRenderer().render(report)
        #expect(!plain.contains("\u{1B}["))
        for expected in [
            "GET /orders/{id}", "GET /orders", "GET /users/{id}", "regressions", "ready", "not enough traffic",
            "✗ $.amount  type_changed  40/41", "$.requestId", "orders: configured legacy 90%, orders-v2 10%",
            "Gate: regressions (exit 4",
            "canary → orders-v2: running, step 2 of 3, 50% new (42% done) — holding: too few requests",
            "driven by host:4242:ab12cd34", "requests 12 (≥ 20) holding", "error rate 0% (≤ 1%) ok",
            "step 2 (50%) hold ×2 at", "blue-green orders-v2: blue active [127.0.0.1:9090], green idle [127.0.0.1:9191]",
            "bluegreen.check: upstream 'orders-v2': check of slot 'green' passed",
            "capacity 9, comparer_queue_full 1 after sending)", "10 dropped", "Coverage: ",
            "shadow copies waited inside Ficus: p50 ",
        ] {
            #expect(plain.contains(expected), "missing '\(expected)' in\n\(plain)")
        }
        let coloured = TextRenderer(colour: true).render(report)
        #expect(coloured.contains("\u{1B}[31m"))
        #expect(coloured.contains("\u{1B}[32m"))
    }

    @Test("HTML: self-contained, no script, escaped, one chart point per bucket, totals equal to the JSON's")
    func html() async throws {
        let (_, report) = try await Self.report()
        let html = HTMLRenderer().render(report)
        #expect(html.hasPrefix("<!DOCTYPE html>"))
        #expect(!html.lowercased().contains("<script"))
        #expect(!html.contains("<img"))
        #expect(!html.contains("http://") || !html.replacingOccurrences(
            of: "xmlns=\"http://www.w3.org/2000/svg\"", with: "").contains("http://"))
        #expect(!html.contains("https://"))
        #expect(html.contains("&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;"))
        #expect(html.contains("<code>/orders/&lt;script&gt;</code>"))
        #expect(html.contains("<p class=\"coverage\">coverage: "), "per-endpoint coverage")
        #expect(html.contains("(capacity 9, comparer_queue_full 1 after sending)"))
        #expect(html.contains("Shadow copies waited inside Ficus before they were sent"))
        #expect(html.contains("<style>"))

        let chart = try #require(Self.element(html, id: "diff-rate"))
        let points = Self.attributes("data-compared", in: chart)
        #expect(points.count == report.timeline.count)
        #expect(points.reduce(0, +) == report.totals.compared)
        #expect(Self.attributes("data-differing", in: chart).reduce(0, +) == report.totals.differing)
        #expect(Self.attributes("data-total-compared", in: chart) == [report.totals.compared])
        #expect(chart.components(separatedBy: "<circle class=\"point\"").count - 1 == report.timeline.count)

        // Latency per side for every endpoint, with the percentiles of both sides.
        #expect(html.components(separatedBy: "class=\"chart latency\"").count - 1 == report.endpoints.count)
        #expect(html.contains("data-side=\"shadow\" data-percentile=\"p99\" data-microseconds=\"3000\""))
        // The differing line is marked on both sides.
        #expect(html.contains("<mark>  &quot;amount&quot;: 100,</mark>"))
        #expect(html.contains("<mark>  &quot;amount&quot;: &quot;100&quot;</mark>"))
        #expect(html.contains("Audit trail") || report.routes.allSatisfy(\.changes.isEmpty))
        #expect(html.contains("<h4>Canary</h4>"))
        #expect(html.contains("<progress max=\"100\" value=\"41.67\"></progress>"), "\(html)")
        #expect(html.contains("<h4>Blue-green <code>orders-v2</code></h4>"))
    }

    /// The markup of the element with `id`, up to its closing `</figure>`.
    static func element(_ html: String, id: String) -> String? {
        guard let start = html.range(of: "id=\"\(id)\""), let end = html[start.upperBound...].range(of: "</figure>")
        else {
            return nil
        }
        return String(html[start.lowerBound..<end.upperBound])
    }

    /// The integer values of every `name="N"` in `text`.
    static func attributes(_ name: String, in text: String) -> [Int] {
        text.components(separatedBy: " \(name)=\"").dropFirst().compactMap { Int($0.prefix { $0 != "\"" }) }
    }

    /// Upstream data never sends a terminal escape: a JSON key or endpoint holding ESC, BEL or C1 controls is printed
    /// visibly by the text report.
    @Test func textEscapesControlCharactersFromUpstreamData() async throws {
        let fixture = try ReportStore()
        try await fixture.seed()
        try await fixture.fill()
        let hostileKey = "$.x\u{1B}]52;c;ZXZpbA==\u{07}\u{9B}2J"
        try await fixture.append(
            (0..<3).map { index in
                ReportStore.record(
                    at: Double(300 + index),
                    endpoint: "GET /orders/\u{1B}[2J",
                    target: "/orders/x",
                    differences: [Difference(path: hostileKey, kind: .valueChanged, serving: "1", shadow: "2")],
                    servingBody: "{}",
                    shadowBody: "{}"
                )
            }
        )
        let report = try await ReportBuilder(store: fixture.store, now: { ReportStore.time(3_600) }).build()
        let text = TextRenderer(colour: false, maxFields: 100).render(report)
        #expect(!text.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x07 || $0.value == 0x9B }, "\(text)")
        #expect(text.contains("\\u{1B}]52;c;ZXZpbA==\\u{7}\\u{9B}2J"), "\(text)")
        #expect(text.contains("GET /orders/\\u{1B}[2J"), "\(text)")
    }
}
