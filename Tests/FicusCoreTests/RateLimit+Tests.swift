import Foundation
import Testing

@testable import FicusCore

/// A route's rate limit in the model: periods, validation naming the field, old snapshots, what a decision carries
/// and which requests share a bucket.
@Suite("Rate limit model")
struct RateLimitTests {
    static func configuration(_ limit: RateLimit?, identity: Attribute? = nil, killed: Bool = false) -> Configuration {
        var configuration = Fixtures.configuration(rules: [Rule(name: "v2", upstream: "orders-v2")])
        configuration.routes[0].rateLimit = limit
        configuration.identity = identity
        configuration.killed = killed
        return configuration
    }

    @Test func periodsAreWholeNumbersWithAUnitUpTo24Hours() {
        #expect(DurationText.milliseconds("500ms") == 500)
        #expect(DurationText.milliseconds("1s") == 1000)
        #expect(DurationText.milliseconds("10") == 10_000, "a bare number is seconds")
        #expect(DurationText.milliseconds("2m") == 120_000)
        #expect(DurationText.milliseconds("24h") == 86_400_000)
        for bad in ["", "s", "0s", "1.5s", "-1s", "25h", "1d", "1 s", "999999999999h", "1sm"] {
            #expect(DurationText.milliseconds(bad) == nil, "\(bad)")
        }
    }

    @Test func validationNamesEachBadField() {
        let limit = RateLimit(requests: 0, per: "soon", burst: -1, key: "cookie:x", mode: "shout")
        let messages = Self.configuration(limit).validate().map(\.description)
        #expect(messages.count == 5, "\(messages)")
        #expect(messages.contains("route 'orders': rate_limit.requests: must be from 1 to 1000000000, got 0"))
        #expect(
            messages.contains(
                "route 'orders': rate_limit.per: must be a duration from 1ms to 24h such as 500ms, 1s, 1m or 1h, "
                    + "got 'soon'"))
        #expect(messages.contains("route 'orders': rate_limit.burst: must be from 1 to 1000000000, got -1"))
        #expect(
            messages.contains(
                "route 'orders': rate_limit.key: must be none, client_ip, header:NAME or identity, got 'cookie:x'"))
        #expect(messages.contains("route 'orders': rate_limit.mode: must be enforce or observe, got 'shout'"))
        let badHeader = Self.configuration(RateLimit(requests: 1, key: "header:X Api")).validate().map(\.description)
        #expect(badHeader == ["route 'orders': rate_limit.key: invalid header name 'X Api'"])
        let good = RateLimit(requests: 100, per: "1s", burst: 200, key: "header:X-Api-Key", mode: "observe")
        #expect(Self.configuration(good).validate().isEmpty)
    }

    @Test func encodesAsRateLimitAndOldSnapshotsStillDecode() throws {
        let route = Route(
            name: "orders", legacy: "legacy", rateLimit: RateLimit(requests: 100, per: "1s", key: "client_ip"))
        let json = String(decoding: try JSONEncoder().encode(route), as: UTF8.self)
        #expect(json.contains("\"rate_limit\":{"), "\(json)")
        #expect(!json.contains("burst") && !json.contains("mode"), "unset fields are left out: \(json)")
        #expect(try JSONDecoder().decode(Route.self, from: Data(json.utf8)) == route)
        let old = try JSONDecoder().decode(Route.self, from: Data(#"{"name":"orders","legacy":"legacy"}"#.utf8))
        #expect(old.rateLimit == nil)
        let seconds = try JSONDecoder().decode(RateLimit.self, from: Data(#"{"requests":5,"per":10}"#.utf8))
        #expect(seconds.per == "10s" && seconds.perMilliseconds == 10_000)
        let bare = try JSONDecoder().decode(RateLimit.self, from: Data(#"{"requests":5}"#.utf8))
        #expect(bare == RateLimit(requests: 5, per: "1s") && bare.effectiveBurst == 5 && !bare.observes)
    }

    @Test func everyDecisionOfTheRouteCarriesItsLimit() throws {
        let limited = try RoutingTable(configuration: Self.configuration(RateLimit(requests: 3)), revision: 1)
        let decision = limited.decide(Fixtures.request())
        #expect(decision.rateLimit?.requests == 3 && decision.rateLimit?.burst == 3)
        #expect(decision.rateLimit?.periodMilliseconds == 1000 && decision.rateLimit?.observes == false)
        let killed = try RoutingTable(
            configuration: Self.configuration(RateLimit(requests: 3), killed: true), revision: 1)
        #expect(killed.decide(Fixtures.request()).rateLimit != nil, "the kill switch changes the upstream only")
        let free = try RoutingTable(configuration: Self.configuration(nil), revision: 1)
        #expect(free.decide(Fixtures.request()).rateLimit == nil)
        #expect(free.decide(Fixtures.request(target: "/elsewhere")).rateLimit == nil)
    }

    @Test func keysGroupRequestsAsConfigured() throws {
        func policy(_ key: String, identity: Attribute? = nil) throws -> RateLimitPolicy {
            let table = try RoutingTable(
                configuration: Self.configuration(RateLimit(requests: 1, key: key), identity: identity), revision: 1)
            return try #require(table.decide(Fixtures.request()).rateLimit)
        }
        let alice = Fixtures.request(headers: [("X-Api-Key", "alice"), ("X-User", "u1")], client: "10.0.0.1")
        let bob = Fixtures.request(headers: [("x-api-key", "bob"), ("X-User", "u1")], client: "10.0.0.2")
        let anonymous = Fixtures.request(client: "10.0.0.1")
        let anonymousToo = Fixtures.request(client: "10.0.0.3")

        let none = try policy("none")
        #expect(none.bucketKey(alice) == none.bucketKey(bob))

        let client = try policy("client_ip")
        #expect(client.bucketKey(alice) == client.bucketKey(anonymous))
        #expect(client.bucketKey(alice) != client.bucketKey(bob))

        let header = try policy("header:X-Api-Key")
        #expect(header.bucketKey(alice) != header.bucketKey(bob))
        #expect(header.bucketKey(alice) == header.bucketKey(Fixtures.request(headers: [("X-API-KEY", "alice")])))
        #expect(header.bucketKey(anonymous) == header.bucketKey(anonymousToo), "without the header: one bucket")

        // identity: the store-wide identity, else (as sticky routing) the client address.
        let identity = try policy("identity", identity: .header("X-User"))
        #expect(identity.key == .identity(.header("X-User")))
        #expect(identity.bucketKey(alice) == identity.bucketKey(bob), "one user, two addresses")
        #expect(identity.bucketKey(anonymous) != identity.bucketKey(anonymousToo))
        #expect(identity.bucketKey(anonymous) == client.bucketKey(anonymous))
        #expect(try policy("identity").key == .clientIP, "no store-wide identity: the client address")
    }
}
