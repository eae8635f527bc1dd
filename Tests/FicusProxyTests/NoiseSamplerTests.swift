import Testing

@testable import FicusProxy

@Suite("Noise sampling: a floor per endpoint, then a percentage per request")
struct NoiseSamplerTests {
    /// One URL, one client: the first K requests of the endpoint are noise samples, then the percentage decides.
    @Test func everyEndpointGetsItsFloor() {
        let sampler = NoiseSampler(floor: 20)
        let drawn = (0..<100).filter { _ in sampler.draw(route: "catalog", method: "GET", path: "/api/config", percent: 0) }
        #expect(drawn == Array(0..<20))
        // Another endpoint of the same route (another template) has a floor of its own; ids share one template.
        let orders = (0..<30).filter { sampler.draw(route: "catalog", method: "GET", path: "/orders/\($0 + 100)", percent: 0) }
        #expect(orders.count == 20)
        // The method is part of the endpoint.
        #expect(sampler.draw(route: "catalog", method: "HEAD", path: "/api/config", percent: 0))
    }

    /// Past the floor the draw follows the percentage, per request.
    @Test func pastTheFloorThePercentageApplies() {
        let sampler = NoiseSampler(floor: 0)
        #expect((0..<1000).allSatisfy { _ in sampler.draw(route: "r", method: "GET", path: "/a", percent: 100) })
        #expect(!(0..<1000).contains { _ in sampler.draw(route: "r", method: "GET", path: "/a", percent: 0) })
        let tenth = (0..<10_000).filter { _ in sampler.draw(route: "r", method: "GET", path: "/a", percent: 10) }.count
        #expect((800...1200).contains(tenth), "\(tenth) of 10000 at 10%")
    }

    /// A client inventing paths cannot grow the counts past their bound; new endpoints then get the percentage.
    @Test func trackedEndpointsAreBounded() {
        let sampler = NoiseSampler(floor: 5, maxEndpoints: 3)
        for name in ["a", "b", "c"] {
            #expect(sampler.draw(route: "r", method: "GET", path: "/\(name)", percent: 0))
        }
        #expect(!sampler.draw(route: "r", method: "GET", path: "/d", percent: 0))
        #expect(sampler.draw(route: "r", method: "GET", path: "/a", percent: 0), "tracked endpoints keep their floor")
    }
}
