import Foundation
import Testing

extension CLITests {
    /// `ficus demo`, end to end through the built binary: services, store, proxy, traffic, flip, rollback, report.
    @Suite struct Demo {
        @Test func runsEveryStepWritesTheReportAndLeavesNothingBehind() throws {
            let sandbox = try Sandbox()
            // The demo's temporary store goes under TMPDIR; a private one shows whether anything is left behind.
            let temporary = sandbox.directory.appendingPathComponent("tmp")
            try FileManager.default.createDirectory(at: temporary, withIntermediateDirectories: true)
            let report = sandbox.directory.appendingPathComponent("r.html")
            let started = Date()
            let result = try sandbox.bare(
                ["demo", "--duration", "3", "--out", report.path],
                environment: ["TMPDIR": temporary.path]
            )
            let elapsed = Date().timeIntervalSince(started)
            #expect(result.status == 0, "\(result)")
            #expect(elapsed < 30, "the demo took \(elapsed) s")

            let steps = [
                "[1/8] Starting two built-in services",
                "[2/8] Creating a temporary store and applying the demo configuration",
                "[3/8] Starting the proxy",
                "[4/8] Sending traffic",
                "[5/8] Flipping route 'users' to orders-v2",
                "[6/8] Rolling back",
                "[7/8] Writing the report",
                "[8/8] Shutting down",
            ]
            var rest = Substring(result.stdout)
            for step in steps {
                let range = try #require(rest.range(of: step), "missing or out of order: \(step)\n\(result)")
                rest = rest[range.upperBound...]
            }
            #expect(result.stdout.contains("revision 2: ~ route users: default legacy → orders-v2"), "\(result)")
            #expect(result.stdout.contains("20 × GET /users/{id} now: 20 by the new service"), "\(result)")
            #expect(result.stdout.contains("revision 3: rollback to 1"), "\(result)")
            #expect(result.stdout.contains("20 × GET /users/{id} now: 20 by the legacy monolith"), "\(result)")
            #expect(result.stdout.contains("HTML report: \(report.path)"), "\(result)")

            let html = try String(contentsOf: report, encoding: .utf8)
            #expect(html.contains("GET /orders/{id}"))
            let totalTypeChange = html.split(separator: "\n").contains {
                $0.contains("$.total") && $0.contains("type_changed")
            }
            #expect(totalTypeChange, "the report does not show the type change of $.total")

            let left = try FileManager.default.contentsOfDirectory(atPath: temporary.path)
            #expect(left.isEmpty, "left behind in TMPDIR: \(left)")
            let storeLine = result.stdout.split(separator: "\n").first { $0.contains("store  ") }
            let store = try #require(storeLine?.split(separator: " ").last.map(String.init), "\(result)")
            #expect(store.hasPrefix(temporary.path), "\(store)")
            #expect(!FileManager.default.fileExists(atPath: store))
        }

        /// The binary embeds examples/demo.yaml so that it runs from any directory; the two must not drift apart.
        @Test func embeddedConfigurationIsRulesDemoYAML() throws {
            let sandbox = try Sandbox()
            let printed = try sandbox.bare(["demo", "--print-config"])
            #expect(printed.status == 0, "\(printed)")
            let file = try String(
                contentsOf: FicusProcess.repository.appendingPathComponent("examples/demo.yaml"), encoding: .utf8)
            #expect(printed.stdout == file)
            // The file on its own is a valid rules file once the placeholders have ports.
            let filled = try sandbox.write(
                "demo.yaml", file.replacingOccurrences(of: "127.0.0.1:0", with: "127.0.0.1:1"))
            let validated = try sandbox.bare(["validate", filled])
            #expect(validated.status == 0, "\(validated)")
        }

        @Test func refusesADurationOutOfRange() throws {
            let sandbox = try Sandbox()
            let result = try sandbox.bare(["demo", "--duration", "0"])
            #expect(result.status == 2, "\(result)")
            #expect(result.stderr.contains("--duration"), "\(result)")
        }
    }
}
