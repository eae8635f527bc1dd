import FicusCore
import Foundation
import Testing

@testable import FicusStore

@Suite("RevisionDiff")
struct RevisionDiffTests {
    static let base = StoreFixtures.configuration()

    /// The diff from the fixture configuration to the same after `change`.
    static func diff(_ change: (inout Configuration) -> Void) -> RevisionDiff {
        var new = Self.base
        change(&new)
        return RevisionDiff(from: Self.base, to: new)
    }

    @Test("equal configurations have no lines")
    func equal() {
        let diff = RevisionDiff(from: Self.base, to: Self.base)
        #expect(diff.isEmpty)
        #expect(diff.lines.isEmpty)
        #expect(diff.routesChanged.isEmpty)
        #expect(diff.summary() == "")
    }

    @Test("a flip is one line naming the route and both upstreams")
    func flip() {
        let diff = Self.diff { $0.routes[0].defaultUpstream = "orders-v2" }
        #expect(diff.lines == ["~ route orders: default legacy → orders-v2"])
        #expect(diff.routesChanged == ["orders"])
    }

    @Test("routes added and removed, with the rules of an added route")
    func routesAddedAndRemoved() {
        let diff = Self.diff { configuration in
            configuration.routes.remove(at: 1)
            configuration.routes.append(
                Route(
                    name: "payments",
                    host: "api.example.com",
                    path: "/payments",
                    methods: ["POST"],
                    legacy: "legacy",
                    rules: [Rule(name: "payments-beta", condition: .flag("beta"), upstream: "orders-v2")]
                )
            )
        }
        #expect(
            diff.lines == [
                "- route users",
                "+ route payments: POST api.example.com/payments → legacy",
                "+ rule payments-beta in route payments: flag 'beta' → orders-v2",
            ]
        )
        #expect(diff.routesChanged == ["payments", "users"])
    }

    @Test("route fields, rules, rule order, rewrites and timeouts each get a line")
    func routeFields() {
        var old = Self.base
        old.routes[0].rules = [
            Rule(name: "a", condition: .percentage(10), upstream: "orders-v2"),
            Rule(name: "b", condition: .method(["POST"]), upstream: "orders-v2"),
            Rule(name: "c", condition: .flag("beta"), upstream: "orders-v2"),
        ]
        var new = old
        new.routes[0].path = "/v1/orders"
        new.routes[0].methods = ["GET"]
        new.routes[0].rules = [
            Rule(name: "b", condition: .method(["POST"]), upstream: "orders-v2"),
            Rule(name: "a", condition: .percentage(50), upstream: "orders-v2", stickiness: .header("X-User-Id")),
            Rule(name: "d", condition: .segment("staff"), upstream: "legacy"),
        ]
        new.routes[0].rewrites = ["orders-v2": RequestRewrite(path: .strip("/v1"))]
        new.routes[0].timeouts = RouteTimeouts(connectMilliseconds: 250)
        let diff = RevisionDiff(from: old, to: new)
        #expect(
            diff.lines == [
                "~ route orders: path /orders → /v1/orders",
                "~ route orders: methods any → GET",
                #"~ route orders: rewrite for orders-v2 added: "#
                    + #"{"path":{"prefix":"/v1","replacement":""},"remove_headers":[],"set_headers":[]}"#,
                #"~ route orders: timeouts {} → {"connect_milliseconds":250}"#,
                "- rule c in route orders",
                "~ rule a in route orders: condition percentage 10 → percentage 50",
                "~ rule a in route orders: stickiness client address → header:X-User-Id",
                "+ rule d in route orders: segment 'staff' → legacy",
                "~ route orders: rule order a, b → b, a",
            ]
        )
        #expect(diff.routesChanged == ["orders"])
    }

    @Test("upstreams, blue-green slots, segments, flags and the kill switch")
    func otherObjects() {
        let blue = [Endpoint(host: "10.0.0.1", port: 80)]
        let green = [Endpoint(host: "10.0.0.2", port: 80)]
        var old = Self.base
        old.upstreams.append(Upstream(name: "users-v2", slots: BlueGreenSlots(blue: blue, green: green, active: .blue)))
        old.segments = [Segment(name: "staff", constraints: [Predicate(.header("X-Staff"), .equals, ["1"])])]
        old.flags = [Flag(name: "beta"), Flag(name: "old")]
        var new = old
        new.upstreams[0].addresses = [Endpoint(host: "127.0.0.1", port: 8081)]
        new.upstreams[2].slots?.active = .green
        new.upstreams[2].slots?.previewSegment = "staff"
        new.upstreams.append(Upstream(name: "search", addresses: [Endpoint(host: "10.0.0.9", port: 80)]))
        new.segments[0].constraints.append(Predicate(.clientIP, .in, ["10.0.0.0/8"]))
        new.flags = [Flag(name: "beta", enabled: true), Flag(name: "new")]
        new.killed = true
        let diff = RevisionDiff(from: old, to: new)
        #expect(
            diff.lines == [
                "~ upstream legacy: addresses [127.0.0.1:8080] → [127.0.0.1:8081]",
                "~ upstream users-v2: active slot blue → green",
                "~ upstream users-v2: preview segment none → 'staff'",
                "+ upstream search: [10.0.0.9:80]",
                "~ segment staff: [header:X-Staff equals 1] → [header:X-Staff equals 1, client_ip in [10.0.0.0/8]]",
                "- flag old",
                "~ flag beta: off → on",
                "+ flag new: off",
                "~ killed: off → on",
            ]
        )
        #expect(diff.routesChanged.isEmpty)
    }

    @Test("a change of order alone is still a difference")
    func orderOnly() {
        let diff = Self.diff { $0.routes.reverse() }
        #expect(diff.lines == ["~ configuration: order of objects"])
        #expect(!diff.isEmpty)
    }

    @Test("the summary keeps whole lines and counts what it leaves out")
    func summary() {
        let diff = RevisionDiff(from: Configuration(), to: Self.base)
        #expect(diff.lines.count == 4)
        #expect(diff.summary(maximumLength: 1000) == diff.lines.joined(separator: "; "))
        #expect(diff.summary(maximumLength: 40) == "+ upstream legacy: [127.0.0.1:8080]; … (+3 more)")
    }
}
