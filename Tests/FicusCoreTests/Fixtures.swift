@testable import FicusCore

/// Shared building blocks for routing tests.
///
/// Most tests need the same three upstreams and a one-route configuration; keeping them here keeps each test about
/// the behaviour it checks.
enum Fixtures {
    static let upstreams = [
        Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 8080)]),
        Upstream(name: "orders-v2", addresses: [Endpoint(host: "127.0.0.1", port: 9090)]),
        Upstream(name: "orders-v3", addresses: [Endpoint(host: "127.0.0.1", port: 9191)]),
    ]

    /// A configuration with one route `orders` on `/orders` whose legacy and default upstream is `legacy`.
    static func configuration(
        rules: [Rule],
        segments: [Segment] = [],
        flags: [Flag] = [],
        rewrites: [String: RequestRewrite] = [:]
    ) -> Configuration {
        Configuration(
            upstreams: self.upstreams,
            routes: [Route(name: "orders", path: "/orders", legacy: "legacy", rules: rules, rewrites: rewrites)],
            segments: segments,
            flags: flags
        )
    }

    /// The routing table of `configuration(...)`.
    static func table(
        rules: [Rule],
        segments: [Segment] = [],
        flags: [Flag] = [],
        rewrites: [String: RequestRewrite] = [:]
    ) throws -> RoutingTable {
        try RoutingTable(
            configuration: self.configuration(rules: rules, segments: segments, flags: flags, rewrites: rewrites),
            revision: 1
        )
    }

    /// A request for `/orders` with the given headers, query and client address.
    static func request(
        method: String = "GET",
        target: String = "/orders",
        headers: [(String, String)] = [],
        client: String? = "10.0.0.1"
    ) -> RequestFacts {
        RequestFacts(method: method, target: target, headers: headers, clientAddress: client.flatMap(IPAddress.init))
    }
}
