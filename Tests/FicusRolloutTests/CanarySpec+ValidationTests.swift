import FicusCore
import FicusRollout
import Foundation
import Testing

@Suite("Canary spec validation")
struct CanarySpecValidationTests {
    @Test("The issue's example is valid")
    func defaultsAreValid() {
        #expect(Fixtures.spec(maxDiffRate: 0.005).validate() == [])
        #expect(Fixtures.spec(steps: [100]).validate() == [])
    }

    @Test(
        "Each bad field is named with what is wrong",
        arguments: [
            (Fixtures.spec(steps: [5, 1, 100]), "steps: must be strictly increasing, step 2 (1%) follows 5%"),
            (Fixtures.spec(steps: [1, 5, 5, 100]), "steps: must be strictly increasing, step 3 (5%) follows 5%"),
            (Fixtures.spec(steps: [1, 5, 50]), "steps: must end at 100, ends at 50%"),
            (Fixtures.spec(steps: [0, 100]), "steps: step 1 is 0%, must be within 1...100"),
            (Fixtures.spec(steps: []), "steps: must not be empty"),
        ]
    )
    func stepErrors(spec: CanarySpec, message: String) {
        #expect(spec.validate().map(\.description) == ["canary 'orders': \(message)"])
    }

    @Test("Intervals and thresholds out of range are named by their CLI option")
    func thresholdErrors() {
        var spec = Fixtures.spec()
        spec.interval = 0.5
        spec.gates = CanaryGates(maxErrorRate: 1.5, maxP99Ratio: 0, maxDiffRate: -0.1, minRequests: 0)
        spec.target = ""
        spec.maxHold = 0
        #expect(
            spec.validate().map(\.description) == [
                "canary 'orders': to: must not be empty",
                "canary 'orders': interval: must be at least 1 second, is 0.5",
                "canary 'orders': max-hold: must be within 1...1000 intervals, is 0",
                "canary 'orders': max-error-rate: must be within 0...1 (0%...100%), is 1.5",
                "canary 'orders': max-p99-ratio: must be greater than 0, is 0",
                "canary 'orders': max-diff-rate: must be within 0...1 (0%...100%), is -0.1",
                "canary 'orders': min-requests: must be at least 1, is 0",
            ]
        )
        spec = Fixtures.spec()
        spec.interval = .nan
        #expect(spec.validate().map(\.field) == ["interval"])
    }

    /// A configuration with route `orders` (legacy `legacy`, shadowed or not) and upstreams `legacy`, `orders-v2`.
    static func configuration(shadowed: Bool) -> Configuration {
        Configuration(
            upstreams: [
                Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 8001)]),
                Upstream(name: "orders-v2", addresses: [Endpoint(host: "127.0.0.1", port: 8002)]),
            ],
            routes: [Route(name: "orders", path: "/orders", legacy: "legacy", shadow: shadowed ? ShadowPolicy() : nil)]
        )
    }

    @Test("Against the configuration: the route and target must exist, and a diff gate needs a shadow policy")
    func configurationErrors() {
        #expect(Fixtures.spec(maxDiffRate: 0.005).validate(in: Self.configuration(shadowed: true)) == [])
        let unshadowed = Fixtures.spec(maxDiffRate: 0.005).validate(in: Self.configuration(shadowed: false))
        #expect(unshadowed.map(\.field) == ["max-diff-rate"])
        #expect(unshadowed.map(\.message) == ["route 'orders' has no shadow policy, so there are no diffs to gate on"])

        var spec = Fixtures.spec()
        spec.target = "legacy"
        #expect(
            spec.validate(in: Self.configuration(shadowed: false)).map(\.description) == [
                "canary 'orders': to: 'legacy' is the route's legacy upstream; a canary moves traffic away from it"
            ]
        )
        spec.target = "nope"
        #expect(spec.validate(in: Self.configuration(shadowed: false)).map(\.message) == ["unknown upstream 'nope'"])
        spec.route = "missing"
        #expect(
            spec.validate(in: Self.configuration(shadowed: false)).map(\.description) == [
                "canary 'missing': route: unknown route 'missing'"
            ]
        )
    }

    @Test("The spec survives a JSON round trip")
    func specRoundTrips() throws {
        let spec = Fixtures.spec(maxDiffRate: 0.005, reverseShadow: true)
        let data = try JSONEncoder().encode(spec)
        #expect(try JSONDecoder().decode(CanarySpec.self, from: data) == spec)
    }
}
