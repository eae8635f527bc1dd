import Testing

@testable import FicusCore

@Suite("SemanticVersion and ranges")
struct SemanticVersionRangeTests {
    @Test func parsesLeniently() {
        #expect(SemanticVersion("2") == SemanticVersion(major: 2))
        #expect(SemanticVersion("v2.1") == SemanticVersion(major: 2, minor: 1))
        #expect(
            SemanticVersion(" 1.2.3-rc.1+build.5 ")
                == SemanticVersion(major: 1, minor: 2, patch: 3, prerelease: ["rc", "1"])
        )
        #expect(SemanticVersion("1.2.3+b") == SemanticVersion(major: 1, minor: 2, patch: 3))
        for bad in ["", "v", "1.", "1.2.3.4", "1.2-rc", "1.2.3-", "1.2.3-a..b", "1.2.3+", "x.1", "1234567890", "1 2"] {
            #expect(SemanticVersion(bad) == nil, "\(bad)")
        }
        #expect(SemanticVersion("1.2.3-rc.1")?.description == "1.2.3-rc.1")
    }

    @Test func ordersBySemverPrecedence() throws {
        let ordered = [
            "1.0.0-alpha", "1.0.0-alpha.1", "1.0.0-alpha.beta", "1.0.0-beta", "1.0.0-beta.2", "1.0.0-beta.11",
            "1.0.0-rc.1", "1.0.0", "1.0.1", "1.1.0", "1.10.0", "2.0.0",
        ].map { SemanticVersion($0)! }
        for (lower, higher) in zip(ordered, ordered.dropFirst()) {
            #expect(lower < higher, "\(lower) < \(higher)")
            #expect(!(higher < lower))
        }
    }

    @Test(arguments: [
        (">=2.0.0 <3", "2.0.0", true),
        (">=2.0.0 <3", "2.99.99", true),
        (">=2.0.0 <3", "3.0.0", false),
        (">=2.0.0 <3", "1.9.9", false),
        ("^2.1", "2.9.0", true),
        ("^2.1", "2.0.9", false),
        ("^2.1", "3.0.0", false),
        ("^0.2.3", "0.2.9", true),
        ("^0.2.3", "0.3.0", false),
        ("^0.0.3", "0.0.4", false),
        ("~1.4", "1.4.9", true),
        ("~1.4", "1.5.0", false),
        ("~1", "1.9.0", true),
        ("2.x", "2.5.1", true),
        ("2.x", "3.0.0", false),
        ("2", "2.1.0", true),
        ("2.1", "2.2.0", false),
        ("=1.2.3", "1.2.3", true),
        ("1.2.3", "1.2.4", false),
        (">1", "1.9.9", false),
        (">1", "2.0.0", true),
        (">1.2.3", "1.2.4", true),
        ("<=2", "2.9.9", true),
        ("<=2", "3.0.0", false),
        ("<2.0.0", "2.0.0-rc.1", true),
        ("1.2 - 2.3", "2.3.9", true),
        ("1.2 - 2.3", "2.4.0", false),
        ("1.2 - 2.3", "1.1.9", false),
        ("<2 || >=4", "4.1.0", true),
        ("<2 || >=4", "3.0.0", false),
        ("*", "0.0.1", true),
        ("", "9.9.9", true),
    ])
    func rangeMembership(range: String, version: String, expected: Bool) throws {
        let parsed = try #require(SemanticVersionRange(range))
        let candidate = try #require(SemanticVersion(version))
        #expect(parsed.contains(candidate) == expected)
    }

    @Test func rejectsMalformedRanges() {
        for bad in [">=>2", "~>1", "1.2.3.4", "a", ">=2 <x.1", "^", "1.x.2"] {
            #expect(SemanticVersionRange(bad) == nil, "\(bad)")
        }
    }
}
