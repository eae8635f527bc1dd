import Foundation
import Testing

extension CLITests {
    /// Bad input is refused with a precise message and the right exit code, and leaves the store byte for byte as it
    /// was (see `Sandbox.Snapshot` for how that is established).
    @Suite struct BadInput {
        @Test func upstreamCommands() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.refused(
                ["upstream", "add", "legacy", "127.0.0.1:1"], status: 1, mentioning: "upstream 'legacy' already exists")
            try sandbox.refused(
                ["upstream", "add", "x", "nohost"], status: 2, mentioning: "ADDR 'nohost': expected HOST:PORT")
            try sandbox.refused(["upstream", "add", "x"], status: 2, mentioning: "needs addresses")
            try sandbox.refused(
                ["upstream", "set", "nope", "127.0.0.1:1"], status: 1,
                mentioning: "no upstream 'nope' (known: legacy, orders-v2)")
            try sandbox.refused(["upstream", "rm", "nope"], status: 1, mentioning: "no upstream 'nope'")
            try sandbox.refused(
                ["upstream", "rm", "legacy"], status: 1, mentioning: "still used by route 'orders' (legacy, default)")
            try sandbox.refused(
                ["upstream", "add", "x", "127.0.0.1:99999"], status: 2, mentioning: "expected HOST:PORT")
        }

        @Test func routeCommands() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.refused(
                ["route", "add", "users", "--prefix", "/users", "--to", "missing"], status: 1,
                mentioning: "no upstream 'missing'")
            try sandbox.refused(
                ["route", "add", "orders", "--prefix", "/o", "--to", "legacy"], status: 1,
                mentioning: "route 'orders' already exists")
            try sandbox.refused(
                ["route", "add", "bad", "--prefix", "orders", "--to", "legacy"], status: 3,
                mentioning: "route 'bad': path:")
            try sandbox.refused(
                ["route", "add", "same", "--prefix", "/orders", "--to", "legacy"], status: 3, mentioning: "unreachable")
            try sandbox.refused(
                ["route", "set", "nope", "--host", "x.example.com"], status: 1,
                mentioning: "no route 'nope' (known: orders)")
            try sandbox.refused(
                ["route", "set", "orders", "--default", "missing"], status: 1, mentioning: "no upstream 'missing'")
            try sandbox.refused(
                ["route", "set", "orders", "--rewrite", "orders-v2/api"], status: 2,
                mentioning: "UPSTREAM:PREFIX->REPLACEMENT")
            try sandbox.refused(
                ["route", "set", "orders", "--rewrite", "missing:/a->/b"], status: 3,
                mentioning: "rewrites 'missing': unknown upstream 'missing'")
            try sandbox.refused(["route", "rm", "nope"], status: 1, mentioning: "no route 'nope'")
        }

        @Test func ruleCommands() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta")
            try sandbox.refused(
                ["rule", "add", "nope", "--to", "orders-v2", "--segment", "beta"], status: 1,
                mentioning: "no route 'nope'")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "missing", "--segment", "beta"], status: 1,
                mentioning: "no upstream 'missing'")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--segment", "gamma"],
                status: 3,
                mentioning: "route 'orders': rule 2 ('orders-gamma'): unknown segment 'gamma'"
            )
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--percent", "150"], status: 3,
                mentioning: "percentage 150 is outside 0–100")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--flag", "nope"], status: 3,
                mentioning: "unknown flag 'nope'")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2"], status: 2, mentioning: "a rule needs a condition")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--segment", "beta", "--name", "orders-beta"], status: 1,
                mentioning: "rule 'orders-beta' already exists")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--sticky", "header:X", "--segment", "beta"], status: 2,
                mentioning: "--sticky only applies with --percent")
            try sandbox.refused(
                ["rule", "add", "orders", "--to", "orders-v2", "--version", ">=2 <<3"], status: 3,
                mentioning: "bad semver range")
            try sandbox.refused(
                ["rule", "rm", "orders", "nope"], status: 1, mentioning: "no rule 'nope' (known: orders-beta)")
            try sandbox.refused(["rule", "rm", "orders", "2"], status: 1, mentioning: "no rule '2'")
            try sandbox.refused(
                ["rule", "move", "orders", "orders-beta", "--position", "3"], status: 2, mentioning: "--position 3")
        }

        @Test func segmentAndFlagCommands() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.ok("flag", "on", "f")
            try sandbox.ok("rule", "add", "orders", "--to", "orders-v2", "--segment", "beta", "--flag", "f")
            try sandbox.refused(["segment", "add", "empty"], status: 2, mentioning: "a segment needs constraints")
            try sandbox.refused(
                ["segment", "add", "beta", "--header", "X=1"], status: 1, mentioning: "segment 'beta' already exists")
            try sandbox.refused(
                ["segment", "add", "net", "--ip", "10.0.0.0/33"], status: 3, mentioning: "bad CIDR '10.0.0.0/33'")
            try sandbox.refused(
                ["segment", "add", "re", "--match", "header:X regex ("], status: 3, mentioning: "bad regex")
            try sandbox.refused(
                ["segment", "add", "op", "--match", "header:X like y"], status: 2, mentioning: "unknown operator 'like'"
            )
            try sandbox.refused(["segment", "rm", "beta"], status: 3, mentioning: "unknown segment 'beta'")
            try sandbox.refused(["segment", "rm", "nope"], status: 1, mentioning: "no segment 'nope'")
            try sandbox.refused(["segment", "show", "nope"], status: 1, mentioning: "no segment 'nope'")
            try sandbox.refused(["flag", "rm", "f"], status: 3, mentioning: "unknown flag 'f'")
            try sandbox.refused(["flag", "rm", "nope"], status: 1, mentioning: "no flag 'nope'")
        }

        @Test func flipKillAndRollback() throws {
            let sandbox = try Sandbox().seeded()
            try sandbox.refused(["flip", "nope", "--to", "orders-v2"], status: 1, mentioning: "no route 'nope'")
            try sandbox.refused(["flip", "orders", "--to", "missing"], status: 1, mentioning: "no upstream 'missing'")
            try sandbox.refused(["flip", "orders"], status: 2, mentioning: "no blue/green slots")
            try sandbox.refused(["flip", "orders", "--to", "legacy", "--back"], status: 2, mentioning: "not both")
            try sandbox.refused(["rollback", "--to", "99"], status: 1, mentioning: "there is no revision 99")
            try sandbox.refused(["rollback", "--route", "nope", "--to", "2"], status: 1, mentioning: "no route 'nope'")
            try sandbox.refused(["diff", "1", "99"], status: 1, mentioning: "there is no revision 99")
            try sandbox.refused(
                ["explain", "GET", "/", "--ip", "not-an-ip"], status: 2, mentioning: "--ip 'not-an-ip'")
            try sandbox.refused(["history", "--limit", "0"], status: 2, mentioning: "--limit 0")
            try sandbox.refused(["export", "--revision", "99"], status: 1, mentioning: "there is no revision 99")
            // Rolling a route back to a revision whose upstream is gone is a validation failure.
            try sandbox.ok("upstream", "add", "temp", "127.0.0.1:9100")
            try sandbox.ok("flip", "orders", "--to", "temp")
            try sandbox.ok("flip", "orders", "--back")
            try sandbox.ok("upstream", "rm", "temp")
            try sandbox.refused(
                ["rollback", "--route", "orders", "--to", "6"], status: 3, mentioning: "unknown upstream 'temp'")
        }

        @Test func rulesFiles() throws {
            let sandbox = try Sandbox().seeded()
            let syntax = try sandbox.write("bad/syntax.yaml", "routes:\n  - name: a\n    legacy: [legacy\n")
            var result = try sandbox.refused(["apply", syntax], status: 3, mentioning: "syntax.yaml:4:1: YAML syntax")
            #expect(result.stderr.contains("started at 3:13"))
            let unknownField = try sandbox.write(
                "bad/field.yaml", "routes:\n  - name: a\n    path: /a\n    legacy: legacy\n    defualt: x\n")
            try sandbox.refused(
                ["apply", "--merge", unknownField], status: 3,
                mentioning: "field.yaml:5:5: route 'a': unknown field 'defualt'")
            let missingUpstream = try sandbox.write(
                "bad/upstream.yaml",
                """
                upstreams:
                  - name: legacy
                    addresses: [127.0.0.1:9001]
                routes:
                  - name: orders
                    path: /orders
                    legacy: legacy
                    rules:
                      - name: to-v3
                        condition: {segment: beta}
                        upstream: orders-v3
                segments:
                  - name: beta
                    constraints: [{attribute: "header:X-Beta", op: exists}]

                """
            )
            result = try sandbox.refused(["apply", missingUpstream], status: 3)
            #expect(
                result.stderr.contains(
                    "upstream.yaml:9:9: route 'orders': rule 1 ('to-v3'): unknown upstream 'orders-v3'"))
            try sandbox.refused(
                ["apply", "--merge", missingUpstream], status: 3, mentioning: "upstream.yaml:9:9: route 'orders'")
            let wrongType = try sandbox.write("bad/type.yaml", "flags:\n  - name: f\n    enabled: maybe\n")
            try sandbox.refused(
                ["apply", wrongType], status: 3, mentioning: "type.yaml:3:14: flag 'f': enabled: expected true or false"
            )
            try sandbox.refused(
                ["apply", sandbox.directory.appendingPathComponent("none.yaml").path], status: 3,
                mentioning: "no such file")
            try sandbox.refused(["apply", "--expect-revision", "3", missingUpstream], status: 3)
            let fine = try sandbox.write("good/fine.yaml", "flags:\n  - name: f\n")
            try sandbox.refused(
                ["apply", "--merge", "--expect-revision", "3", fine], status: 1,
                mentioning: "the store is at revision 4, not 3")
            try sandbox.refused(["init", "--from", fine], status: 1, mentioning: "already holds revision 4")
        }

        @Test func aMissingOrForeignStoreIsRefusedAndNotCreated() throws {
            let sandbox = try Sandbox()
            let elsewhere = sandbox.directory.appendingPathComponent("typo.sqlite").path
            for command in [["status"], ["flip", "a", "--to", "b"], ["apply", "x.yaml"], ["export"], ["kill"]] {
                let result = try sandbox.ficus(command, store: elsewhere)
                #expect(result.status == 1, "\(command): \(result)")
                #expect(result.stderr.contains("no store at"))
            }
            #expect(!FileManager.default.fileExists(atPath: elsewhere))
            let foreign = try sandbox.write(
                "foreign.sqlite", "this is not a database, but it is long enough to look like a file header")
            let before = FileManager.default.contents(atPath: foreign)
            let result = try sandbox.ficus(["flag", "on", "x"], store: foreign)
            #expect(result.status == 1)
            #expect(result.stderr.contains("cannot be read"))
            #expect(FileManager.default.contents(atPath: foreign) == before)
        }
    }
}
