import Foundation
import Testing

extension CLITests {
    /// Retry policies through the CLI and rules files (issue 17 item 5): `route set`, `route show`, `explain`,
    /// export and apply, and bad values refused with where they are and changing nothing.
    @Suite struct Retry {
        static func seeded() throws -> Sandbox {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            return sandbox
        }

        @Test func routeSetShowExplainExportAndRemove() throws {
            let sandbox = try Self.seeded()
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("retry    none"))
            try sandbox.ok("route", "set", "orders", "--retry")
            #expect(
                try sandbox.ok("route", "show", "orders").stdout.contains(
                    "retry    on connect-failure, reset, 502, 503, 504; 1 attempt; backoff 25ms..250ms; budget 20% of "
                        + "active, at least 3"))
            try sandbox.ok(
                "route", "set", "orders", "--retry-on", "reset,503", "--retry-attempts", "3", "--per-try-timeout", "2s",
                "--retry-backoff", "10ms,1s", "--retry-budget", "25%,5")
            let explained = try sandbox.ok("explain", "GET", "/orders/1").stdout
            #expect(
                explained.contains(
                    "retry: on reset, 503; 3 attempts; per try 2s; backoff 10ms..1s; budget 25% of active, at least 5"),
                "\(explained)")
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            let retry = try #require(object["retry"] as? [String: Any])
            #expect(retry["on"] as? [String] == ["reset", "503"])
            #expect(retry["attempts"] as? Int == 3)
            #expect(retry["per_try_timeout"] as? String == "2s")
            #expect((retry["budget"] as? [String: Any])?["min_concurrent"] as? Int == 5)

            // The export applies back to the same policy.
            let exported = try sandbox.ok("export").stdout
            #expect(exported.contains("retry:"), "\(exported)")
            let file = try sandbox.write("export.yaml", exported)
            let other = try Sandbox()
            try other.ok("init", "--from", file)
            #expect(try other.ok("route", "show", "orders").stdout.contains("retry    on reset, 503; 3 attempts"))

            try sandbox.ok("route", "set", "orders", "--no-retry")
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("retry    none"))
            #expect(try sandbox.ok("explain", "GET", "/orders/1").stdout.contains("retry: none"))
        }

        @Test func badValuesAreRefusedAndChangeNothing() throws {
            let sandbox = try Self.seeded()
            let before = try sandbox.snapshot()
            let on = try sandbox.ficus("route", "set", "orders", "--retry-on", "reset,teapot")
            #expect(on.status != 0 && on.stderr.contains("'teapot' is not connect-failure, reset or a status"), "\(on)")
            let attempts = try sandbox.ficus("route", "set", "orders", "--retry-attempts", "9")
            #expect(attempts.status == 3, "\(attempts)")
            #expect(attempts.stderr.contains("route 'orders': retry.attempts: must be from 1 to 5, got 9"), "\(attempts)")
            let perTry = try sandbox.ficus("route", "set", "orders", "--per-try-timeout", "soon")
            #expect(perTry.stderr.contains("retry.per_try_timeout: 'soon' is not a duration"), "\(perTry)")
            let both = try sandbox.ficus("route", "set", "orders", "--no-retry", "--retry")
            #expect(both.status != 0 && both.stderr.contains("give --no-retry or retry options, not both"), "\(both)")
            #expect(try sandbox.snapshot() == before)

            let file = try sandbox.write(
                "rules.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: ["127.0.0.1:8081"]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    retry:
                      on: [reset, 404]
                      backoff: {base: 1s, max: 10ms}
                      budget: {percent: 120}
                """
            )
            let applied = try sandbox.ficus("apply", file)
            #expect(applied.status == 3)
            #expect(
                applied.stderr.contains("rules.yaml:9:11: route 'orders': retry.on: 404 is not a server error status"),
                "the line of on: \(applied.stderr)")
            #expect(
                applied.stderr.contains("rules.yaml:10:16: route 'orders': retry.backoff: base 1s is longer than max 10ms"),
                "\(applied.stderr)")
            #expect(
                applied.stderr.contains(
                    "rules.yaml:11:25: route 'orders': retry.budget.percent: must be from 0 to 100, got 120"),
                "\(applied.stderr)")
            let typo = try sandbox.write("typo.yaml", try String(contentsOfFile: file, encoding: .utf8)
                .replacingOccurrences(of: "      budget: {percent: 120}", with: "      tries: 2"))
            let refused = try sandbox.ficus("apply", typo)
            #expect(refused.stderr.contains("retry: unknown field 'tries'"), "\(refused.stderr)")
            #expect(try sandbox.snapshot() == before)
        }

        /// `stale_if_error` through `route set`, `show`, `explain --json`, export, and a bad value refused.
        @Test func staleIfError() throws {
            let sandbox = try Self.seeded()
            try sandbox.ok("route", "set", "orders", "--stale-if-error", "90s")
            #expect(
                try sandbox.ok("route", "show", "orders").stdout.contains(
                    "stale if error  a failed GET gets a copy of its 200 answer up to 90s old"))
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(object["staleIfError"] as? String == "90s")
            #expect(try sandbox.ok("export").stdout.contains("stale_if_error: 90s"))
            let before = try sandbox.snapshot()
            let bad = try sandbox.ficus("route", "set", "orders", "--stale-if-error", "forever")
            #expect(bad.status == 3, "\(bad)")
            #expect(bad.stderr.contains("route 'orders': stale_if_error: 'forever' is not a duration"), "\(bad)")
            #expect(try sandbox.snapshot() == before)
            try sandbox.ok("route", "set", "orders", "--no-stale-if-error")
            #expect(!(try sandbox.ok("route", "show", "orders").stdout.contains("stale if error")))
        }
    }
}
