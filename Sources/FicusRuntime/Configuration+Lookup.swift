import FicusCore

/// A named object that does not exist: `kind` is `route`, `upstream`, ...; `known` lists what does exist.
///
/// Reads as the CLI prints it: `no route 'orders' (known: checkout, search)`.
public struct NotFound: Error, Equatable, Sendable, CustomStringConvertible {
    public var kind: String
    public var name: String
    public var known: [String]

    public init(kind: String, name: String, known: [String]) {
        self.kind = kind
        self.name = name
        self.known = known
    }

    public var description: String {
        let list = self.known.isEmpty ? "there are none" : "known: \(self.known.sorted().joined(separator: ", "))"
        return "no \(self.kind) '\(self.name)' (\(list))"
    }
}

extension Configuration {
    /// The position of the route named `name`, or `NotFound` listing the routes there are.
    ///
    /// Every change that addresses an object by name fails the same way, with the names that would have worked.
    public func routeIndex(_ name: String) throws -> Int {
        guard let index = self.routes.firstIndex(named: name) else {
            throw NotFound(kind: "route", name: name, known: self.routes.names)
        }
        return index
    }

    /// The position of the upstream named `name`, or `NotFound`.
    public func upstreamIndex(_ name: String) throws -> Int {
        guard let index = self.upstreams.firstIndex(where: { $0.name == name }) else {
            throw NotFound(kind: "upstream", name: name, known: self.upstreams.map(\.name))
        }
        return index
    }
}
