// The configuration and requests shared by the RoutingDecision benchmark and the RoutingDecisionProfile driver.

import FicusCore

// MARK: - Configuration under test: 1,000 routes x 10 rules

/// Number of routes and of rules per route.
public let routeCount = 1_000
public let rulesPerRoute = 10

/// The route every request below targets: exact host `svc1.example.com`, template `/api/v2/res601/{id}/items`.
public let targetRoute = 601

/// A realistic mix: exact hosts (80 %), wildcard hosts (15 %), any host (5 %); prefixes, one-parameter templates and
/// `**` templates; one route in ten restricted to write methods; ten rules per route mixing header, cookie, query,
/// segment, flag, method, version (media-type parameter and plain header) and sticky percentage conditions.
public func makeConfiguration() -> Configuration {
    let newUpstreams = (0..<8).map { "svc-v2-\($0)" }
    let upstreams =
        [Upstream(name: "legacy", addresses: [Endpoint(host: "10.0.0.1", port: 8080)])]
        + newUpstreams.enumerated().map { index, name in
            Upstream(name: name, addresses: [Endpoint(host: "10.0.1.\(index + 1)", port: 8080)])
        }
    let segments = [
        Segment(
            name: "beta-testers",
            constraints: [
                Predicate(.header("X-Beta"), .in, ["1", "yes", "true"]),
                Predicate(.clientIP, .in, ["10.0.0.0/8", "100.64.0.0/10"]),
            ]
        ),
        Segment(name: "internal", constraints: [Predicate(.clientIP, .in, ["192.168.0.0/16", "fd00::/8"])]),
        Segment(
            name: "employees",
            constraints: [
                Predicate(.cookie("staff"), .exists),
                Predicate(.clientIP, .in, ["172.16.0.0/12"]),
            ]
        ),
    ]
    let flags = [Flag(name: "new-orders", enabled: true), Flag(name: "new-search", enabled: true)]

    var routes: [Route] = []
    routes.reserveCapacity(routeCount)
    for r in 0..<routeCount {
        let upstream = newUpstreams[r % newUpstreams.count]
        let host: String? =
            switch r % 20 {
            case 0..<16: "svc\(r % 40).example.com"
            case 16..<19: "*.tenant\(r % 7).example.net"
            default: nil
            }
        let version = 1 + r % 2
        let path =
            switch r % 3 {
            case 0: "/api/v\(version)/res\(r)"
            case 1: "/api/v\(version)/res\(r)/{id}/items"
            default: "/static/res\(r)/**"
            }
        let methods = r % 10 == 5 ? ["POST", "PUT"] : []
        let conditions: [Condition] = [
            .header("X-Tenant", .in, ["tenant-\(r)", "tenant-\(r + routeCount)"]),
            .segment("beta-testers"),
            .all([.flag("new-orders"), .header("X-Canary", .equals, ["1"])]),
            .version(VersionMatch(header: "Accept", parameter: "version", range: ">=3.0.0 <4")),
            .version(VersionMatch(header: "X-API-Version", equals: "2025-01-01")),
            .any([.cookie("beta", .equals, ["on"]), .query("beta", .equals, ["yes"])]),
            .all([.method(["POST", "PUT", "PATCH"]), .segment("internal")]),
            .header("User-Agent", .prefix, ["ficusmobile/", "acmeapp/"], caseInsensitive: true),
            .all([.segment("employees"), .not(.header("X-Opt-Out", .exists))]),
            .all([.flag("new-search"), .percentage(10)]),
        ]
        precondition(conditions.count == rulesPerRoute)
        let rules = conditions.enumerated().map { k, condition in
            Rule(
                name: "r\(r)-k\(k)",
                condition: condition,
                upstream: upstream,
                stickiness: k == rulesPerRoute - 1 ? .header("X-User-Id") : nil
            )
        }
        routes.append(
            Route(name: "route-\(r)", host: host, path: path, methods: methods, legacy: "legacy", rules: rules)
        )
    }
    return Configuration(upstreams: upstreams, routes: routes, segments: segments, flags: flags)
}

/// A browser-like request to `targetRoute` with a dozen headers, a cookie and a query string.
public func makeRequest(tenant: String, userID: String) -> RequestFacts {
    RequestFacts(
        method: "GET",
        target: "/api/v2/res\(targetRoute)/12345/items?page=2&beta=no&sort=desc",
        headers: [
            ("Host", "svc1.example.com"),
            ("User-Agent", "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko)"),
            ("Accept", "application/vnd.acme+json; version=2, application/json;q=0.8"),
            ("Accept-Encoding", "gzip, br"),
            ("Accept-Language", "en-GB,en;q=0.9"),
            ("Cookie", "session=3f9a1c77e2; beta=off; theme=dark"),
            ("X-Tenant", tenant),
            ("X-User-Id", userID),
            ("X-API-Version", "2024-06-01"),
            ("X-Beta", "0"),
            ("X-Request-Id", "6f1e2d3c-4b5a-6978-8a9b-0c1d2e3f4a5b"),
            ("Traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ],
        clientAddress: IPAddress("203.0.113.7")
    )
}

/// The compiled table and the three requests, built once and checked before anything is measured.
public struct Fixture: Sendable {
    public let configuration: Configuration
    public let table: RoutingTable
    /// (a) matches rule 1 (header X-Tenant).
    public let firstRule: RequestFacts
    /// (b) evaluates all ten rules (percentage included, bucket above 10) and gets the route default.
    public let fallThrough: RequestFacts
    /// (c) evaluates rules 1–9 without a match, then matches the sticky 10 % rule on X-User-Id.
    public let percentage: RequestFacts

    public init() {
        let configuration = makeConfiguration()
        let table: RoutingTable
        do {
            table = try RoutingTable(configuration: configuration, revision: 1)
        } catch {
            fatalError("benchmark configuration is invalid: \(error)")
        }
        let route = "route-\(targetRoute)"
        let lastRule = "r\(targetRoute)-k\(rulesPerRoute - 1)"
        func userID(where accept: (Decision) -> Bool) -> RequestFacts {
            for candidate in 0..<10_000 {
                let request = makeRequest(tenant: "globex", userID: "user-\(candidate)")
                let decision = table.decide(request)
                if accept(decision) {
                    return request
                }
            }
            fatalError("no user id gives the wanted decision")
        }
        self.configuration = configuration
        self.table = table
        self.firstRule = makeRequest(tenant: "tenant-\(targetRoute)", userID: "user-0")
        self.fallThrough = userID { $0.reason == .routeDefault && $0.bucket != nil }
        self.percentage = userID { $0.rule == lastRule }

        let a = table.decide(self.firstRule)
        precondition(a.route == route && a.rule == "r\(targetRoute)-k0" && a.reason == .rule, "(a): \(a)")
        let b = table.decide(self.fallThrough)
        precondition(b.route == route && b.rule == nil && b.reason == .routeDefault, "(b): \(b)")
        let c = table.decide(self.percentage)
        precondition(c.route == route && c.rule == lastRule && (c.bucket ?? 100) <= 10, "(c): \(c)")
    }
}
