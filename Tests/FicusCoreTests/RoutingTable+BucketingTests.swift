import Testing

@testable import FicusCore

@Suite("RoutingTable sticky percentage buckets")
struct RoutingTableBucketingTests {
    static func canary(_ percentage: Int, stickiness: Attribute? = .header("X-User-Id")) throws -> RoutingTable {
        try Fixtures.table(rules: [
            Rule(name: "canary", condition: .percentage(percentage), upstream: "orders-v2", stickiness: stickiness)
        ])
    }

    static func user(_ id: String, client: String? = "10.0.0.1") -> RequestFacts {
        Fixtures.request(headers: [("X-User-Id", id)], client: client)
    }

    /// The values Unleash's SDKs agree on (`normalizedValue(id, groupId)` in unleash-client-node and the spec).
    @Test func agreesWithUnleashNormalisation() {
        #expect(Murmur3.bucket(group: "gr1", value: "123") == 73)
        #expect(Murmur3.bucket(group: "groupX", value: "999") == 25)
    }

    @Test func bucketIsMurmurOfRuleNameAndStickinessValue() throws {
        let table = try Self.canary(100)
        let decision = table.decide(Self.user("u-42"))
        let expected = Int(Murmur3.hash32("canary:u-42") % 100) + 1
        #expect(decision.bucket == expected)
        #expect(decision.rule == "canary")
    }

    /// The whole hash behind the bucket is the decision's sticky hash: one per user, which proxies count distinct
    /// values of to tell a canary that splits over enough users from one that does not.
    @Test func theStickyHashIsTheWholeHashBehindTheBucket() throws {
        let table = try Self.canary(50)
        let decision = table.decide(Self.user("u-42"))
        #expect(decision.stickyHash == Murmur3.hash32("canary:u-42"))
        #expect(decision.bucket == Int(Murmur3.hash32("canary:u-42") % 100) + 1)
        #expect(table.decide(Self.user("u-42", client: "192.0.2.9")).stickyHash == decision.stickyHash)
        let hashes = Set((0..<1000).compactMap { table.decide(Self.user("user-\($0)")).stickyHash })
        #expect(hashes.count == 1000, "distinct users give distinct hashes")
        // Without a value of its own the rule falls back to the client address, and so does the hash.
        let anonymous = table.decide(Fixtures.request(client: "10.0.0.7"))
        #expect(anonymous.stickyHash == Murmur3.hash32("canary:10.0.0.7"))
        // A route without a percentage rule has no sticky hash.
        #expect(try Fixtures.table(rules: []).decide(Self.user("u-42")).stickyHash == nil)
    }

    @Test func tenPercentTakesTenPercentOfAHundredThousandIds() throws {
        let table = try Self.canary(10)
        var inside = 0
        var counts = [Int](repeating: 0, count: 101)
        for index in 0..<100_000 {
            let decision = table.decide(Self.user("user-\(index)"))
            let bucket = try #require(decision.bucket)
            counts[bucket] += 1
            if decision.upstream == "orders-v2" {
                inside += 1
                #expect(bucket <= 10)
            }
        }
        let share = Double(inside) / 1000
        #expect(abs(share - 10) <= 0.5, "share \(share)%")
        #expect(counts[0] == 0)
        // Chi-square with 99 degrees of freedom; 148.2 is the critical value at p = 0.001.
        let expected = 1000.0
        let chiSquare = counts[1...].reduce(0.0) { $0 + (Double($1) - expected) * (Double($1) - expected) / expected }
        #expect(chiSquare < 148.2, "chi-square \(chiSquare)")
    }

    @Test func sameIdAlwaysGetsTheSameBucketWhateverElseChanges() throws {
        let first = try Self.canary(30)
        let reordered = try Fixtures.table(rules: [
            Rule(name: "unrelated", condition: .percentage(0), upstream: "orders-v3", stickiness: .header("X-User-Id")),
            Rule(name: "canary", condition: .percentage(30), upstream: "orders-v2", stickiness: .header("X-User-Id")),
        ])
        for index in 0..<200 {
            let request = Self.user("id-\(index)", client: "192.0.2.\(index % 250)")
            let bucket = first.decide(request).bucket
            #expect(first.decide(request).bucket == bucket)
            #expect(reordered.decide(request).bucket == bucket)
            #expect(reordered.decide(request).upstream == first.decide(request).upstream)
        }
    }

    @Test func growingThePercentageOnlyAddsUsers() throws {
        let ten = try Self.canary(10)
        let twenty = try Self.canary(20)
        for index in 0..<2000 {
            let request = Self.user("grow-\(index)")
            if ten.decide(request).upstream == "orders-v2" {
                #expect(twenty.decide(request).upstream == "orders-v2")
            }
        }
    }

    @Test func stickinessFallsBackToTheClientAddress() throws {
        let table = try Self.canary(100)
        let withoutHeader = table.decide(Fixtures.request(client: "203.0.113.7"))
        #expect(withoutHeader.bucket == Murmur3.bucket(group: "canary", value: "203.0.113.7"))
        let emptyHeader = table.decide(Fixtures.request(headers: [("X-User-Id", "")], client: "203.0.113.7"))
        #expect(emptyHeader.bucket == withoutHeader.bucket)
        let mapped = table.decide(Fixtures.request(client: "::ffff:203.0.113.7"))
        #expect(mapped.bucket == withoutHeader.bucket)
        let byAddress = try Self.canary(100, stickiness: nil)
        #expect(
            byAddress.decide(Self.user("u-1", client: "2001:db8::1")).bucket
                == Murmur3.bucket(group: "canary", value: "2001:db8::1")
        )
    }

    @Test func withoutAnyStickinessValueOnlyAHundredPercentMatches() throws {
        let anonymous = Fixtures.request(client: nil)
        let ninetyNine = try Self.canary(99).decide(anonymous)
        #expect(ninetyNine.upstream == "legacy")
        #expect(ninetyNine.bucket == nil)
        #expect(try Self.canary(100).decide(anonymous).upstream == "orders-v2")
        #expect(try Self.canary(0).decide(Self.user("anyone")).upstream == "legacy")
    }

    @Test func cookieAndQueryStickiness() throws {
        let cookie = try Self.canary(100, stickiness: .cookie("sid"))
        #expect(
            cookie.decide(Fixtures.request(headers: [("Cookie", "sid=abc")])).bucket
                == Murmur3.bucket(group: "canary", value: "abc")
        )
        let query = try Self.canary(100, stickiness: .query("user"))
        #expect(
            query.decide(Fixtures.request(target: "/orders?user=a%20b")).bucket
                == Murmur3.bucket(group: "canary", value: "a b")
        )
    }

    @Test func decisionReportsTheBucketOfTheLastEvaluatedPercentageRule() throws {
        let table = try Fixtures.table(rules: [
            Rule(name: "never", condition: .percentage(0), upstream: "orders-v3", stickiness: .header("X-User-Id"))
        ])
        let decision = table.decide(Self.user("u-9"))
        #expect(decision.reason == .routeDefault)
        #expect(decision.bucket == Murmur3.bucket(group: "never", value: "u-9"))
    }

    /// A percentage rule and a shadow policy that name no attribute hash the store-wide identity: one address
    /// behind a load balancer splits by user once the identity is a header (issue 15).
    @Test func theStoreWideIdentityIsWhatUnnamedStickinessHashes() throws {
        var configuration = Fixtures.configuration(rules: [
            Rule(name: "canary", condition: .percentage(50), upstream: "orders-v2")
        ])
        let byAddress = try RoutingTable(configuration: configuration, revision: 1)
        let oneAddress = (0..<200).map { byAddress.decide(Self.user("u-\($0)")).upstream }
        #expect(Set(oneAddress).count == 1, "client_ip: every request of one address lands in one bucket")
        configuration.identity = .header("X-User-Id")
        let byUser = try RoutingTable(configuration: configuration, revision: 2)
        let split = (0..<2000).filter { byUser.decide(Self.user("u-\($0)")).upstream == "orders-v2" }.count
        #expect((800...1200).contains(split), "\(split) of 2000 at 50%")
        // The same value hashes to the same bucket as naming the attribute on the rule would.
        let named = try Self.canary(50, stickiness: .header("X-User-Id"))
        #expect(byUser.decide(Self.user("u-7")).bucket == named.decide(Self.user("u-7")).bucket)
        #expect(byUser.explain(Self.user("u-7")).description.contains("header:X-User-Id"))
        // Invalid identities are refused like any attribute.
        configuration.identity = .header("bad name")
        #expect(configuration.validate().contains { $0.object == "identity" })
    }
}
