import Foundation

/// What the stored windows say about one canary step: the new side's traffic and latency, legacy's latency, and the
/// route's shadow comparisons.
///
/// The controller reads these for the window an `.evaluate(from:to:)` action names and hands them back in
/// `.evaluated`; the state machine never reads a store, so every verdict is a function of these numbers.
public struct GateInputs: Sendable, Codable, Equatable {
    /// Requests answered by the new side in the window.
    ///
    /// The sample size: below `minRequests` nothing is judged.
    public var newRequests: Int

    /// Of those, the ones answered with a 5xx (including the proxy's own 502/504 for the new side).
    ///
    /// A gateway error is the new side failing just as much as a 500 is.
    public var newServerErrors: Int

    /// The new side's p99 latency in the window, in microseconds.
    ///
    /// Microseconds as integers so that stored windows and inputs compare exactly.
    public var newP99Micros: Int

    /// Legacy's p99 latency on the same route in the window, in microseconds; 0 when legacy answered nothing.
    ///
    /// The bar the new side is held to; 0 makes the ratio undefined and the step holds.
    public var legacyP99Micros: Int

    /// Requests answered by the route's legacy upstream in the window; nil in evaluations stored before it was
    /// kept.
    ///
    /// Tells "no traffic at all" from "traffic that never reaches the new side" (every request in one bucket).
    public var legacyRequests: Int?

    /// Distinct sticky values (users, by the canary's stickiness) among the route's requests in the window, exact up
    /// to 32; nil when the windows did not count them (proxies of an older Ficus).
    ///
    /// A split over a handful of users says nothing about the rest: below `CanaryGates.minDistinctIdentities` the step
    /// holds, whatever the other numbers.
    public var distinctIdentities: Int?

    /// Metric windows the judging proxy failed to store since its previous judgement; nil counts as none.
    ///
    /// Lost windows make the other numbers untrustworthy: the step holds with that reason, never "too few requests".
    public var windowErrors: Int?

    /// The route's shadow comparisons in the window, or nil when the route has no shadow policy.
    ///
    /// Nil and "zero compared" differ: the first means no diff gate can ever be judged, the second only not yet.
    public var shadow: ShadowCounts?

    /// Creates inputs.
    ///
    /// See the properties.
    public init(
        newRequests: Int,
        newServerErrors: Int,
        newP99Micros: Int,
        legacyP99Micros: Int,
        legacyRequests: Int? = nil,
        distinctIdentities: Int? = nil,
        shadow: ShadowCounts? = nil
    ) {
        self.newRequests = newRequests
        self.newServerErrors = newServerErrors
        self.newP99Micros = newP99Micros
        self.legacyP99Micros = legacyP99Micros
        self.legacyRequests = legacyRequests
        self.distinctIdentities = distinctIdentities
        self.shadow = shadow
    }
}

/// Shadow comparisons on a route over a window.
///
/// Only differences that survive noise filtering count: a field that also differs between two legacy answers is not
/// a regression of the new side.
public struct ShadowCounts: Sendable, Codable, Equatable {
    /// Pairs of answers compared.
    ///
    /// The denominator of the diff rate.
    public var compared: Int

    /// Of those, the pairs with at least one difference left after noise filtering.
    ///
    /// The numerator of the diff rate.
    public var differing: Int

    /// Creates counts.
    ///
    /// See the properties.
    public init(compared: Int, differing: Int) {
        self.compared = compared
        self.differing = differing
    }
}

/// The gate values computed from `GateInputs`; nil where a value is undefined.
///
/// Kept apart from the verdict so that `ficus canary status` can show them beside their thresholds.
public struct GateValues: Sendable, Codable, Equatable {
    /// New 5xx ÷ new requests; nil with no new requests.
    ///
    /// See `GateInputs.newServerErrors`.
    public var errorRate: Double?

    /// New p99 ÷ legacy p99; nil when legacy's p99 is 0.
    ///
    /// An undefined ratio holds the step rather than passing it.
    public var p99Ratio: Double?

    /// Differing after noise ÷ compared; nil without shadow data or with nothing compared.
    ///
    /// Computed even without a diff gate so that status can show it.
    public var diffRate: Double?

    /// Computes the values of `inputs`.
    ///
    /// Division by zero gives nil, never infinity or NaN, so that values encode as JSON.
    public init(_ inputs: GateInputs) {
        self.errorRate =
            inputs.newRequests > 0 ? Double(inputs.newServerErrors) / Double(inputs.newRequests) : nil
        self.p99Ratio =
            inputs.legacyP99Micros > 0 ? Double(inputs.newP99Micros) / Double(inputs.legacyP99Micros) : nil
        if let shadow = inputs.shadow, shadow.compared > 0 {
            self.diffRate = Double(shadow.differing) / Double(shadow.compared)
        } else {
            self.diffRate = nil
        }
    }
}

/// The judgement of one step's evidence.
///
/// Three outcomes, not two, because "not enough evidence" must neither promote nor abort.
public enum GateVerdict: Sendable, Codable, Equatable {
    /// Every gate passed with enough samples: move to the next step.
    ///
    /// Carries nothing: the values are stored beside the verdict.
    case pass

    /// The evidence is insufficient or a value is undefined: keep the weight and judge again one interval later.
    ///
    /// The reason says what is missing (`too few requests on the new side: 42 < 100`).
    case hold(reason: String)

    /// A gate failed: abort.
    ///
    /// The reason names every failed gate, its value and its threshold (`p99 ratio 2.31 > 1.5`).
    case fail(reason: String)
}

extension CanaryGates {
    /// The fewest distinct sticky values a step's requests must come from before it is judged.
    ///
    /// Twenty users in five buckets of 20% each is already thin; fewer and one user's luck decides the verdict.
    public static let minDistinctIdentities = 20

    /// Judges `inputs` against these gates.
    ///
    /// Too few samples (requests on the new side, or distinct users behind the split) holds before anything else,
    /// so one unlucky request or user neither aborts nor promotes. With enough
    /// samples, any failed gate fails the step even when another gate is undefined, because a failure is evidence
    /// on its own; only then do undefined values (legacy p99 0, no shadow data for a diff gate) hold the step.
    public func judge(_ inputs: GateInputs) -> GateVerdict {
        if let errors = inputs.windowErrors, errors > 0 {
            return .hold(
                reason: "gate error: \(errors) metric window(s) of this proxy could not be stored, so the step's "
                    + "numbers are incomplete (see ficus_telemetry_dropped_total and the log)"
            )
        }
        if inputs.newRequests == 0, let legacy = inputs.legacyRequests, legacy >= self.minRequests {
            return .hold(
                reason: "cannot split: the new side got no request while legacy got \(legacy); every request "
                    + "falls in one bucket, as when all traffic comes from one address (a load balancer): make "
                    + "the canary sticky on something that differs per user (canary start --sticky header:X-User-Id), "
                    + "or run ficus serve with --trusted-proxy for the balancer"
            )
        }
        if let distinct = inputs.distinctIdentities, distinct < Self.minDistinctIdentities {
            let requests = inputs.newRequests + (inputs.legacyRequests ?? 0)
            return .hold(
                reason: "too few distinct users: the step's \(requests) request(s) came from \(distinct) distinct "
                    + "sticky value(s), fewer than \(Self.minDistinctIdentities), so the split says nothing about users; "
                    + "if they are one client behind a load balancer run ficus serve with --trusted-proxy, or make the "
                    + "canary sticky on something that differs per user (ficus identity set header:X-User-Id, or "
                    + "canary start --sticky)"
            )
        }
        if inputs.newRequests < self.minRequests {
            return .hold(reason: "too few requests on the new side: \(inputs.newRequests) < \(self.minRequests)")
        }
        let values = GateValues(inputs)
        var failures: [String] = []
        var holds: [String] = []
        if let errorRate = values.errorRate, errorRate > self.maxErrorRate {
            let (value, threshold) = RolloutFormat.pair(errorRate, self.maxErrorRate, scale: 100, unit: "%")
            failures.append("error rate \(value) > \(threshold)")
        }
        if let p99Ratio = values.p99Ratio {
            if p99Ratio > self.maxP99Ratio {
                let (value, threshold) = RolloutFormat.pair(p99Ratio, self.maxP99Ratio)
                failures.append("p99 ratio \(value) > \(threshold)")
            }
        } else {
            holds.append("legacy p99 is 0, so the p99 ratio is undefined")
        }
        if let maxDiffRate = self.maxDiffRate {
            if let diffRate = values.diffRate {
                if diffRate > maxDiffRate {
                    let (value, threshold) = RolloutFormat.pair(diffRate, maxDiffRate, scale: 100, unit: "%")
                    failures.append("diff rate \(value) > \(threshold)")
                }
            } else if inputs.shadow == nil {
                holds.append("no shadow data for the diff gate")
            } else {
                holds.append("no shadow comparisons yet for the diff gate")
            }
        }
        if !failures.isEmpty {
            return .fail(reason: failures.joined(separator: "; "))
        }
        if !holds.isEmpty {
            return .hold(reason: holds.joined(separator: "; "))
        }
        return .pass
    }
}
