import Foundation
import Testing

extension CLITests {
    /// `validate`, `apply`, `export` and `init --from` with the example rules in rules/.
    @Suite struct RulesFiles {
        static let rules = FicusProcess.repository.appendingPathComponent("rules").path

        /// The YAML of an export without its comment header (which names the revision and time).
        static func body(_ export: String) -> String {
            export.split(separator: "\n", omittingEmptySubsequences: false).filter { !$0.hasPrefix("#") }
                .joined(separator: "\n")
        }

        @Test func theExampleRulesValidate() throws {
            let sandbox = try Sandbox()
            let result = try sandbox.bare(["validate", Self.rules])
            #expect(result.status == 0, "\(result)")
            #expect(result.stdout.contains("3 upstreams, 3 routes, 4 rules, 2 segments, 1 flags"))
        }

        /// The example rules use only current (snake_case) names: no warnings.
        @Test func theExampleRulesGiveNoWarnings() throws {
            let result = try Sandbox().bare(["validate", Self.rules])
            #expect(result.status == 0, "\(result)")
            #expect(!result.stderr.contains("warning"), "\(result)")
        }

        /// A file with a former camelCase name validates and applies, with a located warning naming the new name.
        @Test func formerNamesAreReadWithAWarning() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            let file = try sandbox.write(
                "old.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:9001"]
                routes:
                  - name: all
                    legacy: legacy
                    timeouts: {connectMilliseconds: 300}

                """)
            let validated = try sandbox.bare(["validate", file])
            #expect(validated.status == 0, "\(validated)")
            #expect(
                validated.stderr.contains(
                    "old.yaml:7:16: warning: route 'all': timeouts: 'connectMilliseconds' is now "
                        + "'connect_milliseconds'; the old name is still read, rename it"),
                "\(validated)")
            let applied = try sandbox.bare(["apply", file])
            #expect(applied.status == 0, "\(applied)")
            #expect(applied.stderr.contains("warning: route 'all': timeouts: 'connectMilliseconds'"), "\(applied)")
            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("connect_milliseconds: 300"), "\(exported)")
        }

        @Test func applyPrintsAPlanAndCommitsOneRevision() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            let dry = try sandbox.ok("apply", Self.rules, "--dry-run")
            #expect(dry.stdout.contains("+ route orders"))
            #expect(dry.stdout.contains("+ upstream orders-v2"))
            #expect(dry.stdout.contains("Dry run: nothing applied"))
            #expect((try decodeJSON(try sandbox.ok("history", "--json").stdout) as? [Any])?.isEmpty == true)
            let applied = try sandbox.ok("apply", Self.rules, "--expect-revision", "0", "--reason", "first cut")
            #expect(applied.stdout.contains("Plan: 13 to add, 0 to change, 0 to remove."))
            #expect(applied.revision == 1)
            let again = try sandbox.ok("apply", Self.rules)
            #expect(again.stdout.contains("No changes"))
            #expect(again.revision == nil)
            // The example configuration routes as its comments say.
            let users =
                try decodeJSON(
                    try sandbox.ok("explain", "GET", "/api/v1/users/42", "-H", "X-API-Version: 2.1", "--json").stdout
                ) as? [String: Any]
            #expect(users?["upstream"] as? String == "users-v2")
            #expect(users?["rewrite"] as? String == "path /api/v1/users -> /users")
            let media =
                try decodeJSON(
                    try sandbox.ok(
                        "explain", "GET", "/api/v1/users/42", "-H", "Accept: application/vnd.acme+json; version=2",
                        "--json"
                    ).stdout
                ) as? [String: Any]
            #expect(media?["rule"] as? String == "users-v2-media-type")
            let beta =
                try decodeJSON(
                    try sandbox.ok("explain", "POST", "/api/v1/orders", "-H", "X-Beta-User: TRUE", "--json").stdout
                ) as? [String: Any]
            #expect(beta?["rule"] as? String == "orders-beta")
            let other = try decodeJSON(try sandbox.ok("explain", "GET", "/home", "--json").stdout) as? [String: Any]
            #expect(other?["route"] as? String == "monolith")
        }

        @Test func applyRemovesWhatTheFilesLeaveOutUnlessMerging() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("flag", "on", "keep-me")
            let file = try sandbox.write(
                "partial.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: [127.0.0.1:9001]
                  - name: orders-v2
                    addresses: [127.0.0.1:9002]
                flags:
                  - name: extra
                    enabled: true

                """
            )
            let merged = try sandbox.ok("apply", "--merge", file)
            #expect(merged.stdout.contains("+ flag extra"))
            #expect(!merged.stdout.contains("- "))
            #expect(try sandbox.ok("flag", "list").stdout.contains("keep-me"))
            let full = try sandbox.ok("apply", file, "--dry-run")
            #expect(full.stdout.contains("- route orders"))
            #expect(full.stdout.contains("- segment beta"))
            #expect(full.stdout.contains("- flag keep-me"))
            let plannedAt = try #require(full.stdout.split(separator: "\n").first?.split(separator: " ")[3])
            #expect(plannedAt == "6")
            try sandbox.ok("apply", file, "--expect-revision", "6")
            #expect(!(try sandbox.ok("route", "list").stdout.contains("orders")))
        }

        @Test func exportAppliesBackToAnIdenticalConfiguration() throws {
            let first = try Sandbox()
            try first.ok("init", "--from", Self.rules)
            // Add everything the example lacks: slots flipped, methods, host, rewrite headers, flags off, killed.
            try first.ok(
                "route", "add", "admin", "--prefix", "/admin", "--to", "legacy", "--host", "*.example.com",
                "--methods", "GET,DELETE", "--response-timeout", "60000")
            try first.ok("segment", "add", "ids", "--ids", "cookie:uid=a,b", "--match", "query:debug exists")
            try first.ok(
                "rule", "add", "admin", "--to", "users-v2", "--segment", "ids", "--version", "7",
                "--version-header", "X-Version")
            try first.ok("flag", "off", "orders-canary")
            try first.ok("flip", "orders", "--to", "orders-v2")
            try first.ok("flip", "orders")
            try first.ok("kill")
            let exported = try first.ok("export").stdout
            #expect(exported.contains("active: green"))
            #expect(exported.contains("killed: true"))
            let file = try first.write("exported.yaml", exported)
            #expect(try first.bare(["validate", file]).status == 0)

            let second = try Sandbox()
            try second.ok("init")
            try second.ok("apply", file)
            let reexported = try second.ok("export").stdout
            #expect(Self.body(reexported) == Self.body(exported))
            let firstJSON = try first.ok("route", "list", "--json").stdout
            let secondJSON = try second.ok("route", "list", "--json").stdout
            #expect(firstJSON == secondJSON)
            // Applying the export back to the store it came from changes nothing.
            #expect(try first.ok("apply", file).stdout.contains("No changes"))
            // An older revision exports too.
            let old = try first.ok("export", "--revision", "1").stdout
            #expect(Self.body(old).contains("killed: false"))
        }

        @Test func aDirectoryIsOneConfigurationAndDuplicatesAcrossFilesAreNamed() throws {
            let sandbox = try Sandbox()
            let copy = sandbox.directory.appendingPathComponent("rules")
            try FileManager.default.copyItem(atPath: Self.rules, toPath: copy.path)
            try sandbox.write("rules/zz.yaml", "flags:\n  - name: orders-canary\n")
            let result = try sandbox.bare(["validate", copy.path])
            #expect(result.status == 3)
            #expect(
                result.stderr.contains("zz.yaml:2:11: flag 'orders-canary': name: duplicate flag name 'orders-canary'"),
                "\(result)")
        }
    }
}
