import Foundation
import Testing

extension CLITests {
    /// Every command's normal use, through the built binary.
    @Suite struct Commands {
        @Test func initCreatesTheStoreAndOtherCommandsRefuseAMissingOne() throws {
            let sandbox = try Sandbox()
            let missing = try sandbox.ficus("status")
            #expect(missing.status == 1)
            #expect(missing.stderr.contains("no store at"))
            #expect(!FileManager.default.fileExists(atPath: sandbox.store))
            let created = try sandbox.ok("init")
            #expect(created.stdout == "revision 0\n")
            #expect(FileManager.default.fileExists(atPath: sandbox.store))
            let again = try sandbox.ok("init")
            #expect(again.stdout == "revision 0\n")
            let status = try sandbox.ok("status")
            #expect(status.stdout.contains("revision 0"))
        }

        @Test func theStoreComesFromFICUS_STOREWhenNoOptionIsGiven() throws {
            let sandbox = try Sandbox()
            let path = sandbox.directory.appendingPathComponent("env.sqlite").path
            #expect(try sandbox.bare(["init"], environment: ["FICUS_STORE": path]).status == 0)
            #expect(FileManager.default.fileExists(atPath: path))
            let added = try sandbox.bare(["flag", "on", "x"], environment: ["FICUS_STORE": path])
            #expect(added.stdout == "revision 1\n")
            let defaultPath = try sandbox.bare(["init"])
            #expect(defaultPath.status == 0)
            #expect(
                FileManager.default.fileExists(atPath: sandbox.directory.appendingPathComponent("ficus.sqlite").path))
        }

        @Test func upstreams() throws {
            let sandbox = try Sandbox().seeded()
            #expect(try sandbox.ok("upstream", "add", "users-v2", "127.0.0.1:9003", "127.0.0.1:9004").revision == 5)
            try sandbox.ok(
                "upstream", "add", "bg", "--blue", "127.0.0.1:9005", "--green", "127.0.0.1:9006", "--active", "green")
            try sandbox.ok("upstream", "set", "users-v2", "[::1]:9007")
            try sandbox.ok("upstream", "set", "bg", "--active", "blue")
            let table = try sandbox.ok("upstream", "list").stdout
            #expect(Columns.collapsed(table).contains("users-v2 [::1]:9007"))
            #expect(table.contains("active blue; blue 127.0.0.1:9005; green 127.0.0.1:9006"))
            let json = try decodeJSON(try sandbox.ok("upstream", "list", "--json").stdout) as? [[String: Any]]
            #expect(json?.map { $0["name"] as? String } == ["legacy", "orders-v2", "users-v2", "bg"])
            try sandbox.ok("upstream", "rm", "bg", "--reason", "unused")
            #expect(!(try sandbox.ok("upstream", "list").stdout.contains("bg")))
        }

        @Test func routes() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok(
                "route", "add", "users", "--path", "/users/{id}", "--to", "legacy", "--host", "api.example.com",
                "--methods", "get,post")
            try sandbox.ok(
                "route", "set", "users", "--rewrite", "orders-v2:/users->/v2/users", "--connect-timeout", "250",
                "--any-host")
            let show = try sandbox.ok("route", "show", "users").stdout
            #expect(Columns.collapsed(show).contains("match * /users/{id} [GET,POST]"))
            #expect(Columns.collapsed(show).contains("rewrite for orders-v2: path /users -> /v2/users"))
            #expect(Columns.collapsed(show).contains("connect timeout 250 ms"))
            let json = try decodeJSON(try sandbox.ok("route", "show", "users", "--json").stdout) as? [String: Any]
            #expect(json?["legacy"] as? String == "legacy")
            #expect(json?["methods"] as? [String] == ["GET", "POST"])
            #expect((json?["timeouts"] as? [String: Any])?["connect_milliseconds"] as? Int == 250)
            #expect(((json?["rewrites"] as? [String: Any])?["orders-v2"] as? [String: Any]) != nil)
            let list = try sandbox.ok("route", "list").stdout
            #expect(Columns.collapsed(list).contains("orders * /orders"))
            try sandbox.ok("route", "set", "users", "--no-rewrite", "orders-v2", "--no-timeouts", "--any-method")
            #expect(Columns.collapsed(try sandbox.ok("route", "show", "users").stdout).contains("match * /users/{id}\n"))
            try sandbox.ok("route", "rm", "users")
            #expect(!(try sandbox.ok("route", "list").stdout.contains("users")))
        }

        @Test func rules() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("flag", "on", "canary")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            try sandbox.ok(
                "rule", "add", "orders", "--to", "orders-v2", "--percent", "10", "--sticky", "header:X-User-Id",
                "--flag", "canary")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--version", ">=2 <3")
            try sandbox.ok(
                "rule", "add", "orders", "--to", "orders-v2", "--version", "2", "--version-header", "Accept",
                "--version-parameter", "version", "--name", "media")
            try sandbox.ok(
                "rule", "add", "orders", "--to", "orders-v2", "--header", "X-Tenant=acme", "--method", "POST",
                "--at", "1")
            var show = try sandbox.ok("route", "show", "orders").stdout
            #expect(show.contains("1. 'orders-header': all(header:X-Tenant equals acme, method [POST]) → orders-v2"))
            #expect(show.contains("2. 'orders-beta': segment 'beta' → orders-v2"))
            #expect(
                show.contains(
                    "3. 'orders-canary': all(flag 'canary', percentage 10) → orders-v2 (sticky header:X-User-Id)"))
            #expect(show.contains("4. 'orders-version': version header X-API-Version in >=2 <3 → orders-v2"))
            #expect(show.contains("5. 'media': version header Accept parameter version = 2 → orders-v2"))
            try sandbox.ok("rule", "move", "orders", "media", "--position", "1")
            try sandbox.ok("rule", "rm", "orders", "2")
            try sandbox.ok("rule", "rm", "orders", "orders-version")
            show = try sandbox.ok("route", "show", "orders").stdout
            #expect(show.contains("1. 'media'"))
            #expect(show.contains("2. 'orders-beta'"))
            #expect(show.contains("3. 'orders-canary'"))
            #expect(!show.contains("orders-header"))
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            #expect(try sandbox.ok("route", "show", "orders").stdout.contains("'orders-beta-2'"))
        }

        @Test func segmentsAndFlags() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("segment", "add", "office", "--ip", "10.0.0.0/8", "--ip", "192.168.0.0/16")
            try sandbox.ok("segment", "add", "gold", "--match", "header:X-Plan in gold,platinum", "--case-insensitive")
            try sandbox.ok("segment", "add", "testers", "--ids", "header:X-User-Id=1,2,3")
            try sandbox.ok("segment", "add", "beta", "--cookie", "beta=yes", "--replace")
            let list = try sandbox.ok("segment", "list").stdout
            #expect(Columns.collapsed(list).contains("office client_ip in [10.0.0.0/8, 192.168.0.0/16]"))
            #expect(Columns.collapsed(list).contains("gold header:X-Plan in [gold, platinum] (case-insensitive)"))
            #expect(Columns.collapsed(list).contains("beta cookie:beta equals yes"))
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "gold")
            let show = try sandbox.ok("segment", "show", "gold").stdout
            #expect(show.contains("used by: route 'orders' rule 'orders-gold'"))
            try sandbox.ok("segment", "rm", "testers")
            try sandbox.ok("flag", "on", "new-checkout")
            try sandbox.ok("flag", "off", "new-checkout")
            try sandbox.ok("flag", "on", "spare")
            try sandbox.ok("flag", "rm", "spare")
            let flags = try decodeJSON(try sandbox.ok("flag", "list", "--json").stdout) as? [[String: Any]]
            #expect(flags?.count == 1)
            #expect(flags?.first?["enabled"] as? Bool == false)
            let repeated = try sandbox.ok("flag", "off", "new-checkout")
            #expect(repeated.stderr.contains("nothing to change"))
        }

        @Test func flipKillUnkillAndRollback() throws {
            let sandbox = try Sandbox().seeded()
            #expect(try sandbox.ok("flip", "orders", "--to", "orders-v2", "--reason", "canary done").revision == 5)
            var route = try decodeJSON(try sandbox.ok("route", "show", "orders", "--json").stdout) as? [String: Any]
            #expect(route?["default"] as? String == "orders-v2")
            #expect(route?["legacy"] as? String == "legacy")
            #expect(try sandbox.ok("kill").revision == 6)
            var status = try decodeJSON(try sandbox.ok("status", "--json").stdout) as? [String: Any]
            #expect(status?["killed"] as? Bool == true)
            #expect((status?["routes"] as? [[String: Any]])?.first?["now"] as? String == "legacy (killed)")
            try sandbox.ok("upstream", "add", "orders-v3", "127.0.0.1:9010")
            #expect(try sandbox.ok("unkill").revision == 8)
            status = try decodeJSON(try sandbox.ok("status", "--json").stdout) as? [String: Any]
            #expect(status?["killed"] as? Bool == false)
            #expect((status?["routes"] as? [[String: Any]])?.first?["now"] as? String == "all → orders-v2")
            try sandbox.ok("flip", "orders", "--back")
            route = try decodeJSON(try sandbox.ok("route", "show", "orders", "--json").stdout) as? [String: Any]
            #expect(route?["default"] as? String == "legacy")
            // Whole rollback: back to revision 5 (flipped, not killed, no orders-v3).
            #expect(try sandbox.ok("rollback", "--to", "5").revision == 10)
            let upstreams = try sandbox.ok("upstream", "list").stdout
            #expect(!upstreams.contains("orders-v3"))
            route = try decodeJSON(try sandbox.ok("route", "show", "orders", "--json").stdout) as? [String: Any]
            #expect(route?["default"] as? String == "orders-v2")
            // Default rollback: the revision before the newest.
            #expect(try sandbox.ok("rollback").revision == 11)
            #expect(try sandbox.ok("upstream", "list").stdout.contains("orders-v3"))
        }

        @Test func rollbackOfOneRouteLeavesTheOthers() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("route", "add", "users", "--prefix", "/users", "--to", "legacy")
            try sandbox.ok("flip", "orders", "--to", "orders-v2")
            try sandbox.ok("flip", "users", "--to", "orders-v2")
            try sandbox.ok("rule", "add", "orders", "--to", "legacy", "--segment", "beta")
            // Restore orders as of revision 5 (before its flip): users stays flipped.
            try sandbox.ok("rollback", "--route", "orders", "--to", "5")
            let orders = try decodeJSON(try sandbox.ok("route", "show", "orders", "--json").stdout) as? [String: Any]
            let users = try decodeJSON(try sandbox.ok("route", "show", "users", "--json").stdout) as? [String: Any]
            #expect(orders?["default"] as? String == "legacy")
            #expect(orders?["rules"] == nil || (orders?["rules"] as? [Any])?.isEmpty == true)
            #expect(users?["default"] as? String == "orders-v2")
            // A route that did not exist at the revision is removed.
            try sandbox.ok("rollback", "--route", "users", "--to", "4")
            #expect(!(try sandbox.ok("route", "list").stdout.contains("users")))
            let history =
                try decodeJSON(try sandbox.ok("history", "--route", "users", "--json").stdout) as? [[String: Any]]
            #expect(history?.count == 3)
        }

        @Test func historyAndDiff() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("flip", "orders", "--to", "orders-v2", "--reason", "cut over", "--author", "alice")
            let table = try sandbox.ok("history", "--limit", "2").stdout.split(separator: "\n")
            #expect(table.count == 3)
            #expect(table[1].hasPrefix("5 "))
            #expect(table[1].contains("alice"))
            #expect(table[1].contains("cut over"))
            #expect(table[1].contains("~ route orders: default legacy → orders-v2"))
            let json = try decodeJSON(try sandbox.ok("history", "--json").stdout) as? [[String: Any]]
            #expect(json?.count == 5)
            #expect(json?.first?["author"] as? String == "alice")
            #expect(json?.last?["author"] as? String == "tester")
            let diff = try sandbox.ok("diff", "2", "5").stdout
            #expect(diff.contains("+ route orders"))
            #expect(diff.contains("+ segment beta"))
            let same = try sandbox.ok("diff", "5", "5").stdout
            #expect(same.contains("identical"))
            let diffJSON = try decodeJSON(try sandbox.ok("diff", "4", "5", "--json").stdout) as? [[String: Any]]
            #expect(diffJSON?.first?["object"] as? String == "route orders")
        }

        @Test func explainSaysWhichRuleAndWhy() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            try sandbox.ok(
                "rule", "add", "orders", "--to", "orders-v2", "--percent", "100", "--sticky", "cookie:uid",
                "--cookie", "region=eu")
            let beta = try sandbox.ok("explain", "GET", "http://shop.example.com/orders/7", "-H", "X-Beta: 1").stdout
            #expect(beta.contains("rule 1 'orders-beta': matches"))
            #expect(beta.contains("=> orders-v2 (rule 'orders-beta')"))
            let cookie = try sandbox.ok(
                "explain", "GET", "/orders", "--cookie", "region=eu", "--cookie", "uid=42",
                "--ip", "10.1.2.3", "--json"
            ).stdout
            let json = try decodeJSON(cookie) as? [String: Any]
            #expect(json?["rule"] as? String == "orders-canary")
            #expect(json?["upstream"] as? String == "orders-v2")
            #expect(json?["bucket"] as? Int != nil)
            let none = try decodeJSON(try sandbox.ok("explain", "GET", "/nothing", "--json").stdout) as? [String: Any]
            #expect(none?["reason"] as? String == "no_route")
            #expect(none?["upstream"] == nil)
        }

        @Test func statusShowsRoutesRevisionAndProxies() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            let status = try sandbox.ok("status").stdout
            #expect(status.contains("revision 5 by tester"))
            let row = "orders  * /orders  legacy  legacy   segment 'beta' → orders-v2; rest → legacy"
            #expect(status.contains(row))
            #expect(status.contains("no proxy seen"))
        }

        @Test func usageErrorsExitWith2() throws {
            let sandbox = try Sandbox()
            #expect(try sandbox.bare(["bogus"]).status == 2)
            #expect(try sandbox.bare(["route", "add", "x"]).status == 2)
            #expect(try sandbox.bare(["route", "add", "x", "--to", "legacy"]).status == 2)
            #expect(try sandbox.bare(["history", "--limit", "many"]).status == 2)
            #expect(try sandbox.bare(["--help"]).status == 0)
        }

        @Test func shellCompletionsAreGenerated() throws {
            let sandbox = try Sandbox()
            for shell in ["bash", "zsh", "fish"] {
                let script = try sandbox.bare(["--generate-completion-script", shell])
                #expect(script.status == 0)
                #expect(script.stdout.contains("rollback"))
            }
        }
    }
}

/// Table output compared by its words, not by the padding that aligns its columns (which moves whenever a longer name
/// appears); what a table says exactly is checked through `--json` where the command has it.
enum Columns {
    /// `text` with every run of spaces made one space.
    static func collapsed(_ text: String) -> String {
        text.replacingOccurrences(of: " {2,}", with: " ", options: .regularExpression)
    }
}
