import Foundation
import Testing

extension CLITests {
    /// `ficus shadow` and the `shadow` block of rules files, through the built binary.
    @Suite struct Shadow {
        /// The route's policy as `shadow show --json` prints it, or nil when the route is not shadowed.
        static func policy(_ sandbox: Sandbox, _ route: String = "orders") throws -> [String: Any]? {
            let text = try sandbox.ok("shadow", "show", route, "--json").stdout
            if text.trimmingCharacters(in: .whitespacesAndNewlines) == "null" {
                return nil
            }
            return try decodeJSON(text) as? [String: Any]
        }

        @Test func setChangeAndOff() throws {
            let sandbox = try Sandbox().seeded()
            let created = try sandbox.ok("shadow", "orders", "--to", "orders-v2", "--reason", "compare before canary")
            #expect(created.revision == 5)
            var policy = try #require(try Self.policy(sandbox))
            #expect(policy["to"] as? String == "orders-v2")
            #expect(policy["percent"] as? Double == 100)
            #expect(policy["noise_percent"] as? Double == 10)
            #expect(policy["methods"] == nil)
            let history = try decodeJSON(try sandbox.ok("history", "--json", "--limit", "1").stdout) as? [[String: Any]]
            #expect(history?.first?["reason"] as? String == "compare before canary")

            // Options not given keep their values.
            try sandbox.ok(
                "shadow", "orders", "--percent", "25", "--methods", "get,post", "--noise-percent", "5", "--secondary",
                "legacy", "--sticky", "header:X-User-Id")
            policy = try #require(try Self.policy(sandbox))
            #expect(policy["to"] as? String == "orders-v2")
            #expect(policy["percent"] as? Double == 25)
            #expect(policy["methods"] as? [String] == ["GET", "POST"])
            #expect(policy["noise_percent"] as? Double == 5)
            #expect(policy["secondary"] as? String == "legacy")
            #expect(policy["stickiness"] as? String == "header:X-User-Id")

            // Repeating a change is harmless: no revision, a note.
            let again = try sandbox.ok("shadow", "orders", "--percent", "25")
            #expect(again.revision == 6)
            #expect(again.stderr.contains("nothing to change"))

            // The undo options return to the defaults; `set` is the explicit form.
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            try sandbox.ok(
                "shadow", "set", "orders", "--other-side", "--safe-methods", "--no-secondary", "--no-sticky")
            policy = try #require(try Self.policy(sandbox))
            #expect(policy["to"] == nil)
            #expect(policy["methods"] == nil)
            #expect(policy["secondary"] == nil)
            #expect(policy["stickiness"] == nil)
            #expect(policy["percent"] as? Double == 25)
            let shown = try sandbox.ok("shadow", "show", "orders").stdout
            #expect(shown.contains("the route's other side (now orders-v2)"))

            let off = try sandbox.ok("shadow", "orders", "--off", "--author", "ops")
            #expect(off.revision == 9)
            #expect(try Self.policy(sandbox) == nil)
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("shadow   none"))
            #expect(try sandbox.ok("shadow", "show", "orders").stdout.contains("route 'orders' is not shadowed"))
            // Back on: a new policy starts from the defaults, not from the removed one.
            try sandbox.ok("shadow", "orders")
            policy = try #require(try Self.policy(sandbox))
            #expect(policy["percent"] as? Double == 100)
        }

        @Test func ignoreAndUnignore() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.refused(
                ["shadow", "ignore", "orders", "$.meta.generatedAt"], status: 1,
                mentioning: "route 'orders' is not shadowed: start with 'ficus shadow orders")
            try sandbox.ok("shadow", "orders", "--to", "orders-v2")
            try sandbox.ok("shadow", "ignore", "orders", "$.meta.generatedAt", "$.items[*].updatedAt", "header:X-Trace")
            try sandbox.ok("shadow", "ignore", "orders", "status", "$.meta.generatedAt")
            var policy = try #require(try Self.policy(sandbox))
            let ignored = ["$.meta.generatedAt", "$.items[*].updatedAt", "header:X-Trace", "status"]
            #expect(policy["ignore"] as? [String] == ignored)
            let unchanged = try sandbox.ok("shadow", "ignore", "orders", "status")
            #expect(unchanged.stderr.contains("nothing to change"))

            try sandbox.ok("shadow", "unignore", "orders", "$.items[*].updatedAt", "status")
            policy = try #require(try Self.policy(sandbox))
            #expect(policy["ignore"] as? [String] == ["$.meta.generatedAt", "header:X-Trace"])
            try sandbox.refused(
                ["shadow", "unignore", "orders", "$.meta.generatedAt", "$.nope"], status: 1,
                mentioning: "no ignored path '$.nope' (known: $.meta.generatedAt, header:X-Trace)")
            try sandbox.refused(["shadow", "ignore", "orders"], status: 2)
        }

        @Test func sensitiveHeadersAndPaths() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("shadow", "orders", "--to", "orders-v2")
            try sandbox.ok(
                "shadow", "sensitive", "orders", "--header", "X-Api-Key", "--header", "X-Session", "--path",
                "$..password", "--path", "$.card.number")
            // Header names compare in any case, so this adds only the path.
            try sandbox.ok("shadow", "sensitive", "orders", "--header", "x-api-key", "--path", "$.ssn")
            var policy = try #require(try Self.policy(sandbox))
            #expect(policy["sensitive_headers"] as? [String] == ["X-Api-Key", "X-Session"])
            #expect(policy["sensitive_paths"] as? [String] == ["$..password", "$.card.number", "$.ssn"])
            let shown = try sandbox.ok("shadow", "show", "orders").stdout
            #expect(
                shown.contains("sensitive  headers Authorization, Cookie, Set-Cookie, Proxy-Authorization, X-Api-Key"))
            #expect(shown.contains("paths $..password, $.card.number, $.ssn"))

            try sandbox.ok("shadow", "sensitive", "orders", "--remove", "--header", "X-API-KEY", "--path", "$.ssn")
            policy = try #require(try Self.policy(sandbox))
            #expect(policy["sensitive_headers"] as? [String] == ["X-Session"])
            #expect(policy["sensitive_paths"] as? [String] == ["$..password", "$.card.number"])
            try sandbox.refused(
                ["shadow", "sensitive", "orders", "--remove", "--header", "X-Nope"], status: 1,
                mentioning: "no sensitive header 'X-Nope' (known: X-Session)")
            try sandbox.refused(
                ["shadow", "sensitive", "orders"], status: 2, mentioning: "give at least one --header NAME or --path")
            try sandbox.refused(
                ["shadow", "sensitive", "orders", "--header", "X Bad"], status: 2,
                mentioning: "--header 'X Bad' is not a header name")
            try sandbox.refused(
                ["shadow", "sensitive", "orders", "--path", "header:X-Key"], status: 2,
                mentioning: "headers are hidden with sensitive_headers")
        }

        @Test func showAndRouteShow() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.refused(["shadow", "show", "nope"], status: 1, mentioning: "no route 'nope' (known: orders)")
            try sandbox.ok("shadow", "orders", "--to", "orders-v2", "--percent", "12.5", "--sticky", "cookie:uid")
            try sandbox.ok("shadow", "ignore", "orders", "$.meta.generatedAt")
            let show = try sandbox.ok("shadow", "show", "orders").stdout
            #expect(show.contains("shadow of route 'orders'"))
            #expect(show.contains("to         orders-v2\n"))
            #expect(
                show.contains("percent    12.5% of GET,HEAD,OPTIONS (the safe ones) requests, sampled by cookie:uid"))
            #expect(show.contains("noise      10% of shadowed safe requests answered again by the serving side"))
            #expect(show.contains("ignore     $.meta.generatedAt"))
            let route = try sandbox.ok("route", "show", "orders").stdout
            #expect(route.contains("  shadow\n    to         orders-v2\n"))
            let json = try decodeJSON(try sandbox.ok("route", "show", "orders", "--json").stdout) as? [String: Any]
            let shadow = json?["shadow"] as? [String: Any]
            #expect(shadow?["percent"] as? Double == 12.5)
            #expect(shadow?["ignore"] as? [String] == ["$.meta.generatedAt"])
        }

        @Test func yamlRoundTrip() throws {
            let first = try Sandbox().seeded()
            try first.ok(
                "shadow", "orders", "--to", "orders-v2", "--percent", "12.5", "--methods", "GET,POST",
                "--noise-percent", "0", "--secondary", "legacy", "--sticky", "header:X-User-Id")
            try first.ok("shadow", "ignore", "orders", "$.meta.generatedAt", "status")
            try first.ok("shadow", "sensitive", "orders", "--header", "X-Api-Key", "--path", "$..password")
            let exported = try first.ok("export").stdout
            #expect(exported.contains("  shadow:\n    to: orders-v2\n    percent: 12.5\n"))
            #expect(exported.contains("    noise_percent: 0\n"))
            let file = try first.write("exported.yaml", exported)
            #expect(try first.bare(["validate", file]).status == 0)
            #expect(try first.ok("apply", file).stdout.contains("No changes"))

            let second = try Sandbox()
            try second.ok("init")
            try second.ok("apply", file)
            #expect(RulesFiles.body(try second.ok("export").stdout) == RulesFiles.body(exported))
            let firstPolicy = try first.ok("shadow", "show", "orders", "--json").stdout
            #expect(try second.ok("shadow", "show", "orders", "--json").stdout == firstPolicy)

            // A hand-written block with the defaults left out applies, and a change is planned as one.
            let written = try second.write(
                "orders.yaml",
                RulesFiles.body(exported).replacingOccurrences(
                    of: "    percent: 12.5\n", with: "    percent: 50\n"))
            let plan = try second.ok("apply", written)
            #expect(plan.stdout.contains("~ route orders"))
            #expect(try Self.policy(second)?["percent"] as? Double == 50)
        }

        @Test func theExampleRulesShadowTheOrdersRoute() throws {
            let sandbox = try Sandbox()
            try sandbox.ok("init", "--from", RulesFiles.rules)
            let policy = try #require(try Self.policy(sandbox))
            #expect(policy["to"] as? String == "orders-v2")
            #expect(policy["percent"] as? Double == 100)
            #expect(policy["ignore"] as? [String] == ["$.meta.generatedAt"])
        }

        @Test func rulesFileProblemsAreLocated() throws {
            let sandbox = try Sandbox()
            let base = """
                upstreams:
                  - name: legacy
                    addresses: [127.0.0.1:9001]
                  - name: orders-v2
                    addresses: [127.0.0.1:9002]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    shadow:
                      to: orders-v2

                """
            let unknownKey = try sandbox.write("unknown.yaml", base + "      noise_pct: 5\n")
            var result = try sandbox.bare(["validate", unknownKey])
            #expect(result.status == 3)
            #expect(
                result.stderr.contains(
                    "unknown.yaml:12:7: route 'orders': shadow: unknown field 'noise_pct' (expected one of: ignore, "
                        + "methods, noise_percent, percent,"),
                "\(result)")
            let badValues = try sandbox.write(
                "values.yaml",
                base.replacingOccurrences(of: "to: orders-v2", with: "to: nope")
                    + "      percent: 150\n      ignore: ['$.a[', 'oops']\n      sensitive_paths: ['$..ok']\n")
            result = try sandbox.bare(["validate", badValues])
            #expect(result.status == 3)
            #expect(result.stderr.contains("values.yaml:11:11: route 'orders': shadow.to: unknown upstream 'nope'"))
            #expect(
                result.stderr.contains("values.yaml:12:16: route 'orders': shadow.percent: must be between 0 and 100"))
            #expect(result.stderr.contains("route 'orders': shadow.ignore: '$.a[' is not a JSON path"), "\(result)")
            #expect(result.stderr.contains("'oops' is not a JSON path"), "\(result)")
            #expect(result.stderr.contains("4 problems"), "\(result)")
            let badType = try sandbox.write("type.yaml", base + "      percent: lots\n")
            result = try sandbox.bare(["validate", badType])
            #expect(result.status == 3)
            #expect(result.stderr.contains("type.yaml:12:16: route 'orders': shadow: percent: expected Double"))
        }

        @Test func badInputLeavesTheStoreUnchanged() throws {
            let sandbox = try Sandbox().seeded()
            // The seeded route has no other side, so the shadow upstream must be named.
            try sandbox.refused(
                ["shadow", "orders"], status: 3,
                mentioning: "route 'orders': shadow.to: the route has no other side yet")
            try sandbox.refused(
                ["shadow", "nope", "--to", "orders-v2"], status: 1, mentioning: "no route 'nope' (known: orders)")
            try sandbox.refused(
                ["shadow", "orders", "--to", "missing"], status: 1,
                mentioning: "no upstream 'missing' (known: legacy, orders-v2)")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--secondary", "missing"], status: 1,
                mentioning: "no upstream 'missing'")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--percent", "150"], status: 3,
                mentioning: "route 'orders': shadow.percent: must be between 0 and 100, got 150.0")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--noise-percent", "101"], status: 3,
                mentioning: "shadow.noise_percent: must be between 0 and 100")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--percent", "lots"], status: 2,
                mentioning: "The value 'lots' is invalid for '--percent <n>'")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--methods", "GET,BAD METHOD"], status: 3,
                mentioning: "invalid method 'BAD METHOD'")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--methods", ","], status: 2,
                mentioning: "name at least one method, or use --safe-methods")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--sticky", "bogus"], status: 2,
                mentioning: "--sticky 'bogus': expected header:NAME")
            try sandbox.refused(
                ["shadow", "orders", "--to", "orders-v2", "--other-side"], status: 2,
                mentioning: "give --to or --other-side, not both")
            try sandbox.refused(["shadow", "orders", "--off", "--percent", "5"], status: 2, mentioning: "give it alone")

            try sandbox.ok("shadow", "orders", "--to", "orders-v2")
            try sandbox.refused(
                ["shadow", "ignore", "orders", "$.items["], status: 2, mentioning: "'$.items[' is not a JSON path")
            try sandbox.refused(
                ["shadow", "ignore", "orders", "meta.generatedAt"], status: 2,
                mentioning: "'meta.generatedAt' is not a JSON path such as $.meta.generatedAt")
            try sandbox.refused(
                ["shadow", "ignore", "orders", "header:"], status: 2, mentioning: "'' is not a header name")
            try sandbox.refused(
                ["shadow", "sensitive", "orders", "--path", "$.a..", "--header", "X-Ok"], status: 2,
                mentioning: "--path '$.a..' is not a JSON path")
            // The shadow upstream cannot be removed from under the policy.
            try sandbox.refused(
                ["upstream", "rm", "orders-v2"], status: 1, mentioning: "still used by route 'orders' (shadow)")
        }
    }
}
