import Foundation
import Testing

@testable import FicusCore

@Suite("RoutingTable blue-green previews")
struct RoutingTablePreviewTests {
    static let blue = [Endpoint(host: "127.0.0.1", port: 7001)]
    static let green = [Endpoint(host: "127.0.0.1", port: 7002)]

    /// `orders` with blue active and green deployed; a route on it with a legacy fallback and a shadow policy.
    /// The preview token of `orders` in `configuration()`.
    static let token = "5f2b9c0e1d4a7b6c8e9f0a1b2c3d4e5f60718293a4b5c6d7e8f9a0b1c2d3e4f5"

    static func configuration(
        active: BlueGreenSlots.Slot = .blue,
        green: [Endpoint] = Self.green,
        previewSegment: String? = "testers",
        token: String? = Self.token,
        killed: Bool = false
    ) -> Configuration {
        let slots = BlueGreenSlots(
            blue: Self.blue,
            green: green,
            active: active,
            previewSegment: previewSegment,
            previewTokenSHA256: token.map { PreviewToken.digest(of: $0) }
        )
        var route = Route(name: "orders", path: "/orders", legacy: "legacy", defaultUpstream: "orders")
        route.shadow = ShadowPolicy(to: "legacy", percent: 100)
        return Configuration(
            upstreams: [
                Upstream(name: "legacy", addresses: [Endpoint(host: "127.0.0.1", port: 7000)]),
                Upstream(name: "orders", slots: slots),
            ],
            routes: [route],
            segments: [Segment(name: "testers", constraints: [Predicate(.header("X-Team"), .in, ["qa"])])],
            killed: killed
        )
    }

    static func request(_ headers: [(String, String)]) -> RequestFacts {
        RequestFacts(target: "/orders/1", headers: headers, clientAddress: IPAddress("10.0.0.9"))
    }

    @Test func aHeaderWithThePreviewTokenReachesTheIdleSlot() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let decision = table.decide(Self.request([("X-Ficus-Preview", " Green ; Token=\(Self.token) ")]))
        #expect(decision.upstream == "orders@green")
        #expect(decision.preview == .green)
        #expect(decision.shadow == nil, "previews are never shadowed")
        #expect(table.upstream(named: "orders@green")?.addresses == Self.green)
        #expect(table.upstream(named: "orders")?.addresses == Self.blue)
    }

    /// Missing, wrong, rotated or absent tokens: the header is ignored, whoever sends it, and the explanation says why.
    @Test(arguments: [
        ("green", "no token"),
        ("green; token=", "the token is not the preview token"),
        ("green; token=wrong", "the token is not the preview token"),
        ("green; token=\(String(RoutingTablePreviewTests.token.dropLast()))", "the token is not the preview token"),
        ("green; token=\(RoutingTablePreviewTests.token)x", "the token is not the preview token"),
        ("green; tok=\(RoutingTablePreviewTests.token)", "no token"),
    ])
    func aHeaderWithoutThePreviewTokenIsIgnored(header: String, reason: String) throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let request = Self.request([("X-Ficus-Preview", header)])
        let decision = table.decide(request)
        #expect(decision.upstream == "orders")
        #expect(decision.preview == nil)
        #expect(decision.shadow == "legacy", "an ordinary request keeps its shadow")
        let explanation = table.explain(request)
        #expect(explanation.description.contains("preview of 'orders' ignored: \(reason)"), "\(explanation)")
    }

    /// A rotated token retires the old one at once.
    @Test func aRotatedTokenRetiresTheOldOne() throws {
        let rotated = PreviewToken.generate()
        #expect(rotated != Self.token && rotated.count == 64)
        let table = try RoutingTable(configuration: Self.configuration(token: rotated), revision: 2)
        #expect(table.decide(Self.request([("X-Ficus-Preview", "green; token=\(Self.token)")])).upstream == "orders")
        #expect(
            table.decide(Self.request([("X-Ficus-Preview", "green; token=\(rotated)")])).upstream == "orders@green")
    }

    /// Without a token on the upstream, no header previews, however it is written.
    @Test func anUpstreamWithoutATokenTakesNoHeader() throws {
        let table = try RoutingTable(configuration: Self.configuration(token: nil), revision: 1)
        let request = Self.request([("X-Ficus-Preview", "green; token=\(Self.token)")])
        #expect(table.decide(request).upstream == "orders")
        #expect(table.explain(request).description.contains("the upstream has no preview token"))
    }

    @Test func aHeaderNamingTheActiveSlotChangesNothing() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let request = Self.request([("X-Ficus-Preview", "blue; token=\(Self.token)")])
        #expect(table.decide(request).upstream == "orders")
        #expect(
            table.explain(request).description.contains("preview of 'orders' ignored: 'blue' is not the idle slot"))
    }

    @Test func thePreviewSegmentReachesTheIdleSlotWithoutAnyHeader() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let tester = Self.request([("X-Team", "qa")])
        #expect(table.decide(tester).upstream == "orders@green")
        let explanation = table.explain(tester)
        #expect(explanation.decision == table.decide(tester))
        #expect(explanation.steps.last == .previewed(upstream: "orders", slot: "green", via: "segment 'testers'"))
        #expect(explanation.description.hasSuffix("=> orders@green (route default, preview of idle slot 'green')"))

        let other = Self.request([("X-Team", "ops")])
        #expect(table.decide(other).upstream == "orders")
        #expect(table.explain(other).description.contains("preview segment of 'orders' does not match"))
    }

    @Test func afterASwitchThePreviewFollowsTheIdleSlot() throws {
        let table = try RoutingTable(configuration: Self.configuration(active: .green), revision: 2)
        #expect(table.decide(Self.request([("X-Team", "qa")])).upstream == "orders@blue")
        #expect(table.upstream(named: "orders@blue")?.addresses == Self.blue)
        #expect(table.upstream(named: "orders@green") == nil)
    }

    @Test func anEmptyIdleSlotOrTheKillSwitchServesTheActiveSlot() throws {
        let empty = try RoutingTable(configuration: Self.configuration(green: []), revision: 1)
        #expect(empty.decide(Self.request([("X-Ficus-Preview", "green; token=\(Self.token)")])).upstream == "orders")
        #expect(empty.upstream(named: "orders@green") == nil)

        let killed = try RoutingTable(configuration: Self.configuration(killed: true), revision: 1)
        let decision = killed.decide(Self.request([("X-Ficus-Preview", "green; token=\(Self.token)")]))
        #expect(decision.upstream == "legacy")
        #expect(decision.preview == nil)
    }

    @Test func validationRejectsAnUnknownPreviewSegmentAndReservedNames() throws {
        var configuration = Self.configuration(previewSegment: "nobody")
        configuration.upstreams.append(Upstream(name: "a@b", addresses: Self.blue))
        let messages = configuration.validate().map(\.description)
        #expect(messages.contains("upstream 'orders': slots preview_segment: unknown segment 'nobody'"), "\(messages)")
        #expect(
            messages.contains {
                $0.hasPrefix("upstream 'a@b': name: must not contain '@'")
            },
            "\(messages)"
        )
    }

    @Test func validationRejectsADigestThatIsNotOne() throws {
        var configuration = Self.configuration()
        configuration.upstreams[1].slots?.previewTokenSHA256 = Self.token.uppercased()
        let messages = configuration.validate().map(\.description)
        #expect(messages.contains { $0.contains("slots preview_token_sha256: must be a SHA-256 digest") }, "\(messages)")
    }

    @Test func slotsKeepTheirPreviewSegmentAndTokenDigestThroughJSON() throws {
        let configuration = Self.configuration()
        let data = try JSONEncoder().encode(configuration)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains("\"preview_segment\":\"testers\""))
        #expect(text.contains("\"preview_token_sha256\":\"\(PreviewToken.digest(of: Self.token))\""))
        #expect(!text.contains(Self.token), "the token itself is never stored")
        #expect(try JSONDecoder().decode(Configuration.self, from: data) == configuration)
    }
}
