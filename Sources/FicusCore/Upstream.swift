/// A named pool of addresses that requests can be sent to (`legacy`, `orders-v2`).
///
/// Routes and rules name upstreams rather than addresses, so moving a service means editing one upstream. An
/// upstream may carry blue and green slots for blue-green deployments; only the active slot receives traffic, apart
/// from previews (see `BlueGreenSlots.previewSegment`).
public struct Upstream: Sendable, Equatable {
    /// The unique name that routes and rules refer to.
    ///
    /// Names are the stable identity: renaming an upstream means editing every reference to it.
    public var name: String

    /// The addresses of an upstream without slots.
    ///
    /// Ignored while `slots` is set; kept so that removing the slots restores a plain pool.
    private var plainAddresses: [Endpoint]

    /// The blue and green slots of a blue-green deployment, or nil (the default) for a plain pool.
    ///
    /// With slots, a flip changes only `slots.active`, so traffic moves in one revision and moves back the same way.
    public var slots: BlueGreenSlots?

    /// Passive health of the addresses (outlier ejection), or nil (the default) for none.
    ///
    /// Envoy's clusters have no outlier detection unless it is configured; neither do upstreams.
    public var outlier: OutlierPolicy?

    /// How a request picks an address, or nil for round robin.
    ///
    /// Kept optional so that stored snapshots from before load balancing decode and encode unchanged.
    public var balance: BalancePolicy?

    /// Circuit breakers, or nil for the defaults (the proxy's pool limits, 1,024 requests, 3 retries).
    ///
    /// Optional for the same reason as `balance`.
    public var limits: UpstreamLimits?

    /// Active health checks of the addresses, or nil (the default) for none.
    ///
    /// An address failing them is out of rotation as an ejected one is (docs/PROXY.md, "Active health checks").
    public var healthCheck: HealthCheckPolicy?

    /// `balance`, or round robin when it is not set.
    ///
    /// What the proxy's pools follow.
    public var effectiveBalance: BalancePolicy { self.balance ?? .roundRobin }
    /// A PEM file of CA certificates that this upstream's `https://` addresses must present a chain to; nil (the
    /// default) trusts the system's roots.
    ///
    /// A path, not the certificates: the proxy reads it where it runs, as it reads its own certificate files.
    public var caFile: String?

    /// The client certificate (PEM chain) presented to this upstream's `https://` addresses (mutual TLS); nil (the
    /// default) presents none. Needs `clientKey`.
    public var clientCert: String?

    /// The private key (PEM) of `clientCert`; nil (the default) without mutual TLS.
    public var clientKey: String?

    /// Creates a plain upstream serving `addresses`.
    ///
    /// The common case: one pool, no blue-green slots.
    public init(name: String, addresses: [Endpoint]) {
        self.name = name
        self.plainAddresses = addresses
        self.slots = nil
    }

    /// Creates an upstream with blue and green slots.
    ///
    /// The active slot's addresses become `addresses`.
    public init(name: String, slots: BlueGreenSlots) {
        self.name = name
        self.plainAddresses = []
        self.slots = slots
    }

    /// The name under which a routing table serves the idle slot of `upstream` to preview requests (`orders@green`).
    ///
    /// `@` is not allowed in upstream names, so the name never collides with a configured upstream; metrics and
    /// logs label preview traffic with it, which keeps it out of the gates that judge the active slot.
    public static func previewName(_ upstream: String, slot: BlueGreenSlots.Slot) -> String {
        "\(upstream)@\(slot.rawValue)"
    }

    /// The configured upstream a name stands for: `orders` for the preview name `orders@green`, the name itself
    /// otherwise.
    ///
    /// Health checks probe both slots under the configured name, so a preview and, after a flip, the active slot
    /// find the same record of an address.
    public static func configuredName(_ name: String) -> String {
        guard let at = name.firstIndex(of: "@") else { return name }
        return String(name[..<at])
    }

    /// Every address of both slots (the active slot's first), or the pool's addresses without slots.
    ///
    /// What active health checks probe: an idle slot is checked too, so that a preview or a flip never sends to a
    /// dead address unknowingly.
    public var addressesOfEverySlot: [Endpoint] {
        guard let slots = self.slots else { return self.plainAddresses }
        let active = slots.activeAddresses
        var seen = Set(active.map(\.address))
        return active + slots[slots.idle].filter { seen.insert($0.address).inserted }
    }

    /// The addresses that receive traffic: the active slot's with blue-green slots, otherwise the pool's.
    ///
    /// The proxy reads only this; setting it on an upstream with slots replaces the active slot's addresses.
    public var addresses: [Endpoint] {
        get {
            self.slots?.activeAddresses ?? self.plainAddresses
        }
        set {
            if self.slots != nil {
                self.slots?.activeAddresses = newValue
            } else {
                self.plainAddresses = newValue
            }
        }
    }
}

/// The two address sets of a blue-green deployment, one of which is active.
///
/// The idle slot is where the next version is deployed and checked before a flip makes it active.
public struct BlueGreenSlots: Sendable, Codable, Equatable {
    /// The name of one slot.
    ///
    /// Two fixed names keep commands like `ficus flip orders` free of arguments.
    public enum Slot: String, Sendable, Codable, Equatable, CaseIterable {
        case blue
        case green

        /// The other slot.
        ///
        /// A flip always goes to the other slot.
        public var other: Slot {
            self == .blue ? .green : .blue
        }
    }

    /// The addresses of the blue slot.
    ///
    /// May be empty while blue is idle.
    public var blue: [Endpoint]

    /// The addresses of the green slot.
    ///
    /// May be empty while green is idle.
    public var green: [Endpoint]

    /// The slot that receives traffic.
    ///
    /// Validation requires the active slot to have at least one address.
    public var active: Slot

    /// The segment whose requests reach the idle slot instead of the active one, or nil (the default) for none.
    ///
    /// Lets a team try the next version with its own users before a switch.
    public var previewSegment: String?

    /// The SHA-256 digest (64 hex digits) of the preview token, or nil (the default) when there is none.
    ///
    /// A client that sends `X-Ficus-Preview: <idle slot>; token=<token>` reaches the idle slot whether or not a
    /// segment is set; without a token no header reaches it, whoever sends it (`PreviewToken`).
    public var previewTokenSHA256: String?

    /// Creates slots with `active` receiving traffic.
    ///
    /// Both address lists are given explicitly so the idle slot's contents are never implied.
    public init(
        blue: [Endpoint],
        green: [Endpoint],
        active: Slot,
        previewSegment: String? = nil,
        previewTokenSHA256: String? = nil
    ) {
        self.blue = blue
        self.green = green
        self.active = active
        self.previewSegment = previewSegment
        self.previewTokenSHA256 = previewTokenSHA256
    }

    /// The idle slot.
    ///
    /// Where deploys, checks and previews go.
    public var idle: Slot {
        self.active.other
    }

    private enum CodingKeys: String, CodingKey {
        case blue
        case green
        case active
        case previewSegment = "preview_segment"
        case previewTokenSHA256 = "preview_token_sha256"
    }

    /// The addresses of `slot`.
    ///
    /// Lets callers address a slot by name instead of switching over it.
    public subscript(slot: Slot) -> [Endpoint] {
        get {
            slot == .blue ? self.blue : self.green
        }
        set {
            if slot == .blue {
                self.blue = newValue
            } else {
                self.green = newValue
            }
        }
    }

    /// The addresses of the active slot.
    ///
    /// What `Upstream.addresses` returns.
    public var activeAddresses: [Endpoint] {
        get {
            self[self.active]
        }
        set {
            self[self.active] = newValue
        }
    }
}

extension Upstream: Codable {
    private enum CodingKeys: String, CodingKey {
        case name
        case addresses
        case slots
        case outlier
        case balance
        case limits
        case healthCheck = "health_check"
        case caFile = "ca_file"
        case clientCert = "client_cert"
        case clientKey = "client_key"
    }

    /// Decodes `name` with either `addresses` or `slots`, and the optional `outlier`, `balance` and `limits`.
    ///
    /// `addresses` defaults to empty so that an upstream with slots needs no placeholder list; snapshots stored before
    /// the resilience settings existed decode with none.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.name = try container.decode(String.self, forKey: .name)
        self.plainAddresses = try container.decodeIfPresent([Endpoint].self, forKey: .addresses) ?? []
        self.slots = try container.decodeIfPresent(BlueGreenSlots.self, forKey: .slots)
        self.outlier = try container.decodeIfPresent(OutlierPolicy.self, forKey: .outlier)
        self.balance = try container.decodeIfPresent(BalancePolicy.self, forKey: .balance)
        self.limits = try container.decodeIfPresent(UpstreamLimits.self, forKey: .limits)
        self.healthCheck = try container.decodeIfPresent(HealthCheckPolicy.self, forKey: .healthCheck)
        self.caFile = try container.decodeIfPresent(String.self, forKey: .caFile)
        self.clientCert = try container.decodeIfPresent(String.self, forKey: .clientCert)
        self.clientKey = try container.decodeIfPresent(String.self, forKey: .clientKey)
    }

    /// Encodes `name`, either `slots` or `addresses`, and the resilience settings that are set.
    ///
    /// Only one of the two is written so that a stored snapshot shows which addresses actually serve; unset settings
    /// are left out, so an upstream without them encodes exactly as before they existed.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.name, forKey: .name)
        if let slots = self.slots {
            try container.encode(slots, forKey: .slots)
        } else {
            try container.encode(self.plainAddresses, forKey: .addresses)
        }
        try container.encodeIfPresent(self.outlier, forKey: .outlier)
        try container.encodeIfPresent(self.balance, forKey: .balance)
        try container.encodeIfPresent(self.limits, forKey: .limits)
        try container.encodeIfPresent(self.healthCheck, forKey: .healthCheck)
        // Written only when set, so that a snapshot without TLS settings encodes (and hashes) as it always did.
        try container.encodeIfPresent(self.caFile, forKey: .caFile)
        try container.encodeIfPresent(self.clientCert, forKey: .clientCert)
        try container.encodeIfPresent(self.clientKey, forKey: .clientKey)
    }
}
