/// A length of time in a configuration, kept in milliseconds and written as text (`30s`, `500ms`, `5m`).
///
/// Rules files are read by people: `base_ejection_time: 30s` says what it means, where a bare number would need its
/// unit in the key. A bare integer is still read, as seconds (as every duration in rules files), so that generated
/// files need no formatting.
public struct TimeSpan: Sendable, Hashable, Comparable, CustomStringConvertible {
    /// The span in milliseconds; validation keeps it within `0...maxMilliseconds`.
    ///
    /// Not checked by the type, so that a bad stored value is reported with its upstream instead of dropped.
    public var milliseconds: Int

    /// The longest span a configuration may hold: one day, which no timer here needs to pass.
    ///
    /// Bounds the arithmetic done with spans (multiplied by an ejection count) far from `Int.max`.
    public static let maxMilliseconds = 86_400_000

    /// Creates a span of `milliseconds`.
    ///
    /// No checks: validation reports spans out of range.
    public init(milliseconds: Int) {
        self.milliseconds = milliseconds
    }

    /// Creates a span of `seconds` seconds.
    ///
    /// Defaults are written in seconds, as the documentation states them.
    public static func seconds(_ seconds: Int) -> TimeSpan {
        TimeSpan(milliseconds: seconds * 1000)
    }

    /// Parses `250ms`, `30s`, `5m`, `1h` or plain digits (seconds, as every duration in rules files and the CLI);
    /// nil for anything else (`DurationText.parse`).
    public init?(parsing text: String) {
        guard let milliseconds = DurationText.parse(text) else { return nil }
        self.init(milliseconds: milliseconds)
    }

    /// The span in the largest unit that divides it (`30s`, `1500ms`).
    ///
    /// The form `init?(parsing:)` reads, so spans round-trip through rules files and stored snapshots.
    public var description: String {
        if self.milliseconds != 0, self.milliseconds % 3_600_000 == 0 { return "\(self.milliseconds / 3_600_000)h" }
        if self.milliseconds != 0, self.milliseconds % 60_000 == 0 { return "\(self.milliseconds / 60_000)m" }
        if self.milliseconds % 1000 == 0 { return "\(self.milliseconds / 1000)s" }
        return "\(self.milliseconds)ms"
    }

    /// Orders spans by length.
    ///
    /// Validation compares the base and the maximum ejection time.
    public static func < (lhs: TimeSpan, rhs: TimeSpan) -> Bool {
        lhs.milliseconds < rhs.milliseconds
    }
}

extension TimeSpan: Codable {
    /// Decodes `"30s"`-style text or an integer number of seconds.
    ///
    /// Both shapes load so that hand-written and generated files work alike.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.singleValueContainer()
        if let seconds = try? container.decode(Int.self) {
            let (milliseconds, overflow) = seconds.multipliedReportingOverflow(by: 1000)
            // Out of range stays out of range (validation names it), never a trap.
            self.init(milliseconds: overflow ? Int.max : milliseconds)
            return
        }
        let text = try container.decode(String.self)
        guard let span = TimeSpan(parsing: text) else {
            throw DecodingError.dataCorruptedError(
                in: container, debugDescription: "invalid time '\(text)', expected e.g. 500ms, 30s, 5m")
        }
        self = span
    }

    /// Encodes the span as text (`30s`).
    ///
    /// Readable in rendered YAML and in `ficus upstream show`.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        try container.encode(self.description)
    }
}

/// Passive health of an upstream's addresses: which failures in a row take an address out of rotation, and for how
/// long (docs/PROXY.md, "Outlier ejection").
///
/// The defaults are Envoy's outlier detection defaults. An upstream without a policy has no ejection, as an Envoy
/// cluster without `outlier_detection` has none; `outlier: {}` (or `outlier: on`) turns it on with the defaults.
public struct OutlierPolicy: Sendable, Hashable {
    /// Whether ejection is on; nil means on (a policy that is written is meant).
    ///
    /// `enabled: false` (or `outlier: off`) keeps the numbers while turning ejection off.
    public var enabled: Bool?

    /// Answers with a 5xx status (or failures a client would see as one) in a row that eject an address.
    ///
    /// Nil: 5. 0 disables this trigger.
    public var consecutive5xx: Int?

    /// Gateway failures in a row (502, 503, 504, connect failures, resets and timeouts) that eject an address.
    ///
    /// Nil: 5. 0 disables this trigger.
    public var consecutiveGatewayFailure: Int?

    /// How long the first ejection lasts; each ejection lasts this times the times the address was ejected.
    ///
    /// Nil: 30 s.
    public var baseEjectionTime: TimeSpan?

    /// The longest an ejection lasts, however often the address was ejected.
    ///
    /// Nil: 300 s.
    public var maxEjectionTime: TimeSpan?

    /// The share of an upstream's addresses that may be out at once, in percent; one address may always be ejected.
    ///
    /// Nil: 10.
    public var maxEjectionPercent: Int?

    /// The default trigger of both counters.
    ///
    /// Envoy's `consecutive_5xx` and `consecutive_gateway_failure` default.
    public static let defaultConsecutive = 5

    /// The default base ejection time.
    ///
    /// Envoy's `base_ejection_time`.
    public static let defaultBaseEjectionTime = TimeSpan.seconds(30)

    /// The default longest ejection.
    ///
    /// Envoy's `max_ejection_time`.
    public static let defaultMaxEjectionTime = TimeSpan.seconds(300)

    /// The default share of addresses that may be ejected at once.
    ///
    /// Envoy's `max_ejection_percent`.
    public static let defaultMaxEjectionPercent = 10

    /// Creates a policy; every value left nil takes its default.
    ///
    /// The CLI and tests set only what they change.
    public init(
        enabled: Bool? = nil,
        consecutive5xx: Int? = nil,
        consecutiveGatewayFailure: Int? = nil,
        baseEjectionTime: TimeSpan? = nil,
        maxEjectionTime: TimeSpan? = nil,
        maxEjectionPercent: Int? = nil
    ) {
        self.enabled = enabled
        self.consecutive5xx = consecutive5xx
        self.consecutiveGatewayFailure = consecutiveGatewayFailure
        self.baseEjectionTime = baseEjectionTime
        self.maxEjectionTime = maxEjectionTime
        self.maxEjectionPercent = maxEjectionPercent
    }

    /// Whether the policy ejects at all.
    ///
    /// Nil counts as on.
    public var isEnabled: Bool { self.enabled ?? true }

    /// `consecutive5xx` or its default.
    ///
    /// What the proxy counts against.
    public var effectiveConsecutive5xx: Int { self.consecutive5xx ?? Self.defaultConsecutive }

    /// `consecutiveGatewayFailure` or its default.
    ///
    /// What the proxy counts against.
    public var effectiveConsecutiveGatewayFailure: Int { self.consecutiveGatewayFailure ?? Self.defaultConsecutive }

    /// `baseEjectionTime` or its default.
    ///
    /// What the proxy multiplies.
    public var effectiveBaseEjectionTime: TimeSpan { self.baseEjectionTime ?? Self.defaultBaseEjectionTime }

    /// `maxEjectionTime` or its default.
    ///
    /// What the proxy caps ejections at.
    public var effectiveMaxEjectionTime: TimeSpan { self.maxEjectionTime ?? Self.defaultMaxEjectionTime }

    /// `maxEjectionPercent` or its default.
    ///
    /// What the proxy caps the ejected share at.
    public var effectiveMaxEjectionPercent: Int { self.maxEjectionPercent ?? Self.defaultMaxEjectionPercent }

    /// The policy with every default filled in.
    ///
    /// What `explain --json` shows: what applies, not what was written.
    public var resolved: OutlierPolicy {
        OutlierPolicy(
            enabled: self.isEnabled,
            consecutive5xx: self.effectiveConsecutive5xx,
            consecutiveGatewayFailure: self.effectiveConsecutiveGatewayFailure,
            baseEjectionTime: self.effectiveBaseEjectionTime,
            maxEjectionTime: self.effectiveMaxEjectionTime,
            maxEjectionPercent: self.effectiveMaxEjectionPercent
        )
    }

    /// The policy in one line, with defaults filled in (`5xx×5, gateway×5, 30s…300s, ≤10%`).
    ///
    /// What `ficus upstream list` and `explain` show.
    public var oneLine: String {
        guard self.isEnabled else { return "off" }
        return "5xx×\(self.effectiveConsecutive5xx), gateway×\(self.effectiveConsecutiveGatewayFailure), "
            + "\(self.effectiveBaseEjectionTime)…\(self.effectiveMaxEjectionTime), "
            + "≤\(self.effectiveMaxEjectionPercent)%"
    }
}

extension OutlierPolicy: Codable {
    private enum CodingKeys: String, CodingKey {
        case enabled
        case consecutive5xx = "consecutive_5xx"
        case consecutiveGatewayFailure = "consecutive_gateway_failure"
        case baseEjectionTime = "base_ejection_time"
        case maxEjectionTime = "max_ejection_time"
        case maxEjectionPercent = "max_ejection_percent"
    }

    /// Decodes the mapping form, or `on`/`off`/`true`/`false` alone.
    ///
    /// `outlier: off` reads like the route's `fallback: off`.
    public init(from decoder: any Decoder) throws {
        if let single = try? decoder.singleValueContainer() {
            if let flag = try? single.decode(Bool.self) {
                self.init(enabled: flag)
                return
            }
            if let text = try? single.decode(String.self) {
                switch text {
                case "on": self.init(enabled: true)
                case "off": self.init(enabled: false)
                default:
                    throw DecodingError.dataCorruptedError(
                        in: single, debugDescription: "invalid outlier '\(text)', expected on, off or a mapping")
                }
                return
            }
        }
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.init(
            enabled: try container.decodeIfPresent(Bool.self, forKey: .enabled),
            consecutive5xx: try container.decodeIfPresent(Int.self, forKey: .consecutive5xx),
            consecutiveGatewayFailure: try container.decodeIfPresent(Int.self, forKey: .consecutiveGatewayFailure),
            baseEjectionTime: try container.decodeIfPresent(TimeSpan.self, forKey: .baseEjectionTime),
            maxEjectionTime: try container.decodeIfPresent(TimeSpan.self, forKey: .maxEjectionTime),
            maxEjectionPercent: try container.decodeIfPresent(Int.self, forKey: .maxEjectionPercent)
        )
    }

    /// Encodes the fields that are set.
    ///
    /// Unset fields stay unset, so a later change of a default reaches stored upstreams.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encodeIfPresent(self.enabled, forKey: .enabled)
        try container.encodeIfPresent(self.consecutive5xx, forKey: .consecutive5xx)
        try container.encodeIfPresent(self.consecutiveGatewayFailure, forKey: .consecutiveGatewayFailure)
        try container.encodeIfPresent(self.baseEjectionTime, forKey: .baseEjectionTime)
        try container.encodeIfPresent(self.maxEjectionTime, forKey: .maxEjectionTime)
        try container.encodeIfPresent(self.maxEjectionPercent, forKey: .maxEjectionPercent)
    }
}

/// How a request picks one of an upstream's addresses (docs/PROXY.md, "Load balancing").
///
/// Both skip addresses out of rotation and honour per-address weights.
public enum BalancePolicy: String, Sendable, Hashable, Codable, CaseIterable {
    /// Each address in turn (smooth weighted round robin, as nginx, when weights differ): the default.
    case roundRobin = "round_robin"
    /// The less busy of two addresses picked at random (power of two choices, Envoy's `LEAST_REQUEST`).
    case leastRequest = "least_request"
}

/// Circuit breakers of an upstream: how much may be in flight to it before requests are refused at once (docs/PROXY.md,
/// "Circuit breaking").
///
/// Envoy's cluster circuit breakers; the connection, pending and request limits are shared out among the proxy's
/// event loops as the pool's limits are, retries are counted for the whole proxy.
public struct UpstreamLimits: Sendable, Hashable {
    /// Connections open or being opened; nil: the proxy's pool limit (1,024).
    ///
    /// A request over it waits for a connection (counted as `max_connections` overflow).
    public var maxConnections: Int?

    /// Requests waiting for a connection; nil: the proxy's pool limit (1,024).
    ///
    /// A request over it is answered 503 at once, or falls back.
    public var maxPending: Int?

    /// Requests in flight (on a connection or waiting for one); nil: 1,024.
    ///
    /// A request over it is answered 503 at once, or falls back.
    public var maxRequests: Int?

    /// Re-sends, fallbacks and retries in flight of requests that already reached an upstream; nil: 3.
    ///
    /// A retry over it is not made: the request gets the answer it would have had.
    public var maxRetries: Int?

    /// The default of `maxRequests`.
    ///
    /// Envoy's default, and the pool limits' of today.
    public static let defaultMaxRequests = 1024

    /// The default of `maxRetries`.
    ///
    /// Envoy's default.
    public static let defaultMaxRetries = 3

    /// The largest value any limit may have.
    ///
    /// Far beyond any descriptor limit; keeps the per-loop arithmetic small.
    public static let maximum = 1_000_000

    /// Creates limits; every value left nil takes its default.
    ///
    /// The CLI and tests set only what they change.
    public init(maxConnections: Int? = nil, maxPending: Int? = nil, maxRequests: Int? = nil, maxRetries: Int? = nil) {
        self.maxConnections = maxConnections
        self.maxPending = maxPending
        self.maxRequests = maxRequests
        self.maxRetries = maxRetries
    }

    /// Whether no limit is set.
    ///
    /// An empty `limits:` is dropped rather than stored.
    public var isEmpty: Bool {
        self.maxConnections == nil && self.maxPending == nil && self.maxRequests == nil && self.maxRetries == nil
    }

    /// The limits with every default filled in, the pool's where the upstream has none of its own.
    ///
    /// What `explain --json` shows.
    public func resolved(poolConnections: Int, poolPending: Int) -> UpstreamLimits {
        UpstreamLimits(
            maxConnections: self.maxConnections ?? poolConnections,
            maxPending: self.maxPending ?? poolPending,
            maxRequests: self.maxRequests ?? Self.defaultMaxRequests,
            maxRetries: self.maxRetries ?? Self.defaultMaxRetries
        )
    }

    /// The limits in one line, with defaults filled in (`connections 1024, pending 1024, requests 1024, retries 3`).
    ///
    /// `poolConnections` and `poolPending` are the proxy's pool limits, which the CLI does not know: pass nil to
    /// print `default` for them.
    public func oneLine(poolConnections: Int? = nil, poolPending: Int? = nil) -> String {
        func text(_ value: Int?, _ fallback: Int?) -> String {
            value.map(String.init) ?? fallback.map(String.init) ?? "default"
        }
        return "connections \(text(self.maxConnections, poolConnections)), "
            + "pending \(text(self.maxPending, poolPending)), "
            + "requests \(text(self.maxRequests, Self.defaultMaxRequests)), "
            + "retries \(text(self.maxRetries, Self.defaultMaxRetries))"
    }
}

extension UpstreamLimits: Codable {
    private enum CodingKeys: String, CodingKey {
        case maxConnections = "max_connections"
        case maxPending = "max_pending"
        case maxRequests = "max_requests"
        case maxRetries = "max_retries"
    }
}
