import Foundation
import Testing

extension CLITests {
    /// Fallback settings through the CLI and rules files (issue 17 item 1): `route set`, `route show`, `explain`,
    /// export and apply, and bad values refused with where they are and changing nothing.
    @Suite struct Fallback {
        @Test func routeSetShowExplainAndExport() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("upstream", "add", "orders-v2", "127.0.0.1:8091")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            try sandbox.ok("flip", "orders", "--to", "orders-v2")
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains(
                "fallback  to legacy when another upstream fails before answering (connect failure, reset, timeout, "
                    + "status 502, 503, 504)"))
            let explained = try sandbox.ok("explain", "GET", "/orders/1").stdout
            #expect(explained.contains("fallback: legacy if orders-v2 fails before answering"), "\(explained)")

            try sandbox.ok("route", "set", "orders", "--fallback-on", "503")
            #expect(try sandbox.ok("export").stdout.contains("fallback_on:\n  - 503"))
            let json = try sandbox.ok("explain", "GET", "/orders/1", "--json").stdout
            let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
            #expect(object["fallback"] as? String == "legacy")
            #expect(object["fallbackOn"] as? [Int] == [503])

            try sandbox.ok("route", "set", "orders", "--fallback", "off")
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("fallback  off"))
            #expect(try sandbox.ok("explain", "GET", "/orders/1").stdout.contains("fallback: none"))
            let exported = try sandbox.ok("export").stdout
            // Quoted: `off` alone is a boolean in YAML 1.1 (the loader reads both spellings).
            #expect(exported.contains("fallback: 'off'"), "\(exported)")
        }

        @Test func badValuesAreRefusedAndChangeNothing() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "legacy", "127.0.0.1:8081")
            try sandbox.ok("route", "add", "orders", "--prefix", "/orders", "--to", "legacy")
            let before = try sandbox.snapshot()
            let maybe = try sandbox.ficus("route", "set", "orders", "--fallback", "maybe")
            #expect(maybe.status != 0 && maybe.stderr.contains("--fallback 'maybe': expected legacy or off"), "\(maybe)")
            let notFound = try sandbox.ficus("route", "set", "orders", "--fallback-on", "502,404")
            #expect(notFound.status != 0 && notFound.stderr.contains("'404' is not a status from 500 to 599"), "\(notFound)")
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
                    fallback: maybe
                    fallback_on: [502, 404]
                """
            )
            let applied = try sandbox.ficus("apply", file)
            #expect(applied.status != 0)
            #expect(applied.stderr.contains("rules.yaml:8"), "the line of fallback: \(applied.stderr)")
            #expect(applied.stderr.contains("must be legacy or off, got 'maybe'"), "\(applied.stderr)")
            #expect(applied.stderr.contains("404 is not a server error status (500-599)"), "\(applied.stderr)")
            #expect(try sandbox.snapshot() == before)
        }
    }
}
