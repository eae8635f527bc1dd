/// The whole routing configuration of one revision: upstreams, routes, segments, flags and the global kill switch.
///
/// Stored per revision as the list of its objects' versions (each route, upstream, segment and flag on its own, see
/// FicusStore) and compiled whole into a `RoutingTable`, so a change is atomic and a rollback is a copy of an earlier
/// value.
public struct Configuration: Sendable, Equatable {
    /// The upstreams routes and rules can name. Defaults to none.
    ///
    /// Names must be unique.
    public var upstreams: [Upstream]

    /// The routes. Defaults to none, which answers every request 404.
    ///
    /// Order matters only between routes with the same host, path and methods, which validation rejects. A
    /// configuration a store read for a commit holds its routes undecoded until used (see `RouteList`).
    public var routes: RouteList

    /// The segments conditions can name. Defaults to none.
    ///
    /// Names must be unique.
    public var segments: [Segment]

    /// The flags conditions can name. Defaults to none.
    ///
    /// Names must be unique.
    public var flags: [Flag]

    /// The global kill switch: while on, every route sends everything to its legacy upstream. Defaults to `false`.
    ///
    /// Nothing else changes while it is on, so turning it off restores exactly the configuration there is then,
    /// including edits made meanwhile.
    public var killed: Bool

    /// What identifies a user store-wide (`header:X-User-Id`, `cookie:NAME`, `query:NAME`, `client_ip`), or nil
    /// (the default) for the client address: what sticky percentage rules, canaries and shadow sampling hash when they
    /// name no attribute of their own.
    ///
    /// Behind a load balancer every request comes from one address, so a canary sticky on it cannot split; one
    /// setting fixes every rule that did not choose.
    public var identity: Attribute?

    /// Creates a configuration.
    ///
    /// See the properties for the defaults.
    public init(
        upstreams: [Upstream] = [],
        routes: [Route] = [],
        segments: [Segment] = [],
        flags: [Flag] = [],
        killed: Bool = false,
        identity: Attribute? = nil
    ) {
        self.upstreams = upstreams
        self.routes = RouteList(routes)
        self.segments = segments
        self.flags = flags
        self.killed = killed
        self.identity = identity
    }

    /// One route named "default" matching every host, path and method, legacy = default = `defaultUpstream`.
    ///
    /// What a proxy serves before any rule is written: a transparent proxy in front of the monolith.
    public static func catchAll(upstreams: [Upstream], defaultUpstream: String) -> Configuration {
        Configuration(
            upstreams: upstreams,
            routes: [Route(name: "default", legacy: defaultUpstream, defaultUpstream: defaultUpstream)]
        )
    }

    /// The upstream named `name`, if any.
    ///
    /// A linear search, for building and editing; the routing table keeps a dictionary.
    public func upstream(named name: String) -> Upstream? {
        self.upstreams.first { $0.name == name }
    }
}

extension Configuration: Codable {
    private enum CodingKeys: String, CodingKey {
        case upstreams
        case routes
        case segments
        case flags
        case killed
        case identity
    }

    /// Decodes a configuration; every missing list is empty and `killed` is false.
    ///
    /// See the properties.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            upstreams: try container.decodeIfPresent([Upstream].self, forKey: .upstreams) ?? [],
            routes: try container.decodeIfPresent([Route].self, forKey: .routes) ?? [],
            segments: try container.decodeIfPresent([Segment].self, forKey: .segments) ?? [],
            flags: try container.decodeIfPresent([Flag].self, forKey: .flags) ?? [],
            killed: try container.decodeIfPresent(Bool.self, forKey: .killed) ?? false,
            identity: try container.decodeIfPresent(Attribute.self, forKey: .identity)
        )
    }
}
