import Testing

@testable import FicusCore

@Suite("RoutingTable explain")
struct RoutingTableExplainTests {
    static let configuration = Configuration(
        upstreams: Fixtures.upstreams,
        routes: [
            Route(
                name: "orders",
                host: "api.example.com",
                path: "/orders/{id}",
                methods: ["GET"],
                legacy: "legacy",
                rules: [
                    Rule(name: "beta", condition: .segment("beta"), upstream: "orders-v3"),
                    Rule(name: "gated", condition: .all([.flag("v3"), .method(["GET"])]), upstream: "orders-v3"),
                    Rule(
                        name: "canary",
                        condition: .all([.header("X-Tenant", .notIn, ["blocked"]), .percentage(50)]),
                        upstream: "orders-v2",
                        stickiness: .header("X-User-Id")
                    ),
                ],
                rewrites: ["orders-v2": RequestRewrite(path: .strip("/orders"))]
            )
        ],
        segments: [
            Segment(
                name: "beta",
                constraints: [
                    Predicate(.header("X-Tenant"), .in, ["acme"]),
                    Predicate(.clientIP, .in, ["10.0.0.0/8"]),
                ]
            )
        ],
        flags: [Flag(name: "v3", enabled: false)]
    )

    static func userInCanary() throws -> String {
        try #require((0..<1000).map { "u-\($0)" }.first { Murmur3.bucket(group: "canary", value: $0) <= 50 })
    }

    @Test func explainsAMatchedRuleStepByStep() throws {
        let table = try RoutingTable(configuration: Self.configuration, revision: 4)
        let user = try Self.userInCanary()
        let bucket = Murmur3.bucket(group: "canary", value: user)
        let request = RequestFacts(
            method: "GET",
            target: "/orders/7?expand=1",
            headers: [("Host", "api.example.com:443"), ("X-Tenant", "globex"), ("X-User-Id", user)],
            clientAddress: IPAddress("10.1.2.3")
        )
        let explanation = table.explain(request)
        #expect(explanation.decision == table.decide(request))
        #expect(explanation.decision.upstream == "orders-v2")
        #expect(
            explanation.description == """
                request GET api.example.com /orders/7?expand=1 from 10.1.2.3
                route 'orders' matches (host api.example.com, path /orders/{id}, methods GET)
                rule 1 'beta': does not match
                  no  segment 'beta'
                    no  header:X-Tenant in [acme]: got "globex"
                rule 2 'gated': skipped, flag 'v3' is off
                rule 3 'canary': matches
                  yes all
                    yes header:X-Tenant not_in [blocked]: got "globex"
                    yes percentage 50: bucket \(bucket) from header:X-User-Id "\(user)"
                => orders-v2 (rule 'canary', bucket \(bucket), rewrite path /orders -> /)
                """
        )
        #expect(
            explanation.steps.prefix(2) == [
                .routeMatched(route: "orders", summary: "host api.example.com, path /orders/{id}, methods GET"),
                .ruleEvaluated(
                    position: 1,
                    rule: "beta",
                    matched: false,
                    trace: ConditionTrace(
                        text: "segment 'beta'",
                        result: false,
                        children: [ConditionTrace(text: "header:X-Tenant in [acme]: got \"globex\"", result: false)]
                    )
                ),
            ]
        )
    }

    @Test func explainsTheDefaultTheKillSwitchAndMissingRoutes() throws {
        let table = try RoutingTable(configuration: Self.configuration, revision: 4)
        let blocked = RequestFacts(
            target: "/orders/7",
            headers: [("Host", "api.example.com"), ("X-Tenant", "blocked")],
            clientAddress: nil
        )
        #expect(
            table.explain(blocked).description == """
                request GET api.example.com /orders/7
                route 'orders' matches (host api.example.com, path /orders/{id}, methods GET)
                rule 1 'beta': does not match
                  no  segment 'beta'
                    no  header:X-Tenant in [acme]: got "blocked"
                rule 2 'gated': skipped, flag 'v3' is off
                rule 3 'canary': does not match
                  no  all
                    no  header:X-Tenant not_in [blocked]: got "blocked"
                no rule matches: default upstream 'legacy' serves
                => legacy (route default)
                """
        )
        var killed = Self.configuration
        killed.killed = true
        let killedTable = try RoutingTable(configuration: killed, revision: 5)
        #expect(
            killedTable.explain(blocked).description == """
                request GET api.example.com /orders/7
                route 'orders' matches (host api.example.com, path /orders/{id}, methods GET)
                global kill switch is on: legacy upstream 'legacy' serves
                => legacy (killed)
                """
        )
        let missing = table.explain(RequestFacts(method: "POST", target: "http://api.example.com/orders/7"))
        #expect(missing.steps == [.noRoute])
        #expect(
            missing.description == """
                request POST api.example.com /orders/7
                no route matches
                => 404 (no route)
                """
        )
    }

    @Test func explainsAPercentageWithoutStickinessValue() throws {
        let table = try Fixtures.table(rules: [
            Rule(name: "half", condition: .percentage(50), upstream: "orders-v2", stickiness: .cookie("sid"))
        ])
        let explanation = table.explain(Fixtures.request(client: nil))
        #expect(
            explanation.steps.last == .routeDefault(upstream: "legacy")
        )
        #expect(
            explanation.description.contains(
                "  no  percentage 50: no bucket (no stickiness value and no client address)"
            )
        )
    }
}
