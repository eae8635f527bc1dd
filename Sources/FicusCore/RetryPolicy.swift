/// How a route's requests are tried again when their upstream fails before answering (docs/PROXY.md, Retries).
///
/// Envoy's retry policy, narrowed to what is safe for a migration: a request is retried only while no byte of its
/// answer reached the client, only with its whole body at hand, and only if the upstream never received it or its
/// method is idempotent. Retries go through the upstream's pool (the next address, when there are several) after a
/// full-jitter back-off, and a budget per upstream keeps them from multiplying an outage. Durations are kept as
/// written (`25ms`, `2s`); validation refuses what does not parse, naming the field.
public struct RetryPolicy: Sendable, Equatable {
    /// What makes a failed attempt worth another.
    public enum Condition: Sendable, Equatable, Hashable, CustomStringConvertible {
        /// The connect was refused, failed or timed out: the upstream never received the request.
        case connectFailure
        /// The connection closed (or the upstream sent something that is not HTTP) before the answer's head.
        case reset
        /// The upstream answered with this status (500-599); a response timeout counts as 504.
        case status(Int)

        /// `connect-failure`, `reset` or the status, as rules files and the CLI write them.
        public var description: String {
            switch self {
            case .connectFailure: "connect-failure"
            case .reset: "reset"
            case .status(let status): String(status)
            }
        }

        /// Parses `connect-failure`, `reset` or a status; nil for anything else (validation names the value).
        public init?(_ text: String) {
            switch text {
            case "connect-failure": self = .connectFailure
            case "reset": self = .reset
            default:
                guard text.utf8.count <= 3, let status = Int(text) else { return nil }
                self = .status(status)
            }
        }
    }

    /// The conditions that are retried: Envoy's `connect-failure`, `reset` and gateway errors by default.
    public var on: [Condition]
    /// Retries after the first attempt (1 to 5); 1 by default.
    public var attempts: Int
    /// The response timeout of each attempt (`2s`), or nil (the default) for the route's response timeout.
    public var perTryTimeout: String?
    /// The back-off before the first retry's ceiling, doubled per retry (`25ms` by default).
    public var backoffBase: String
    /// The back-off's largest ceiling (`250ms` by default).
    public var backoffMax: String
    /// Retries in flight to an upstream may be at most this percentage of its active requests (20 by default)...
    public var budgetPercent: Int
    /// ...or this many, whichever is more (3 by default): Envoy's `RetryBudget`.
    public var budgetMinConcurrent: Int

    public static let defaultConditions: [Condition] = [.connectFailure, .reset, .status(502), .status(503), .status(504)]
    public static let maxAttempts = 5

    /// Creates a policy with Envoy's defaults for everything not given.
    public init(
        on: [Condition] = Self.defaultConditions,
        attempts: Int = 1,
        perTryTimeout: String? = nil,
        backoffBase: String = "25ms",
        backoffMax: String = "250ms",
        budgetPercent: Int = 20,
        budgetMinConcurrent: Int = 3
    ) {
        self.on = on
        self.attempts = attempts
        self.perTryTimeout = perTryTimeout
        self.backoffBase = backoffBase
        self.backoffMax = backoffMax
        self.budgetPercent = budgetPercent
        self.budgetMinConcurrent = budgetMinConcurrent
    }

    /// Every problem of the policy, each as (field, message); empty when it is valid.
    public var problems: [(field: String, message: String)] {
        var problems: [(String, String)] = []
        if self.on.isEmpty {
            problems.append(("on", "must name at least one condition (or remove retry)"))
        }
        for condition in self.on {
            if case .status(let status) = condition, !(500...599).contains(status) {
                problems.append(("on", "\(status) is not a server error status (500-599)"))
            }
        }
        if Set(self.on).count != self.on.count {
            problems.append(("on", "names a condition twice"))
        }
        if !(1...Self.maxAttempts).contains(self.attempts) {
            problems.append(("attempts", "must be from 1 to \(Self.maxAttempts), got \(self.attempts)"))
        }
        if let perTry = self.perTryTimeout, DurationText.milliseconds(perTry) == nil {
            problems.append(("per_try_timeout", Self.durationProblem(perTry)))
        }
        let base = DurationText.milliseconds(self.backoffBase)
        let max = DurationText.milliseconds(self.backoffMax)
        if base == nil { problems.append(("backoff.base", Self.durationProblem(self.backoffBase))) }
        if max == nil { problems.append(("backoff.max", Self.durationProblem(self.backoffMax))) }
        if let base, let max, base > max {
            problems.append(("backoff", "base \(self.backoffBase) is longer than max \(self.backoffMax)"))
        }
        if !(0...100).contains(self.budgetPercent) {
            problems.append(("budget.percent", "must be from 0 to 100, got \(self.budgetPercent)"))
        }
        if !(0...10_000).contains(self.budgetMinConcurrent) {
            problems.append(("budget.min_concurrent", "must be from 0 to 10000, got \(self.budgetMinConcurrent)"))
        }
        return problems
    }

    private static func durationProblem(_ text: String) -> String {
        "'\(text)' is not a duration from 1ms to 24h (such as 25ms, 2s, 1m)"
    }

    /// The policy on one line, for `route show` and `explain` (`on connect-failure, reset, 503; 1 attempt; ...`).
    public var oneLine: String {
        var parts = [
            "on " + self.on.map(\.description).joined(separator: ", "),
            "\(self.attempts) attempt\(self.attempts == 1 ? "" : "s")",
        ]
        if let perTry = self.perTryTimeout { parts.append("per try \(perTry)") }
        parts.append("backoff \(self.backoffBase)..\(self.backoffMax)")
        parts.append("budget \(self.budgetPercent)% of active, at least \(self.budgetMinConcurrent)")
        return parts.joined(separator: "; ")
    }
}

extension RetryPolicy: Codable {
    private enum CodingKeys: String, CodingKey {
        case on
        case attempts
        case perTryTimeout = "per_try_timeout"
        case backoff
        case budget
    }

    private enum BackoffKeys: String, CodingKey {
        case base
        case max
    }

    private enum BudgetKeys: String, CodingKey {
        case percent
        case minConcurrent = "min_concurrent"
    }

    /// Decodes a policy with the documented defaults; `on` items may be text or numbers (`[reset, 503]`), and an
    /// item that is neither a condition nor a number is a decoding error that names it.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        var on = Self.defaultConditions
        if var items = try? container.nestedUnkeyedContainer(forKey: .on) {
            on = []
            while !items.isAtEnd {
                if let status = try? items.decode(Int.self) {
                    on.append(.status(status))
                    continue
                }
                let text = try items.decode(String.self)
                guard let condition = Condition(text) else {
                    throw DecodingError.dataCorruptedError(
                        in: items, debugDescription: "'\(text)' is not connect-failure, reset or a status (500-599)")
                }
                on.append(condition)
            }
        }
        var backoffBase = "25ms"
        var backoffMax = "250ms"
        if container.contains(.backoff) {
            let backoff = try container.nestedContainer(keyedBy: BackoffKeys.self, forKey: .backoff)
            backoffBase = try backoff.decodeDurationIfPresent(forKey: .base) ?? backoffBase
            backoffMax = try backoff.decodeDurationIfPresent(forKey: .max) ?? backoffMax
        }
        var percent = 20
        var minConcurrent = 3
        if container.contains(.budget) {
            let budget = try container.nestedContainer(keyedBy: BudgetKeys.self, forKey: .budget)
            percent = try budget.decodeIfPresent(Int.self, forKey: .percent) ?? percent
            minConcurrent = try budget.decodeIfPresent(Int.self, forKey: .minConcurrent) ?? minConcurrent
        }
        self.init(
            on: on,
            attempts: try container.decodeIfPresent(Int.self, forKey: .attempts) ?? 1,
            perTryTimeout: try container.decodeDurationIfPresent(forKey: .perTryTimeout),
            backoffBase: backoffBase,
            backoffMax: backoffMax,
            budgetPercent: percent,
            budgetMinConcurrent: minConcurrent
        )
    }

    /// Encodes every field, conditions as text (`"503"`), so a snapshot shows the whole policy.
    public func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.on.map(\.description), forKey: .on)
        try container.encode(self.attempts, forKey: .attempts)
        try container.encodeIfPresent(self.perTryTimeout, forKey: .perTryTimeout)
        var backoff = container.nestedContainer(keyedBy: BackoffKeys.self, forKey: .backoff)
        try backoff.encode(self.backoffBase, forKey: .base)
        try backoff.encode(self.backoffMax, forKey: .max)
        var budget = container.nestedContainer(keyedBy: BudgetKeys.self, forKey: .budget)
        try budget.encode(self.budgetPercent, forKey: .percent)
        try budget.encode(self.budgetMinConcurrent, forKey: .minConcurrent)
    }
}

/// A route's retry policy compiled for the request path: numbers, not text.
///
/// Built once per routing table from a valid policy; a decision hands it to the proxy without copying anything but
/// a reference.
public final class RetryPlan: Sendable {
    /// Connect refused, failed or timed out is retried.
    public let onConnectFailure: Bool
    /// A connection closed before the answer's head is retried.
    public let onReset: Bool
    /// The answer statuses that are retried (a response timeout counts as 504).
    public let statuses: [Int]
    public let attempts: Int
    /// The response timeout of each attempt, or nil for the route's.
    public let perTryTimeoutMilliseconds: Int?
    public let backoffBaseMilliseconds: Int
    public let backoffMaxMilliseconds: Int
    public let budgetPercent: Int
    public let budgetMinConcurrent: Int

    /// Compiles `policy`; values that do not parse (a store that skipped validation) take the defaults.
    public init(_ policy: RetryPolicy) {
        self.onConnectFailure = policy.on.contains(.connectFailure)
        self.onReset = policy.on.contains(.reset)
        self.statuses = policy.on.compactMap {
            if case .status(let status) = $0 { status } else { nil }
        }
        self.attempts = min(max(policy.attempts, 0), RetryPolicy.maxAttempts)
        self.perTryTimeoutMilliseconds = policy.perTryTimeout.flatMap(DurationText.milliseconds)
        let base = DurationText.milliseconds(policy.backoffBase) ?? 25
        self.backoffBaseMilliseconds = base
        self.backoffMaxMilliseconds = max(base, DurationText.milliseconds(policy.backoffMax) ?? 250)
        self.budgetPercent = min(max(policy.budgetPercent, 0), 100)
        self.budgetMinConcurrent = min(max(policy.budgetMinConcurrent, 0), 10_000)
    }
}

extension RetryPlan: Equatable {
    /// Plans are equal when every compiled number is: two tables compiled from one policy decide alike.
    public static func == (lhs: RetryPlan, rhs: RetryPlan) -> Bool {
        lhs.onConnectFailure == rhs.onConnectFailure && lhs.onReset == rhs.onReset && lhs.statuses == rhs.statuses
            && lhs.attempts == rhs.attempts && lhs.perTryTimeoutMilliseconds == rhs.perTryTimeoutMilliseconds
            && lhs.backoffBaseMilliseconds == rhs.backoffBaseMilliseconds
            && lhs.backoffMaxMilliseconds == rhs.backoffMaxMilliseconds && lhs.budgetPercent == rhs.budgetPercent
            && lhs.budgetMinConcurrent == rhs.budgetMinConcurrent
    }
}
