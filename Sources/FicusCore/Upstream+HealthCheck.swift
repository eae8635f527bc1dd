/// Active health checks of an upstream's addresses: a GET of `path` every `interval`, and how many answers in a row
/// turn an address unhealthy or healthy again (docs/PROXY.md, "Active health checks").
///
/// Envoy's HTTP health checker and nginx's `health_check`, with their defaults. An unhealthy address is out of
/// rotation exactly as an ejected one is; an address that was never checked counts as healthy.
public struct HealthCheckPolicy: Sendable, Hashable {
    /// The path (and query) asked for, starting with `/`.
    public var path: String
    /// Time between two checks of one address; nil: 10 s.
    public var interval: TimeSpan?
    /// How long one check may take, connect included; nil: 1 s.
    public var timeout: TimeSpan?
    /// Good answers in a row that bring an unhealthy address back; nil: 2.
    public var healthy: Int?
    /// Failed checks in a row that take an address out; nil: 3.
    public var unhealthy: Int?
    /// The statuses that count as good: `200-399` (the default), `200`, or a list such as `200,204`.
    public var expect: String?

    public static let defaultInterval = TimeSpan.seconds(10)
    public static let defaultTimeout = TimeSpan.seconds(1)
    public static let defaultHealthy = 2
    public static let defaultUnhealthy = 3
    public static let defaultExpect = "200-399"

    /// Creates a policy; every value left nil takes its default.
    public init(
        path: String,
        interval: TimeSpan? = nil,
        timeout: TimeSpan? = nil,
        healthy: Int? = nil,
        unhealthy: Int? = nil,
        expect: String? = nil
    ) {
        self.path = path
        self.interval = interval
        self.timeout = timeout
        self.healthy = healthy
        self.unhealthy = unhealthy
        self.expect = expect
    }

    public var effectiveInterval: TimeSpan { self.interval ?? Self.defaultInterval }
    public var effectiveTimeout: TimeSpan { self.timeout ?? Self.defaultTimeout }
    public var effectiveHealthy: Int { self.healthy ?? Self.defaultHealthy }
    public var effectiveUnhealthy: Int { self.unhealthy ?? Self.defaultUnhealthy }

    /// The good statuses, parsed from `expect` (or its default); nil when `expect` does not parse.
    public var expectedStatuses: [ClosedRange<Int>]? {
        Self.statusRanges(self.expect ?? Self.defaultExpect)
    }

    /// Parses `200-399`, `200` or `200,204,300-399` into ranges of statuses from 100 to 599; nil when malformed.
    public static func statusRanges(_ text: String) -> [ClosedRange<Int>]? {
        var ranges: [ClosedRange<Int>] = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let bounds = part.trimmingCharacters(in: .whitespaces).split(separator: "-", omittingEmptySubsequences: false)
            guard bounds.count == 1 || bounds.count == 2,
                bounds.allSatisfy({ $0.count == 3 }),
                let low = Int(bounds[0]), let high = Int(bounds[bounds.count - 1]),
                (100...599).contains(low), (100...599).contains(high), low <= high
            else {
                return nil
            }
            ranges.append(low...high)
        }
        return ranges.isEmpty ? nil : ranges
    }

    /// Every problem of the policy as (field, message); empty when it is valid.
    public var problems: [(field: String, message: String)] {
        var problems: [(String, String)] = []
        if !self.path.hasPrefix("/") || self.path.utf8.contains(where: { $0 <= 0x20 || $0 == 0x7F }) {
            problems.append(("path", "'\(self.path)' must start with '/' and contain no spaces or control characters"))
        }
        if !(100...TimeSpan.maxMilliseconds).contains(self.effectiveInterval.milliseconds) {
            problems.append(("interval", "must be from 100ms to 24h, got \(self.effectiveInterval)"))
        }
        if !(1...60_000).contains(self.effectiveTimeout.milliseconds) {
            problems.append(("timeout", "must be from 1ms to 60s, got \(self.effectiveTimeout)"))
        }
        for (field, value) in [("healthy", self.effectiveHealthy), ("unhealthy", self.effectiveUnhealthy)]
        where !(1...100).contains(value) {
            problems.append((field, "must be from 1 to 100, got \(value)"))
        }
        if self.expectedStatuses == nil {
            problems.append(("expect", "'\(self.expect ?? "")' is not a status, a range (200-399) or a list of them"))
        }
        return problems
    }

    /// The policy on one line with defaults filled in (`GET /healthz every 10s, timeout 1s, 2 up, 3 down, 200-399`).
    public var oneLine: String {
        "GET \(self.path) every \(self.effectiveInterval), timeout \(self.effectiveTimeout), "
            + "\(self.effectiveHealthy) up, \(self.effectiveUnhealthy) down, expect \(self.expect ?? Self.defaultExpect)"
    }

    /// The policy with every default filled in (what `explain --json` shows).
    public var resolved: HealthCheckPolicy {
        HealthCheckPolicy(
            path: self.path, interval: self.effectiveInterval, timeout: self.effectiveTimeout,
            healthy: self.effectiveHealthy, unhealthy: self.effectiveUnhealthy, expect: self.expect ?? Self.defaultExpect)
    }
}

extension HealthCheckPolicy: Codable {
    private enum CodingKeys: String, CodingKey {
        case path
        case interval
        case timeout
        case healthy
        case unhealthy
        case expect
    }

    /// Decodes the mapping; `expect` may be a number (`200`) or text (`200-399`).
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var expect: String?
        if let status = try? container.decodeIfPresent(Int.self, forKey: .expect) {
            expect = String(status)
        } else {
            expect = try container.decodeIfPresent(String.self, forKey: .expect)
        }
        self.init(
            path: try container.decode(String.self, forKey: .path),
            interval: try container.decodeIfPresent(TimeSpan.self, forKey: .interval),
            timeout: try container.decodeIfPresent(TimeSpan.self, forKey: .timeout),
            healthy: try container.decodeIfPresent(Int.self, forKey: .healthy),
            unhealthy: try container.decodeIfPresent(Int.self, forKey: .unhealthy),
            expect: expect
        )
    }
}
