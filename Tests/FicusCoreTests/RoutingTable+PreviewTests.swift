import Foundation
import Testing

@testable import FicusCore

@Suite("RoutingTable blue-green previews")
struct RoutingTablePreviewTests {
    static let blue = [Endpoint(host: "127.0.0.1", port: 7001)]
    static let green = [Endpoint(host: "127.0.0.1", port: 7002)]

    /// `orders` with blue active and green deployed; a route on it with a legacy fallback and a shadow policy.
    static func configuration(
        active: BlueGreenSlots.Slot = .blue,
        green: [Endpoint] = Self.green,
        previewSegment: String? = "testers",
        killed: Bool = false
    ) -> Configuration {
        let slots = BlueGreenSlots(blue: Self.blue, green: green, active: active, previewSegment: previewSegment)
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

    static func request(_ headers: [(String, String)], trusted: Bool) -> RequestFacts {
        var facts = RequestFacts(target: "/orders/1", headers: headers, clientAddress: IPAddress("10.0.0.9"))
        facts.trustsOverrides = trusted
        return facts
    }

    @Test func aTrustedClientsHeaderReachesTheIdleSlot() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let decision = table.decide(Self.request([("X-Ficus-Preview", " Green ")], trusted: true))
        #expect(decision.upstream == "orders@green")
        #expect(decision.preview == .green)
        #expect(decision.shadow == nil, "previews are never shadowed")
        #expect(table.upstream(named: "orders@green")?.addresses == Self.green)
        #expect(table.upstream(named: "orders")?.addresses == Self.blue)
    }

    @Test func anUntrustedClientsHeaderIsIgnored() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let request = Self.request([("X-Ficus-Preview", "green")], trusted: false)
        let decision = table.decide(request)
        #expect(decision.upstream == "orders")
        #expect(decision.preview == nil)
        #expect(decision.shadow == "legacy", "an ordinary request keeps its shadow")
        let explanation = table.explain(request)
        #expect(explanation.steps.contains(.previewIgnored(upstream: "orders", reason: "the client is not trusted")))
    }

    @Test func aHeaderNamingTheActiveSlotChangesNothing() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let request = Self.request([("X-Ficus-Preview", "blue")], trusted: true)
        #expect(table.decide(request).upstream == "orders")
        #expect(
            table.explain(request).description.contains("preview of 'orders' ignored: 'blue' is not the idle slot"))
    }

    @Test func thePreviewSegmentReachesTheIdleSlotWithoutAnyHeader() throws {
        let table = try RoutingTable(configuration: Self.configuration(), revision: 1)
        let tester = Self.request([("X-Team", "qa")], trusted: false)
        #expect(table.decide(tester).upstream == "orders@green")
        let explanation = table.explain(tester)
        #expect(explanation.decision == table.decide(tester))
        #expect(explanation.steps.last == .previewed(upstream: "orders", slot: "green", via: "segment 'testers'"))
        #expect(explanation.description.hasSuffix("=> orders@green (route default, preview of idle slot 'green')"))

        let other = Self.request([("X-Team", "ops")], trusted: false)
        #expect(table.decide(other).upstream == "orders")
        #expect(table.explain(other).description.contains("preview segment of 'orders' does not match"))
    }

    @Test func afterASwitchThePreviewFollowsTheIdleSlot() throws {
        let table = try RoutingTable(configuration: Self.configuration(active: .green), revision: 2)
        #expect(table.decide(Self.request([("X-Team", "qa")], trusted: false)).upstream == "orders@blue")
        #expect(table.upstream(named: "orders@blue")?.addresses == Self.blue)
        #expect(table.upstream(named: "orders@green") == nil)
    }

    @Test func anEmptyIdleSlotOrTheKillSwitchServesTheActiveSlot() throws {
        let empty = try RoutingTable(configuration: Self.configuration(green: []), revision: 1)
        #expect(empty.decide(Self.request([("X-Ficus-Preview", "green")], trusted: true)).upstream == "orders")
        #expect(empty.upstream(named: "orders@green") == nil)

        let killed = try RoutingTable(configuration: Self.configuration(killed: true), revision: 1)
        let decision = killed.decide(Self.request([("X-Ficus-Preview", "green")], trusted: true))
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

    @Test func slotsKeepTheirPreviewSegmentThroughJSON() throws {
        let configuration = Self.configuration()
        let data = try JSONEncoder().encode(configuration)
        #expect(String(decoding: data, as: UTF8.self).contains("\"preview_segment\":\"testers\""))
        #expect(try JSONDecoder().decode(Configuration.self, from: data) == configuration)
    }
}
