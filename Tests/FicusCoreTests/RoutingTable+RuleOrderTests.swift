import Testing

@testable import FicusCore

@Suite("RoutingTable rule order, defaults, kill switches, rewrites")
struct RoutingTableRuleOrderTests {
    static let acme = Condition.header("X-Tenant", .equals, ["acme"])
    static let acmeRequest = Fixtures.request(headers: [("X-Tenant", "acme")])

    @Test func firstMatchingRuleWins() throws {
        let table = try Fixtures.table(rules: [
            Rule(name: "post", condition: .method(["POST"]), upstream: "orders-v3"),
            Rule(name: "acme", condition: Self.acme, upstream: "orders-v2"),
            Rule(name: "acme-too", condition: Self.acme, upstream: "orders-v3"),
        ])
        let decision = table.decide(Self.acmeRequest)
        #expect(decision.upstream == "orders-v2")
        #expect(decision.rule == "acme")
        #expect(decision.reason == .rule)
        let post = table.decide(Fixtures.request(method: "POST", headers: [("X-Tenant", "acme")]))
        #expect(post.rule == "post")
        #expect(post.upstream == "orders-v3")
    }

    @Test func routeDefaultAppliesWhenNoRuleMatches() throws {
        var configuration = Fixtures.configuration(rules: [
            Rule(name: "acme", condition: Self.acme, upstream: "orders-v2")
        ])
        configuration.routes[0].defaultUpstream = "orders-v3"
        let table = try RoutingTable(configuration: configuration, revision: 1)
        let decision = table.decide(Fixtures.request())
        #expect(decision.upstream == "orders-v3")
        #expect(decision.rule == nil)
        #expect(decision.reason == .routeDefault)
        #expect(decision.bucket == nil)
    }

    @Test func flagOffDisablesTheRuleAndLaterRulesStillApply() throws {
        let rules = [
            Rule(name: "gated", condition: .all([.flag("orders-v2"), Self.acme]), upstream: "orders-v2"),
            Rule(name: "later", condition: Self.acme, upstream: "orders-v3"),
        ]
        let on = try Fixtures.table(rules: rules, flags: [Flag(name: "orders-v2", enabled: true)])
        #expect(on.decide(Self.acmeRequest).rule == "gated")
        let off = try Fixtures.table(rules: rules, flags: [Flag(name: "orders-v2", enabled: false)])
        #expect(off.decide(Self.acmeRequest).rule == "later")
    }

    @Test func globalKillSwitchSendsEverythingToLegacyAndRestoresOnRelease() throws {
        var configuration = Fixtures.configuration(
            rules: [Rule(name: "all-in", upstream: "orders-v2")],
            rewrites: ["orders-v2": RequestRewrite(path: .strip("/orders"))]
        )
        configuration.routes[0].defaultUpstream = "orders-v3"
        configuration.routes[0].timeouts = RouteTimeouts(connectMilliseconds: 250)
        let live = try RoutingTable(configuration: configuration, revision: 1)
        configuration.killed = true
        let killed = try RoutingTable(configuration: configuration, revision: 2)
        let decision = killed.decide(Fixtures.request())
        #expect(decision.upstream == "legacy")
        #expect(decision.route == "orders")
        #expect(decision.rule == nil)
        #expect(decision.rewrite == nil)
        #expect(decision.reason == .killed)
        #expect(decision.timeouts.connectMilliseconds == 250)
        configuration.killed = false
        let released = try RoutingTable(configuration: configuration, revision: 3)
        #expect(released.decide(Fixtures.request()) == live.decide(Fixtures.request()))
        #expect(released.decide(Fixtures.request()).upstream == "orders-v2")
    }

    @Test func rewriteFollowsTheTargetUpstream() throws {
        let rewrite = RequestRewrite(
            path: PathRewrite(prefix: "/orders", replacement: "/v2/orders"),
            setHeaders: [HeaderField(name: "X-Migrated", value: "1")],
            removeHeaders: ["Cookie"]
        )
        var configuration = Fixtures.configuration(
            rules: [Rule(name: "acme", condition: Self.acme, upstream: "orders-v2")],
            rewrites: ["orders-v2": rewrite, "legacy": RequestRewrite()]
        )
        let table = try RoutingTable(configuration: configuration, revision: 1)
        #expect(table.decide(Self.acmeRequest).rewrite == rewrite)
        #expect(table.decide(Fixtures.request()).rewrite == nil)
        configuration.routes[0].defaultUpstream = "orders-v2"
        let flipped = try RoutingTable(configuration: configuration, revision: 2)
        let decision = flipped.decide(Fixtures.request())
        #expect(decision.rewrite == rewrite)
        #expect(decision.rewrite?.rewritePath("/orders/42") == "/v2/orders/42")
    }

    @Test func timeoutsComeFromTheRoute() throws {
        var configuration = Fixtures.configuration(rules: [])
        configuration.routes[0].timeouts = RouteTimeouts(connectMilliseconds: 100, responseHeaderMilliseconds: 60_000)
        let table = try RoutingTable(configuration: configuration, revision: 1)
        let timeouts = table.decide(Fixtures.request()).timeouts
        #expect(timeouts == RouteTimeouts(connectMilliseconds: 100, responseHeaderMilliseconds: 60_000))
        #expect(Decision.noRoute.timeouts.isEmpty)
    }

    @Test func shadowIsNotYetModelled() throws {
        let table = try Fixtures.table(rules: [Rule(name: "all", upstream: "orders-v2")])
        #expect(table.decide(Fixtures.request()).shadow == nil)
    }
}
