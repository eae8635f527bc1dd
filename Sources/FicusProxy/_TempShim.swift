import FicusCore
public final class RoutingTable: Sendable {
    public let revision: Int
    public let configuration: Configuration
    public init(configuration: Configuration, revision: Int) throws { self.configuration = configuration; self.revision = revision }
    public func upstream(named: String) -> Upstream? { self.configuration.upstreams.first { $0.name == named } }
    public func decide<R: RoutableRequest>(_ request: R) -> Decision { Decision(upstream: self.configuration.routes[0].defaultUpstream, route: "default", reason: .routeDefault) }
}
