import Foundation
import Testing

@testable import FicusCore

@Suite("Configuration coding")
struct ConfigurationCodableTests {
    static let full = Configuration(
        upstreams: [
            Upstream(
                name: "legacy",
                addresses: [Endpoint(host: "10.0.0.1", port: 8080), Endpoint(host: "::1", port: 80)]
            ),
            Upstream(
                name: "orders",
                slots: BlueGreenSlots(blue: [Endpoint(host: "blue", port: 80)], green: [], active: .blue)
            ),
        ],
        routes: [
            Route(
                name: "orders",
                host: "*.example.com",
                path: "/orders/{id}",
                methods: ["GET"],
                legacy: "legacy",
                defaultUpstream: "orders",
                rules: [
                    Rule(
                        name: "canary",
                        condition: .all([
                            .flag("f"), .segment("s"), .percentage(5), .method(["GET"]),
                            .not(.any([.header("X-A", .regex, ["^a"], caseInsensitive: true)])),
                            .version(VersionMatch(header: "Accept", parameter: "version", range: ">=2 <3")),
                            .cookie("c", .exists), .query("q", .numberGreaterThan, ["3"]),
                        ]),
                        upstream: "orders",
                        stickiness: .cookie("sid")
                    )
                ],
                rewrites: [
                    "orders": RequestRewrite(
                        path: PathRewrite(prefix: "/orders", replacement: "/v2"),
                        setHeaders: [HeaderField(name: "X-M", value: "1")],
                        removeHeaders: ["Cookie"]
                    )
                ],
                timeouts: RouteTimeouts(connectMilliseconds: 100)
            )
        ],
        segments: [Segment(name: "s", constraints: [Predicate(.clientIP, .in, ["10.0.0.0/8"])])],
        flags: [Flag(name: "f", enabled: true)],
        killed: true
    )

    @Test func roundTripsThroughJSON() throws {
        let data = try JSONEncoder().encode(Self.full)
        let decoded = try JSONDecoder().decode(Configuration.self, from: data)
        #expect(decoded == Self.full)
        #expect(decoded.validate().isEmpty)
    }

    @Test func decodesTheDocumentedDefaults() throws {
        let json = """
            {
              "upstreams": [{"name": "legacy", "addresses": ["127.0.0.1:8080", {"host": "::1", "port": 81}]}],
              "routes": [{"name": "all", "legacy": "legacy", "rules": [{"name": "r", "upstream": "legacy"}]}],
              "flags": [{"name": "f"}],
              "segments": [{"name": "s", "constraints": [{"attribute": "header:X-A", "op": "exists"}]}]
            }
            """
        let configuration = try JSONDecoder().decode(Configuration.self, from: Data(json.utf8))
        let route = try #require(configuration.routes.first)
        #expect(route.host == nil)
        #expect(route.path == "/")
        #expect(route.methods.isEmpty)
        #expect(route.defaultUpstream == "legacy")
        #expect(route.rewrites.isEmpty)
        #expect(route.timeouts.isEmpty)
        #expect(route.rules == [Rule(name: "r", condition: .always, upstream: "legacy", stickiness: nil)])
        #expect(configuration.flags == [Flag(name: "f", enabled: false)])
        #expect(configuration.killed == false)
        #expect(
            configuration.segments[0].constraints == [Predicate(.header("X-A"), .exists, [], caseInsensitive: false)]
        )
        #expect(
            configuration.upstreams[0].addresses == [
                Endpoint(host: "127.0.0.1", port: 8080), Endpoint(host: "::1", port: 81),
            ]
        )
    }

    @Test func encodesConditionsAsSingleKeyObjects() throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys]
        let condition = Condition.all([.segment("beta"), .match(Predicate(.header("X-A"), .notIn, ["a"]))])
        let text = String(decoding: try encoder.encode(condition), as: UTF8.self)
        let predicate = #"{"attribute":"header:X-A","case_insensitive":false,"op":"not_in","values":["a"]}"#
        #expect(text == #"{"all":[{"segment":"beta"},{"match":"# + predicate + "}]}")
        #expect(
            String(decoding: try encoder.encode(Endpoint(host: "::1", port: 8080)), as: UTF8.self) == #""[::1]:8080""#
        )
        let upstream = Upstream(name: "u", slots: BlueGreenSlots(blue: [], green: [], active: .green))
        #expect(
            String(decoding: try encoder.encode(upstream), as: UTF8.self)
                == #"{"name":"u","slots":{"active":"green","blue":[],"green":[]}}"#
        )
    }

    /// Snapshots stored before the keys became snake_case (`setHeaders`, `connectMilliseconds`, `caseInsensitive`)
    /// still decode, to the same values as the current names; the current name wins when both are present.
    @Test func snapshotsWithTheFormerCamelCaseNamesStillDecode() throws {
        let former = #"""
            {"setHeaders":[{"name":"X-M","value":"1"}],"removeHeaders":["Cookie"]}
            """#
        let current = #"""
            {"set_headers":[{"name":"X-M","value":"1"}],"remove_headers":["Cookie"]}
            """#
        let decoder = JSONDecoder()
        let old = try decoder.decode(RequestRewrite.self, from: Data(former.utf8))
        #expect(old == RequestRewrite(setHeaders: [HeaderField(name: "X-M", value: "1")], removeHeaders: ["Cookie"]))
        #expect(try decoder.decode(RequestRewrite.self, from: Data(current.utf8)) == old)
        let timeouts = try decoder.decode(
            RouteTimeouts.self, from: Data(#"{"connectMilliseconds":5,"responseHeaderMilliseconds":6}"#.utf8))
        #expect(timeouts == RouteTimeouts(connectMilliseconds: 5, responseHeaderMilliseconds: 6))
        let both = try decoder.decode(
            RouteTimeouts.self, from: Data(#"{"connect_milliseconds":7,"connectMilliseconds":5}"#.utf8))
        #expect(both.connectMilliseconds == 7)
        let predicate = try decoder.decode(
            Predicate.self, from: Data(#"{"attribute":"header:X-A","op":"equals","values":["a"],"caseInsensitive":true}"#.utf8))
        #expect(predicate.caseInsensitive)
    }

    @Test func rejectsAmbiguousOrMalformedInput() {
        let decoder = JSONDecoder()
        #expect(throws: DecodingError.self) {
            try decoder.decode(Condition.self, from: Data(#"{"flag": "a", "segment": "b"}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try decoder.decode(Condition.self, from: Data(#"{}"#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try decoder.decode(Attribute.self, from: Data(#""body:x""#.utf8))
        }
        #expect(throws: DecodingError.self) {
            try decoder.decode(Endpoint.self, from: Data(#""::1:80""#.utf8))
        }
        #expect((try? decoder.decode(Condition.self, from: Data(#"{"method": "GET"}"#.utf8))) == .method(["GET"]))
    }

    @Test func upstreamAddressesFollowTheActiveSlot() {
        var upstream = Upstream(
            name: "orders",
            slots: BlueGreenSlots(
                blue: [Endpoint(host: "b", port: 1)],
                green: [Endpoint(host: "g", port: 2)],
                active: .blue
            )
        )
        #expect(upstream.addresses == [Endpoint(host: "b", port: 1)])
        upstream.slots?.active = .green
        #expect(upstream.addresses == [Endpoint(host: "g", port: 2)])
        upstream.addresses = [Endpoint(host: "g2", port: 3)]
        #expect(upstream.slots?.green == [Endpoint(host: "g2", port: 3)])
        #expect(upstream.slots?.blue == [Endpoint(host: "b", port: 1)])
        #expect(BlueGreenSlots.Slot.blue.other == .green)
    }

    @Test func attributesParseTheirTextForm() {
        #expect(Attribute("header:X-User") == .header("X-User"))
        #expect(Attribute("Cookie:sid") == .cookie("sid"))
        #expect(Attribute("query:a:b") == .query("a:b"))
        #expect(Attribute("CLIENT_IP") == .clientIP)
        #expect(Attribute("header:") == nil)
        #expect(Attribute("ip") == nil)
        #expect(Attribute.query("q").description == "query:q")
    }
}
