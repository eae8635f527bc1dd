import Testing

@testable import FicusCore

@Suite("RoutingTable route matching")
struct RoutingTableRouteMatchingTests {
    static func route(_ name: String, host: String? = nil, path: String, methods: [String] = []) -> Route {
        Route(name: name, host: host, path: path, methods: methods, legacy: "legacy")
    }

    static let table: RoutingTable = {
        let routes = [
            route("api-orders", host: "api.example.com", path: "/orders"),
            route("api-order", host: "api.example.com", path: "/orders/{id}"),
            route("api-order-post", host: "API.Example.com", path: "/orders/{id}", methods: ["POST"]),
            route("api-order-items", host: "api.example.com", path: "/orders/{id}/items"),
            route("api-orders-export", host: "api.example.com", path: "/orders/export"),
            route("api-static", host: "api.example.com", path: "/static/**"),
            route("api-any", host: "api.example.com", path: "/"),
            route("tenant", host: "*.example.com", path: "/"),
            route("deep-tenant", host: "*.eu.example.com", path: "/"),
            route("v1-glob", path: "/v1/*/status"),
            route("fallback", path: "/"),
        ]
        return try! RoutingTable(
            configuration: Configuration(upstreams: Fixtures.upstreams, routes: routes),
            revision: 7
        )
    }()

    @Test(arguments: [
        ("GET", "api.example.com", "/orders", "api-orders"),
        ("GET", "api.example.com", "/orders/", "api-orders"),
        ("GET", "api.example.com", "/orders/42", "api-order"),
        ("POST", "api.example.com", "/orders/42", "api-order-post"),
        ("GET", "api.example.com", "/orders/export", "api-orders-export"),
        ("GET", "api.example.com", "/orders/42/items", "api-order-items"),
        ("GET", "api.example.com", "/orders/42/items/3", "api-orders"),
        ("GET", "api.example.com", "//orders//42", "api-order"),
        ("GET", "api.example.com", "/ordersx", "api-any"),
        ("GET", "api.example.com", "/static", "api-static"),
        ("GET", "api.example.com", "/static/css/site.css", "api-static"),
        ("GET", "API.EXAMPLE.COM.", "/orders", "api-orders"),
        ("GET", "api.example.com:8443", "/orders", "api-orders"),
        ("GET", "shop.example.com", "/orders", "tenant"),
        ("GET", "a.b.example.com", "/x", "tenant"),
        ("GET", "shop.eu.example.com", "/x", "deep-tenant"),
        ("GET", "example.com", "/x", "fallback"),
        ("GET", "other.org", "/v1/abc/status", "v1-glob"),
        ("GET", "other.org", "/v1/abc/def/status", "fallback"),
    ])
    func picksTheMostSpecificRoute(method: String, host: String, path: String, expected: String) {
        let request = RequestFacts(method: method, host: host, path: path)
        #expect(Self.table.decide(request).route == expected)
    }

    @Test func requestWithoutHostMatchesOnlyHostlessRoutes() {
        #expect(Self.table.decide(RequestFacts(host: nil, path: "/orders/1")).route == "fallback")
    }

    @Test func noRouteGivesAnEmptyUpstream() throws {
        let configuration = Configuration(
            upstreams: Fixtures.upstreams,
            routes: [Self.route("orders", host: "api.example.com", path: "/orders", methods: ["GET"])]
        )
        let table = try RoutingTable(configuration: configuration, revision: 1)
        for request in [
            RequestFacts(host: "api.example.com", path: "/users"),
            RequestFacts(method: "DELETE", host: "api.example.com", path: "/orders"),
            RequestFacts(host: "www.example.com", path: "/orders"),
        ] {
            let decision = table.decide(request)
            #expect(decision == .noRoute)
            #expect(decision.upstream.isEmpty)
        }
    }

    @Test func methodMismatchFallsBackToALessSpecificRoute() throws {
        let configuration = Configuration(
            upstreams: Fixtures.upstreams,
            routes: [
                Self.route("post-orders", path: "/orders", methods: ["POST"]),
                Self.route("everything", path: "/"),
            ]
        )
        let table = try RoutingTable(configuration: configuration, revision: 1)
        #expect(table.decide(RequestFacts(method: "POST", path: "/orders")).route == "post-orders")
        #expect(table.decide(RequestFacts(method: "GET", path: "/orders")).route == "everything")
        #expect(table.decide(RequestFacts(method: "post", path: "/orders")).route == "everything")
    }

    @Test func literalSegmentsBelongToTheirParent() throws {
        let configuration = Configuration(
            upstreams: Fixtures.upstreams,
            routes: [
                Self.route("a-x", path: "/a/x"),
                Self.route("b-y", path: "/b/y"),
                Self.route("lock", path: "/b/x", methods: ["LOCK"]),
            ]
        )
        let table = try RoutingTable(configuration: configuration, revision: 1)
        #expect(table.decide(RequestFacts(path: "/a/x")).route == "a-x")
        #expect(table.decide(RequestFacts(path: "/b/y")).route == "b-y")
        #expect(table.decide(RequestFacts(path: "/a/y")).route == nil)
        #expect(table.decide(RequestFacts(path: "/b/x")).route == nil)
        #expect(table.decide(RequestFacts(method: "LOCK", path: "/b/x")).route == "lock")
        #expect(table.decide(RequestFacts(method: "LOC\u{212A}", path: "/b/x")).route == "lock")
    }

    @Test func catchAllRoutesEverythingToTheDefaultUpstream() throws {
        let table = try RoutingTable(
            configuration: .catchAll(upstreams: Fixtures.upstreams, defaultUpstream: "legacy"),
            revision: 3
        )
        let decision = table.decide(RequestFacts(method: "PATCH", host: "anything.test", path: "/a/b/c"))
        #expect(decision.route == "default")
        #expect(decision.upstream == "legacy")
        #expect(decision.reason == .routeDefault)
        #expect(table.revision == 3)
        #expect(table.upstream(named: "legacy")?.addresses == [Endpoint(host: "127.0.0.1", port: 8080)])
        #expect(table.upstream(named: "nope") == nil)
    }

    @Test func scalesToAThousandRoutes() throws {
        var routes: [Route] = []
        for index in 0..<1000 {
            routes.append(Self.route("r\(index)", host: "h\(index % 10).example.com", path: "/svc\(index)/{id}"))
        }
        let table = try RoutingTable(
            configuration: Configuration(upstreams: Fixtures.upstreams, routes: routes),
            revision: 1
        )
        #expect(table.decide(RequestFacts(host: "h7.example.com", path: "/svc987/x")).route == "r987")
        #expect(table.decide(RequestFacts(host: "h6.example.com", path: "/svc987/x")).route == nil)
    }
}
