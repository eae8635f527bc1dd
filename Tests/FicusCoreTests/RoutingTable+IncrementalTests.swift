import Testing

@testable import FicusCore

/// A table built against the one being served (`RoutingTable(configuration:revision:previous:)`) must decide and
/// validate exactly as one built from scratch, while sharing what did not change.
@Suite("Routing table: incremental compilation")
struct RoutingTableIncrementalTests {
    /// `count` routes on `/r<i>/{id}` with three rules each: a header value, a segment, a flag with a sticky
    /// percentage.
    static func configuration(routes count: Int) -> Configuration {
        var configuration = Configuration(
            upstreams: Fixtures.upstreams,
            segments: [Segment(name: "staff", constraints: [Predicate(.header("X-Staff"), .equals, ["1"])])],
            flags: [Flag(name: "beta", enabled: true)]
        )
        for index in 0..<count {
            configuration.routes.append(
                Route(
                    name: "r\(index)",
                    path: "/r\(index)/{id}",
                    methods: index % 7 == 0 ? ["POST"] : [],
                    legacy: "legacy",
                    rules: [
                        Rule(name: "r\(index)-tenant", condition: .match(Predicate(.header("X-Tenant"), .in,
                            ["t\(index)", "all"])), upstream: "orders-v2"),
                        Rule(name: "r\(index)-staff", condition: .segment("staff"), upstream: "orders-v3"),
                        Rule(name: "r\(index)-beta", condition: .all([.flag("beta"), .percentage(30)]),
                            upstream: "orders-v2", stickiness: .header("X-User-Id")),
                    ]
                )
            )
        }
        return configuration
    }

    /// Requests to every route with every combination that the rules tell apart.
    static func requests(routes count: Int) -> [RequestFacts] {
        var requests: [RequestFacts] = []
        for index in stride(from: 0, to: count + 2, by: 1) {
            for headers in [[], [("X-Tenant", "t\(index)")], [("X-Staff", "1")], [("X-User-Id", "u\(index)")],
                [("X-User-Id", "v\(index * 7)")]] as [[(String, String)]]
            {
                for method in ["GET", "POST"] {
                    requests.append(Fixtures.request(method: method, target: "/r\(index)/5", headers: headers))
                }
            }
        }
        return requests
    }

    /// Builds the changed configuration both ways and checks that they explain every request alike; returns the
    /// incremental table.
    @discardableResult
    static func check(
        _ change: (inout Configuration) -> Void,
        routes count: Int = 150,
        sourceLocation: SourceLocation = #_sourceLocation
    ) throws -> (previous: RoutingTable, table: RoutingTable) {
        let previous = try RoutingTable(configuration: Self.configuration(routes: count), revision: 1)
        var configuration = previous.configuration
        change(&configuration)
        let scratch = try RoutingTable(configuration: configuration, revision: 2)
        let table = try RoutingTable(configuration: configuration, revision: 2, previous: previous)
        for request in Self.requests(routes: max(count, configuration.routes.count)) {
            #expect(table.explain(request) == scratch.explain(request), sourceLocation: sourceLocation)
        }
        return (previous, table)
    }

    static func shared(_ table: RoutingTable, _ previous: RoutingTable) -> Int {
        table.programs.filter { program in previous.programs.contains { $0 === program } }.count
    }

    @Test("a flip recompiles one chunk of routes and shares the route index")
    func flipRecompilesOneChunk() throws {
        let (previous, table) = try Self.check { $0.routes[71].defaultUpstream = "orders-v2" }
        #expect(table.programs.count == (150 + RoutingTable.chunk - 1) / RoutingTable.chunk)
        #expect(Self.shared(table, previous) == table.programs.count - 1)
        #expect(table.routes[0] === previous.routes[0])
        #expect(table.routes[71] !== previous.routes[71])
        let request = Fixtures.request(target: "/r71/1")
        #expect(table.decide(request).upstream == "orders-v2")
    }

    @Test("a changed rule, an added route, a removed route and a moved path decide as a fresh table does")
    func structuralChanges() throws {
        try Self.check { $0.routes[10].rules[0].condition = .match(Predicate(.header("X-Tenant"), .equals, ["x"])) }
        let (previous, added) = try Self.check {
            $0.routes.append(Route(name: "late", path: "/r150/{id}", legacy: "orders-v3"))
        }
        #expect(Self.shared(added, previous) == previous.programs.count - 1, "the last chunk gains a route")
        let (_, removed) = try Self.check { $0.routes.remove(at: 0) }
        #expect(removed.decide(Fixtures.request(target: "/r0/1")).route == nil)
        try Self.check { $0.routes[3].path = "/moved/{id}" }
        try Self.check { $0.routes[3].methods = ["PUT"] }
    }

    @Test("a changed segment, flag or identity recompiles every chunk")
    func sharedPartsRecompileEverything() throws {
        let (p1, segment) = try Self.check {
            $0.segments[0].constraints = [Predicate(.header("X-Staff"), .equals, ["yes"])]
        }
        #expect(Self.shared(segment, p1) == 0)
        let (p2, flag) = try Self.check { $0.flags[0].enabled = false }
        #expect(Self.shared(flag, p2) == 0)
        let (p3, identity) = try Self.check { $0.identity = .header("X-Account") }
        #expect(Self.shared(identity, p3) == 0)
    }

    @Test("what makes unchanged routes invalid is still found: a removed upstream, a clashing rule name")
    func unchangedRoutesAreStillChecked() throws {
        let previous = try RoutingTable(configuration: Self.configuration(routes: 100), revision: 1)
        var withoutUpstream = previous.configuration
        withoutUpstream.upstreams.removeAll { $0.name == "orders-v3" }
        let full = withoutUpstream.validate()
        #expect(!full.isEmpty)
        #expect(withoutUpstream.validate(unchangedSince: previous.configuration) == full)
        #expect(throws: ConfigurationInvalid.self) {
            try RoutingTable(configuration: withoutUpstream, revision: 2, previous: previous)
        }

        var clash = previous.configuration
        clash.routes[90].rules[0].name = "r5-staff"
        let errors = clash.validate(unchangedSince: previous.configuration)
        #expect(errors == clash.validate())
        #expect(errors.map(\.message) == ["duplicate rule name 'r5-staff', already used in route 'r5'"])

        // A second route of an existing name: every route is checked, as from scratch.
        var twice = previous.configuration
        twice.routes.append(twice.routes[3])
        #expect(twice.validate(unchangedSince: previous.configuration) == twice.validate())
        #expect(twice.validate().count > 1, "the name and each of its rule names")

        var unreachable = previous.configuration
        unreachable.routes[40].path = "/r2/{id}"
        #expect(unreachable.validate(unchangedSince: previous.configuration) == unreachable.validate())
        #expect(!unreachable.validate().isEmpty)
    }

    @Test("an empty configuration and a shrinking one keep a program for preview segments")
    func emptyConfigurations() throws {
        let (_, empty) = try Self.check({ $0.routes = [] }, routes: 3)
        #expect(empty.programs.count == 1)
        #expect(empty.decide(Fixtures.request(target: "/r1/1")).route == nil)
    }
}
