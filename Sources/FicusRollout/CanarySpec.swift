import Foundation

/// What a canary moves, in which steps, how fast, and which gates every step must pass.
///
/// One value holds everything `ficus canary start` was given, so that it can be validated whole, stored beside the
/// canary's state and shown by `ficus canary status` exactly as the operator asked for it.
public struct CanarySpec: Sendable, Codable, Equatable {
    /// The route whose traffic moves.
    ///
    /// Routes are the unit of migration; a route has at most one canary at a time.
    public var route: String

    /// The upstream that receives the canary's share of the route's traffic.
    ///
    /// Must differ from the route's legacy upstream, which keeps the rest.
    public var target: String

    /// The weights of the new side, in percent, one per step; defaults to `[1, 5, 25, 50, 100]`.
    ///
    /// Strictly increasing within 1...100 and ending at 100, so that passing the last step means the new side has
    /// already carried all traffic for one interval before it is promoted.
    public var steps: [Int]

    /// How long each step runs before it is judged, in seconds; defaults to 120.
    ///
    /// Time during which the canary is paused does not count.
    public var interval: TimeInterval

    /// The thresholds each step is judged against.
    ///
    /// See `CanaryGates`.
    public var gates: CanaryGates

    /// Whether promotion reverses the route's shadowing, so that legacy becomes the shadow; defaults to false.
    ///
    /// Keeps comparing answers after the cutover, which is when a team learns what the last steps did not exercise.
    public var reverseShadowOnPromote: Bool

    /// What a failed gate does: abort (the default: back to 0% new) or pause at the step's weight for a person.
    public var onFail: CanaryFailureAction

    /// Consecutive intervals a step may hold without a judgement before the canary pauses with reason
    /// `no evidence`; defaults to 5.
    ///
    /// A canary that cannot gather evidence (no traffic reaches the new side) must say so and stop, not hold
    /// forever, and never promote.
    public var maxHold: Int

    /// The steps used when none are given.
    ///
    /// The same ladder Flagger and Argo Rollouts users know: small first, doubling once confidence grows.
    public static let defaultSteps = [1, 5, 25, 50, 100]

    /// Creates a spec; see the properties for the defaults.
    ///
    /// Nothing is checked here: `validate()` reports every problem at once, naming the field.
    public init(
        route: String,
        target: String,
        steps: [Int] = CanarySpec.defaultSteps,
        interval: TimeInterval = 120,
        gates: CanaryGates = CanaryGates(),
        reverseShadowOnPromote: Bool = false,
        onFail: CanaryFailureAction = .abort,
        maxHold: Int = 5
    ) {
        self.route = route
        self.target = target
        self.steps = steps
        self.interval = interval
        self.gates = gates
        self.reverseShadowOnPromote = reverseShadowOnPromote
        self.onFail = onFail
        self.maxHold = maxHold
    }

    private enum CodingKeys: String, CodingKey {
        case route, target, steps, interval, gates, reverseShadowOnPromote, onFail, maxHold
    }

    /// Decodes a spec; `onFail` and `maxHold` default as in `init` for canaries stored before they existed.
    public init(from decoder: any Decoder) throws {
        let container = try decoder.container(keyedBy: CodingKeys.self)
        self.route = try container.decode(String.self, forKey: .route)
        self.target = try container.decode(String.self, forKey: .target)
        self.steps = try container.decode([Int].self, forKey: .steps)
        self.interval = try container.decode(TimeInterval.self, forKey: .interval)
        self.gates = try container.decode(CanaryGates.self, forKey: .gates)
        self.reverseShadowOnPromote = try container.decode(Bool.self, forKey: .reverseShadowOnPromote)
        self.onFail = try container.decodeIfPresent(CanaryFailureAction.self, forKey: .onFail) ?? .abort
        self.maxHold = try container.decodeIfPresent(Int.self, forKey: .maxHold) ?? 5
    }
}

/// What a canary does when a gate fails.
public enum CanaryFailureAction: String, Sendable, Codable, Equatable, CaseIterable {
    /// Back to 0% new at once (the default).
    case abort
    /// Stay at the step's weight, paused, until an operator resumes, promotes or aborts.
    case pause
}

/// The thresholds a canary step must stay within to move on.
///
/// Rates are fractions (0.01 is 1%) so that the stored value and the arithmetic agree; the CLI converts `1%`.
public struct CanaryGates: Sendable, Codable, Equatable {
    /// The highest share of the new side's requests answered with a 5xx; defaults to 0.01.
    ///
    /// Within 0...1; 0 aborts on the first 5xx once enough requests were seen.
    public var maxErrorRate: Double

    /// The highest ratio of the new side's p99 latency to legacy's; defaults to 1.5.
    ///
    /// Compared to legacy rather than to a fixed budget because the monolith is the bar the new service must meet.
    public var maxP99Ratio: Double

    /// The highest share of shadow comparisons that differ after noise filtering, or nil (the default) for no gate.
    ///
    /// Only meaningful on a route with a shadow policy; `validate(in:)` refuses it on a route without one.
    public var maxDiffRate: Double?

    /// The fewest new-side requests a step must see before it is judged; defaults to 100.
    ///
    /// Below it the step holds: a canary never promotes on no evidence, and never aborts on one unlucky request.
    public var minRequests: Int

    /// Creates gates; see the properties for the defaults.
    ///
    /// Nothing is checked here; see `CanarySpec.validate()`.
    public init(
        maxErrorRate: Double = 0.01,
        maxP99Ratio: Double = 1.5,
        maxDiffRate: Double? = nil,
        minRequests: Int = 100
    ) {
        self.maxErrorRate = maxErrorRate
        self.maxP99Ratio = maxP99Ratio
        self.maxDiffRate = maxDiffRate
        self.minRequests = minRequests
    }
}
