import Foundation

/// A route as a store holds it: its name, and its stored form decoded the first time the route is used.
///
/// A configuration read for a commit holds its routes this way, so a change to one route among a thousand decodes
/// that route (and what validation needs of the others: nothing, for routes that stay the same version), not all of
/// them (docs/FLEET.md, "How revisions are stored"). One instance stands for one stored version: two slots holding the
/// same instance hold the same route, without decoding either.
public final class StoredRoute: @unchecked Sendable {
    /// The route's name (its key in the store), known without decoding.
    public let name: String
    private let lock = NSLock()
    /// The stored form's decoder until it has run, then what it gave: a decoded route does not also keep its stored
    /// form.
    private var state: State

    private enum State {
        case stored(@Sendable () throws -> Route)
        case decoded(Result<Route, any Error>)
    }

    /// A route named `name` that `decode` makes on first use; its result, value or error, is kept.
    public init(name: String, decode: @escaping @Sendable () throws -> Route) {
        self.name = name
        self.state = .stored(decode)
    }

    /// The route, decoded once; the decoding error, every time, when the stored form cannot be read.
    public func route() throws -> Route {
        try self.lock.withLock {
            switch self.state {
            case .decoded(let result):
                return result
            case .stored(let decode):
                let result = Result { try decode() }
                self.state = .decoded(result)
                return result
            }
        }.get()
    }

    /// The decoding error, when the route was used and could not be decoded.
    var failure: (any Error)? {
        self.lock.withLock {
            if case .decoded(.failure(let error)) = self.state {
                return error
            }
            return nil
        }
    }
}

/// The routes of a configuration, in order: an array of `Route` whose elements may still be in their stored form.
///
/// Reading an element decodes a stored one (once); writing one replaces it with the value written. Names, equality of
/// two versions that are the same stored instance, and `firstIndex(named:)` need no decoding, which is what makes a
/// commit that changes one route cheap. An element whose stored form cannot be decoded reads as a route with only its
/// name (no upstreams, which no validation accepts); `undecodable` says which, and stores check it before writing
/// anything, so such a placeholder never reaches a revision.
public struct RouteList: Sendable {
    /// One element: a route value, or a stored version not decoded yet.
    public enum Slot: Sendable {
        case route(Route)
        case stored(StoredRoute)

        /// The route's name, without decoding.
        public var name: String {
            switch self {
            case .route(let route): route.name
            case .stored(let stored): stored.name
            }
        }

        /// The route, decoded if need be (a placeholder with only the name when that fails).
        var route: Route {
            switch self {
            case .route(let route):
                return route
            case .stored(let stored):
                return (try? stored.route()) ?? Route(name: stored.name, legacy: "", defaultUpstream: "")
            }
        }

        /// Whether two slots hold the same route: the same stored version at once, otherwise by value.
        public static func same(_ lhs: Slot, _ rhs: Slot) -> Bool {
            if case .stored(let left) = lhs, case .stored(let right) = rhs, left === right {
                return true
            }
            return lhs.route == rhs.route
        }
    }

    /// The elements as they are held.
    public private(set) var slots: [Slot]

    /// Routes made of these slots.
    public init(slots: [Slot]) {
        self.slots = slots
    }

    /// These routes.
    public init(_ routes: some Sequence<Route>) {
        self.slots = routes.map(Slot.route)
    }

    /// The name of the route at `index`, without decoding it.
    public func name(at index: Int) -> String {
        self.slots[index].name
    }

    /// Every route's name, in order, without decoding any.
    public var names: [String] {
        self.slots.map(\.name)
    }

    /// Each name's first index, without decoding any route: for matching the routes of two lists by name.
    public var firstIndexByName: [String: Int] {
        Dictionary(self.names.enumerated().map { ($1, $0) }, uniquingKeysWith: { first, _ in first })
    }

    /// The index of the first route named `name`, without decoding any.
    public func firstIndex(named name: String) -> Int? {
        self.slots.firstIndex { $0.name == name }
    }

    /// Whether the route at `index` and `other`'s at `otherIndex` are one stored version (true means equal; false
    /// says nothing).
    public func isSameStoredVersion(at index: Int, as other: RouteList, at otherIndex: Int) -> Bool {
        if case .stored(let left) = self.slots[index], case .stored(let right) = other.slots[otherIndex] {
            return left === right
        }
        return false
    }

    /// Whether the route at `index` and `other`'s at `otherIndex` are equal: at once for one stored version,
    /// otherwise by value.
    public func isSame(at index: Int, as other: RouteList, at otherIndex: Int) -> Bool {
        Slot.same(self.slots[index], other.slots[otherIndex])
    }

    /// Whether the routes in `range` equal `other`'s there (which must hold `range`).
    public func isSame(_ range: Range<Int>, as other: RouteList) -> Bool {
        range.allSatisfy { Slot.same(self.slots[$0], other.slots[$0]) }
    }

    /// Removes the route at `index` without decoding it (`remove(at:)` returns it, and so decodes it): a route the
    /// store cannot decode can be removed.
    public mutating func removeRoute(at index: Int) {
        self.slots.remove(at: index)
    }

    /// Replaces the slot at `index` (appends when `index` is nil).
    public mutating func place(_ slot: Slot, at index: Int?) {
        if let index {
            self.slots[index] = slot
        } else {
            self.slots.append(slot)
        }
    }

    /// The first route whose stored form could not be decoded when it was read, with the error; nil when none was.
    ///
    /// Only routes that were read are known: stores check this after a change and before writing.
    public var undecodable: (name: String, error: any Error)? {
        for slot in self.slots {
            if case .stored(let stored) = slot, let error = stored.failure {
                return (stored.name, error)
            }
        }
        return nil
    }

    /// Decodes every stored route, throwing the first error: what a reader does before it hands a configuration
    /// to anything that reads every route (a routing table, an export).
    public func decodeAll() throws {
        for slot in self.slots {
            if case .stored(let stored) = slot {
                _ = try stored.route()
            }
        }
    }
}

extension RouteList: RandomAccessCollection, MutableCollection, RangeReplaceableCollection {
    public init() {
        self.slots = []
    }

    public var startIndex: Int { 0 }
    public var endIndex: Int { self.slots.count }

    public subscript(position: Int) -> Route {
        get { self.slots[position].route }
        set { self.slots[position] = .route(newValue) }
    }

    public mutating func replaceSubrange<Routes: Collection<Route>>(_ subrange: Range<Int>, with routes: Routes) {
        self.slots.replaceSubrange(subrange, with: routes.map(Slot.route))
    }

    public mutating func reserveCapacity(_ count: Int) {
        self.slots.reserveCapacity(count)
    }
}

extension RouteList: ExpressibleByArrayLiteral {
    public init(arrayLiteral routes: Route...) {
        self.init(routes)
    }
}

extension RouteList: Equatable {
    /// Equal when every route is: one stored version is equal to itself without decoding.
    public static func == (lhs: RouteList, rhs: RouteList) -> Bool {
        lhs.slots.count == rhs.slots.count && zip(lhs.slots, rhs.slots).allSatisfy(Slot.same)
    }
}

extension RouteList: Codable {
    /// Decodes a JSON array of routes.
    public init(from decoder: any Decoder) throws {
        self.init(try [Route](from: decoder))
    }

    /// Encodes a JSON array of routes (stored ones decoded).
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.unkeyedContainer()
        for slot in self.slots {
            switch slot {
            case .route(let route): try container.encode(route)
            case .stored(let stored): try container.encode(try stored.route())
            }
        }
    }
}

extension RouteList: CustomStringConvertible {
    public var description: String {
        "\(Array(self))"
    }
}
