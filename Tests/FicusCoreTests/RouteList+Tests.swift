import Foundation
import Synchronization
import Testing

@testable import FicusCore

/// Routes in their stored form are decoded when, and only when, something reads them: names, equality of one stored
/// version with itself and validation against a configuration they are unchanged since read nothing.
@Suite("Route list: routes decoded on use")
struct RouteListTests {
    /// Stored forms of `configuration`'s routes that count their decodings; `broken` names routes whose stored form
    /// does not decode.
    final class Decodings: Sendable {
        let count = Mutex(0)
        let decoded = Mutex<[String]>([])

        func stored(_ routes: RouteList, broken: Set<String> = []) throws -> RouteList {
            let bodies = try routes.map { (route: $0.name, body: try JSONEncoder().encode($0)) }
            return RouteList(
                slots: bodies.map { name, body in
                    .stored(
                        StoredRoute(name: name) {
                            self.count.withLock { $0 += 1 }
                            self.decoded.withLock { $0.append(name) }
                            let data = broken.contains(name) ? Data("{\"name\":".utf8) : body
                            return try JSONDecoder().decode(Route.self, from: data)
                        })
                })
        }
    }

    @Test("names, lookups by name and a stored version's equality with itself decode nothing")
    func namesAndIdentityNeedNoDecoding() throws {
        let decodings = Decodings()
        let original = RoutingTableIncrementalTests.configuration(routes: 50)
        var configuration = original
        configuration.routes = try decodings.stored(original.routes)
        let copy = configuration

        #expect(configuration.routes.names == original.routes.map(\.name))
        #expect(configuration.routes.firstIndex(named: "r17") == 17)
        #expect(configuration.routes.firstIndex(named: "nope") == nil)
        #expect(copy == configuration)
        #expect(configuration.routes.isSameStoredVersion(at: 3, as: copy.routes, at: 3))
        #expect(decodings.count.withLock { $0 } == 0)

        // Reading decodes once; what is read equals the original.
        #expect(configuration.routes[17] == original.routes[17])
        #expect(configuration.routes[17] == original.routes[17])
        #expect(decodings.decoded.withLock { $0 } == ["r17"])
        // A stored route against a route value compares values.
        #expect(configuration.routes.isSame(at: 17, as: original.routes, at: 17))
        #expect(!configuration.routes.isSame(at: 17, as: original.routes, at: 18))
    }

    @Test("a change to one route leaves the others stored; validation against the previous reads only the changed one")
    func validationAgainstThePreviousReadsTheChange() throws {
        let decodings = Decodings()
        var previous = RoutingTableIncrementalTests.configuration(routes: 200)
        previous.routes = try decodings.stored(previous.routes)
        var configuration = previous
        let index = try #require(configuration.routes.firstIndex(named: "r120"))
        configuration.routes[index].defaultUpstream = "orders-v2"
        guard case .route = configuration.routes.slots[index], case .stored = configuration.routes.slots[121] else {
            Issue.record("the written route became a value, the others stayed stored")
            return
        }
        #expect(configuration.validate(unchangedSince: previous).isEmpty)
        // The changed route, once: its previous version is the same stored form, decoded for the change.
        #expect(decodings.decoded.withLock { $0 } == ["r120"], "\(decodings.decoded.withLock { $0 })")
        #expect(configuration != previous)

        // An error in the changed route is found; so is a clash of a new rule name with an unchanged route's.
        configuration.routes[index].defaultUpstream = "nowhere"
        #expect(configuration.validate(unchangedSince: previous).map(\.description).contains {
            $0.contains("route 'r120'") && $0.contains("nowhere")
        })
        configuration.routes[index].defaultUpstream = "legacy"
        configuration.routes[index].rules[0].name = "r7-staff"
        let clash = configuration.validate(unchangedSince: previous)
        #expect(clash.map(\.description).contains { $0.contains("duplicate rule name 'r7-staff'") }, "\(clash)")
        #expect(clash.map(\.description) == configuration.validate().map(\.description))
    }

    @Test("a stored form that does not decode reads as a placeholder, is named by undecodable and thrown by decodeAll")
    func undecodableRoutesAreReported() throws {
        let decodings = Decodings()
        let original = RoutingTableIncrementalTests.configuration(routes: 5)
        let routes = try decodings.stored(original.routes, broken: ["r3"])
        #expect(routes.undecodable == nil, "nothing read yet")
        _ = routes[2]
        #expect(routes.undecodable == nil)
        let placeholder = routes[3]
        #expect(placeholder.name == "r3")
        #expect(routes.undecodable?.name == "r3")
        #expect(throws: (any Error).self) { try routes.decodeAll() }
        // The placeholder is not a valid route: it names no upstream.
        var configuration = original
        configuration.routes[3] = placeholder
        #expect(!configuration.validate().isEmpty)
    }

    @Test("a route list is an array of routes: literals, mutation, removal, insertion and JSON")
    func behavesAsAnArray() throws {
        let routes = RoutingTableIncrementalTests.configuration(routes: 4).routes
        var list: RouteList = [routes[0], routes[1]]
        list.append(routes[2])
        list.insert(routes[3], at: 0)
        list.remove(at: 1)
        #expect(list.map(\.name) == ["r3", "r1", "r2"])
        let decoded = try JSONDecoder().decode(RouteList.self, from: try JSONEncoder().encode(list))
        #expect(decoded == list)
        let stored = try Decodings().stored(list)
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        #expect(try encoder.encode(stored) == encoder.encode(list))
    }
}
