import Testing

@testable import FicusCore

@Suite("Configuration validation")
struct ConfigurationValidationTests {
    static func messages(_ configuration: Configuration) -> [String] {
        configuration.validate().map(\.description)
    }

    @Test func validConfigurationHasNoErrors() throws {
        let configuration = Fixtures.configuration(
            rules: [
                Rule(name: "beta", condition: .segment("beta"), upstream: "orders-v2"),
                Rule(name: "gated", condition: .all([.flag("f"), .percentage(10)]), upstream: "orders-v2"),
            ],
            segments: [Segment(name: "beta", constraints: [Predicate(.header("X-Beta"), .exists)])],
            flags: [Flag(name: "f")]
        )
        #expect(configuration.validate().isEmpty)
        #expect(Configuration.catchAll(upstreams: Fixtures.upstreams, defaultUpstream: "legacy").validate().isEmpty)
    }

    @Test func reportsEveryRuleProblemWithObjectAndField() {
        let configuration = Fixtures.configuration(rules: [
            Rule(name: "ok", condition: .method(["GET"]), upstream: "orders-v2"),
            Rule(name: "beta", condition: .segment("beta"), upstream: "orders-v2"),
            Rule(name: "gate", condition: .flag("nope"), upstream: "nowhere"),
            Rule(name: "pct", condition: .any([.percentage(150), .percentage(-1)]), upstream: "orders-v2"),
            Rule(name: "ok", condition: .header("X-A", .regex, ["("]), upstream: "orders-v2"),
            Rule(
                name: "ip",
                condition: .match(Predicate(.clientIP, .in, ["10.0.0.0/33", "10.0.0.0/8"])),
                upstream: "legacy"
            ),
            Rule(name: "all", upstream: "orders-v2"),
            Rule(name: "late", condition: .method(["POST"]), upstream: "orders-v2"),
        ])
        let messages = Self.messages(configuration)
        #expect(messages.count == 9)
        #expect(messages.contains("route 'orders': rule 2 ('beta'): unknown segment 'beta'"))
        #expect(messages.contains("route 'orders': rule 3 ('gate'): unknown upstream 'nowhere'"))
        #expect(messages.contains("route 'orders': rule 3 ('gate'): unknown flag 'nope'"))
        #expect(messages.contains("route 'orders': rule 4 ('pct'): percentage 150 is outside 0–100"))
        #expect(messages.contains("route 'orders': rule 4 ('pct'): percentage -1 is outside 0–100"))
        #expect(
            messages.contains("route 'orders': rule 5 ('ok'): duplicate rule name 'ok', already used in route 'orders'")
        )
        #expect(messages.contains { $0.hasPrefix("route 'orders': rule 5 ('ok'): bad regex '(': ") })
        #expect(messages.contains("route 'orders': rule 6 ('ip'): bad CIDR '10.0.0.0/33'"))
        #expect(
            messages.contains(
                "route 'orders': rule 8 ('late'): unreachable: rule 7 ('all') before it matches every request"
            )
        )
        let error = configuration.validate().first { $0.message == "unknown segment 'beta'" }
        #expect(
            error
                == ValidationError(
                    object: "route 'orders'",
                    field: "rule 2 ('beta')",
                    message: "unknown segment 'beta'"
                )
        )
    }

    @Test func ruleNamesAreUniqueAcrossRoutes() {
        var configuration = Fixtures.configuration(rules: [Rule(name: "canary", upstream: "orders-v2")])
        configuration.routes.append(
            Route(name: "users", path: "/users", legacy: "legacy", rules: [Rule(name: "canary", upstream: "orders-v2")])
        )
        #expect(
            Self.messages(configuration) == [
                "route 'users': rule 1 ('canary'): duplicate rule name 'canary', already used in route 'orders'"
            ]
        )
    }

    @Test func reportsRouteAndUpstreamProblems() {
        let configuration = Configuration(
            upstreams: [
                Upstream(name: "legacy", addresses: [Endpoint(host: "mono", port: 0)]),
                Upstream(name: "legacy", addresses: []),
                Upstream(
                    name: "bg",
                    slots: BlueGreenSlots(blue: [Endpoint(host: "b", port: 80)], green: [], active: .green)
                ),
            ],
            routes: [
                Route(name: "a", host: "api.example.com:80", path: "orders", methods: ["GE T"], legacy: "mono"),
                Route(name: "a", host: "*.", path: "/x/**/y", legacy: "legacy", defaultUpstream: "new"),
                Route(name: "b", path: "/{}", legacy: "legacy", timeouts: RouteTimeouts(connectMilliseconds: 0)),
                Route(
                    name: "c",
                    path: "/p",
                    legacy: "legacy",
                    rewrites: [
                        "ghost": RequestRewrite(),
                        "legacy": RequestRewrite(
                            path: PathRewrite(prefix: "api"),
                            setHeaders: [HeaderField(name: "X-A", value: "a\r\nX-Injected: 1")]
                        ),
                    ]
                ),
            ]
        )
        #expect(
            Self.messages(configuration) == [
                "upstream 'legacy': name: duplicate upstream name 'legacy'",
                "route 'a': name: duplicate route name 'a'",
                "upstream 'legacy': addresses: port 0 of 'mono' is outside 1–65535",
                "upstream 'legacy': addresses: must not be empty",
                "upstream 'bg': slots: active slot 'green' has no addresses",
                "route 'a': host: host 'api.example.com:80' must not include a port",
                "route 'a': path: path 'orders' must start with '/'",
                "route 'a': methods: invalid method 'GE T'",
                "route 'a': legacy: unknown upstream 'mono'",
                "route 'a': host: invalid host '*.': use a name, an address, or '*.' followed by a name",
                "route 'a': path: '**' must be the last segment of '/x/**/y'",
                "route 'a': default: unknown upstream 'new'",
                "route 'b': path: invalid parameter '{}' in '/{}': use letters, digits and '_'",
                "route 'b': timeouts: connect_milliseconds must be positive, got 0",
                "route 'c': rewrites 'ghost': unknown upstream 'ghost'",
                "route 'c': rewrites 'legacy': path prefix 'api' must start with '/'",
                "route 'c': rewrites 'legacy': value of header 'X-A' contains CR, LF or NUL",
            ]
        )
    }

    @Test func reportsSegmentAndFlagProblems() {
        let configuration = Configuration(
            upstreams: Fixtures.upstreams,
            segments: [
                Segment(name: "empty", constraints: []),
                Segment(
                    name: "bad",
                    constraints: [
                        Predicate(.header("X-A"), .numberLessThan, ["ten"]),
                        Predicate(.header("X-A"), .equals, ["a", "b"]),
                        Predicate(.header("X-A"), .exists, ["a"]),
                        Predicate(.cookie("c"), .in, []),
                        Predicate(.clientIP, .prefix, ["10."]),
                        Predicate(.header("X-V"), .semverGreaterThan, ["two"]),
                        Predicate(.header("X-V"), .semverRange, [">=>2"]),
                        Predicate(.header("Bad Name"), .exists),
                    ]
                ),
            ],
            flags: [Flag(name: "f"), Flag(name: "f")]
        )
        #expect(
            Self.messages(configuration) == [
                "flag 'f': name: duplicate flag name 'f'",
                "segment 'empty': constraints: must not be empty",
                "segment 'bad': constraint 1: 'ten' is not a number",
                "segment 'bad': constraint 2: 'equals' takes exactly one value, got 2",
                "segment 'bad': constraint 3: 'exists' takes no values",
                "segment 'bad': constraint 4: 'in' needs at least one value",
                "segment 'bad': constraint 5: client_ip supports only in, not_in, exists and absent, not 'prefix'",
                "segment 'bad': constraint 6: 'two' is not a semantic version",
                "segment 'bad': constraint 7: bad semver range '>=>2'",
                "segment 'bad': constraint 8: invalid header name 'Bad Name'",
            ]
        )
    }

    @Test func reportsVersionAndFlagMisuse() {
        let configuration = Fixtures.configuration(
            rules: [
                Rule(name: "v1", condition: .version(VersionMatch(header: "X-V")), upstream: "orders-v2"),
                Rule(name: "v2", condition: .version(VersionMatch(header: "X-V", range: "~>1")), upstream: "orders-v2"),
                Rule(name: "neg", condition: .not(.flag("f")), upstream: "orders-v2"),
                Rule(name: "m", condition: .method([]), upstream: "orders-v2"),
            ],
            flags: [Flag(name: "f", enabled: true)]
        )
        #expect(
            Self.messages(configuration) == [
                "route 'orders': rule 1 ('v1'): version needs exactly one of 'equals' and 'range'",
                "route 'orders': rule 2 ('v2'): bad semver range '~>1'",
                "route 'orders': rule 3 ('neg'): flag 'f' under 'not' can never match: "
                    + "a flag that is off disables the whole rule",
                "route 'orders': rule 4 ('m'): method list is empty",
            ]
        )
    }

    @Test func reportsRoutesHiddenByAnIdenticalEarlierRoute() {
        let configuration = Configuration(
            upstreams: Fixtures.upstreams,
            routes: [
                Route(name: "one", host: "API.example.com", path: "/orders/{id}", legacy: "legacy"),
                Route(name: "two", host: "api.example.com", path: "/orders/*", legacy: "legacy"),
                Route(
                    name: "post",
                    host: "api.example.com",
                    path: "/orders/{id}",
                    methods: ["POST", "PUT"],
                    legacy: "legacy"
                ),
                Route(name: "put", host: "api.example.com", path: "/orders/{id}", methods: ["PUT"], legacy: "legacy"),
                Route(name: "other-host", path: "/orders/{id}", legacy: "legacy"),
            ]
        )
        #expect(
            Self.messages(configuration) == [
                "route 'two': path: unreachable: route 'one' has the same host and path and covers its methods",
                "route 'put': path: unreachable: route 'post' has the same host and path and covers its methods",
            ]
        )
    }

    @Test func routingTableThrowsEveryError() {
        let configuration = Fixtures.configuration(rules: [
            Rule(name: "a", condition: .segment("x"), upstream: "y")
        ])
        #expect(throws: ConfigurationInvalid.self) {
            try RoutingTable(configuration: configuration, revision: 1)
        }
        do {
            _ = try RoutingTable(configuration: configuration, revision: 1)
        } catch let error as ConfigurationInvalid {
            #expect(
                error.description == """
                    invalid configuration (2 errors)
                      - route 'orders': rule 1 ('a'): unknown upstream 'y'
                      - route 'orders': rule 1 ('a'): unknown segment 'x'
                    """
            )
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
