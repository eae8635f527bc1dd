import Foundation
import Testing

extension CLITests {
    /// Rule names are never reused: buckets hash them, so a retired name would give a new rule the old one's users.
    @Suite struct RuleNames {
        /// The seeded sandbox with rule `orders-beta` added in revision 5 and removed in revision 6, and the export
        /// of revision 5 written to `with-beta.yaml`.
        static func sandboxWithRetiredRule() throws -> (sandbox: Sandbox, file: String) {
            let sandbox = try Sandbox().seeded()
            #expect(try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta").revision == 5)
            let file = try sandbox.write("with-beta.yaml", try sandbox.ok("export").stdout)
            #expect(try sandbox.ok("rule", "rm", "orders", "orders-beta").revision == 6)
            return (sandbox, file)
        }

        /// The names of the rules of route `route`, in order.
        static func ruleNames(_ sandbox: Sandbox, route: String) throws -> [String] {
            let shown = try decodeJSON(try sandbox.ok("route", "show", route, "--json").stdout) as? [String: Any]
            let rules = shown?["rules"] as? [[String: Any]] ?? []
            return rules.compactMap { $0["name"] as? String }
        }

        @Test func aRuleAddedAfterOneWasRemovedGetsAFreshDefaultName() throws {
            let (sandbox, _) = try Self.sandboxWithRetiredRule()
            #expect(try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta").revision == 7)
            #expect(try Self.ruleNames(sandbox, route: "orders") == ["orders-beta-2"])
            try sandbox.ok("rule", "rm", "orders", "orders-beta-2")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            #expect(try Self.ruleNames(sandbox, route: "orders") == ["orders-beta-3"])
        }

        @Test func anExplicitRetiredNameIsRefusedWithExit3() throws {
            let (sandbox, _) = try Self.sandboxWithRetiredRule()
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--percent", "10", "--name", "orders-beta"],
                status: 3,
                mentioning: "rule name 'orders-beta' was used before (route 'orders', revision 5) and is retired"
            )
            // A name in use now is still an ordinary duplicate (exit 1), and a new name is fine.
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--percent", "10", "--name", "orders-pct")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--always", "--name", "orders-pct"],
                status: 1,
                mentioning: "rule 'orders-pct' already exists"
            )
        }

        @Test func applyRefusesARetiredNameEvenInADryRun() throws {
            let (sandbox, file) = try Self.sandboxWithRetiredRule()
            for arguments in [["apply", file, "--dry-run"], ["apply", file], ["apply", "--merge", file]] {
                try sandbox.refused(
                    arguments,
                    status: 3,
                    mentioning: "with-beta.yaml:16:5: route 'orders': rule 1 ('orders-beta'): rule name 'orders-beta' "
                        + "was used before and is retired"
                )
            }
            // Renamed, the same rule is a new rule and applies.
            let renamed = try sandbox.write(
                "renamed.yaml",
                try String(contentsOfFile: file, encoding: .utf8)
                    .replacingOccurrences(of: "name: orders-beta", with: "name: orders-beta-v2")
            )
            #expect(try sandbox.ok("apply", renamed).revision == 7)
        }

        @Test func rollbackRestoresRetiredRulesForOneRouteOrAll() throws {
            let (sandbox, _) = try Self.sandboxWithRetiredRule()
            #expect(try sandbox.ok("rollback", "--route", "orders", "--to", "5").revision == 7)
            #expect(try Self.ruleNames(sandbox, route: "orders") == ["orders-beta"])
            try sandbox.ok("rule", "rm", "orders", "orders-beta")
            #expect(try sandbox.ok("rollback", "--to", "5").revision == 9)
            #expect(try Self.ruleNames(sandbox, route: "orders") == ["orders-beta"])
        }
    }
}
