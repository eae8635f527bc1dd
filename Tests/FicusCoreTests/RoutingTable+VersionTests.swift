import Testing

@testable import FicusCore

@Suite("RoutingTable version routing")
struct RoutingTableVersionTests {
    static func upstream(_ match: VersionMatch, _ headers: [(String, String)]) throws -> String {
        let table = try Fixtures.table(rules: [Rule(name: "v", condition: .version(match), upstream: "orders-v2")])
        return table.decide(Fixtures.request(headers: headers)).upstream
    }

    @Test func exactHeaderVersion() throws {
        let match = VersionMatch(header: "X-API-Version", equals: "2")
        #expect(try Self.upstream(match, [("x-api-version", "2")]) == "orders-v2")
        #expect(try Self.upstream(match, [("X-API-Version", " 2 ")]) == "orders-v2")
        #expect(try Self.upstream(match, [("X-API-Version", "2.0")]) == "legacy")
        #expect(try Self.upstream(match, [("X-API-Version", "3")]) == "legacy")
        #expect(try Self.upstream(match, []) == "legacy")
    }

    @Test func semverRangeOnAHeader() throws {
        let match = VersionMatch(header: "Accept-Version", range: ">=2.0.0 <3")
        #expect(try Self.upstream(match, [("Accept-Version", "2")]) == "orders-v2")
        #expect(try Self.upstream(match, [("Accept-Version", "v2.7.1")]) == "orders-v2")
        #expect(try Self.upstream(match, [("Accept-Version", "3.0.0")]) == "legacy")
        #expect(try Self.upstream(match, [("Accept-Version", "1.9")]) == "legacy")
        #expect(try Self.upstream(match, [("Accept-Version", "two")]) == "legacy")
    }

    /// A client's version past nine digits per part is not a version (never a trap: the digits used to overflow).
    @Test func hugeVersionNumbersFromAClientAreNotVersions() throws {
        let match = VersionMatch(header: "X-API-Version", range: ">=2.0.0")
        let huge = String(repeating: "8", count: 40)
        #expect(try Self.upstream(match, [("X-API-Version", huge)]) == "legacy")
        #expect(try Self.upstream(match, [("X-API-Version", "2.\(huge).0")]) == "legacy")
        #expect(try Self.upstream(match, [("X-API-Version", "9223372036854775808")]) == "legacy")
        #expect(try Self.upstream(match, [("X-API-Version", "1234567890")]) == "legacy")
        #expect(try Self.upstream(match, [("X-API-Version", "999999999")]) == "orders-v2")
        #expect(SemanticVersion(huge) == nil)
        #expect(SemanticVersion("999999999.999999999.999999999") != nil)
    }

    @Test func mediaTypeParameter() throws {
        let exact = VersionMatch(header: "Accept", parameter: "version", equals: "2")
        #expect(try Self.upstream(exact, [("Accept", "application/vnd.acme+json; version=2")]) == "orders-v2")
        #expect(try Self.upstream(exact, [("Accept", "application/vnd.acme+json;Version=\"2\"")]) == "orders-v2")
        #expect(
            try Self.upstream(exact, [("Accept", "text/html, application/vnd.acme+json; q=0.9; version=2")])
                == "orders-v2"
        )
        #expect(try Self.upstream(exact, [("Accept", "application/vnd.acme+json; version=1")]) == "legacy")
        #expect(try Self.upstream(exact, [("Accept", "application/json")]) == "legacy")
        #expect(try Self.upstream(exact, [("Accept", "application/version=2")]) == "legacy")
        let range = VersionMatch(header: "Accept", parameter: "version", range: "^2.1")
        #expect(try Self.upstream(range, [("Accept", "application/vnd.acme+json; version=2.4")]) == "orders-v2")
        #expect(try Self.upstream(range, [("Accept", "application/vnd.acme+json; version=2.0")]) == "legacy")
    }
}
