/// Why a request went where it went: the decision and every step that led to it.
///
/// Operators ask "why did this user get the new service?"; `ficus explain` prints this, and tests assert on the
/// structured steps. It is produced by the same evaluation as `decide`, so it can never disagree with it.
public struct Explanation: Sendable, Equatable, CustomStringConvertible {
    /// One step of a decision.
    ///
    /// Structured so that tools can show or assert on steps without parsing text.
    public enum Step: Sendable, Equatable {
        /// No route matches the host, path and method.
        case noRoute
        /// The route that matched, with its host, path and methods.
        case routeMatched(route: String, summary: String)
        /// The global kill switch is on; the legacy upstream serves.
        case killed(legacy: String)
        /// A rule was skipped because a flag it names is off.
        case ruleDisabled(position: Int, rule: String, flag: String)
        /// A rule was evaluated; `trace` shows each condition that was evaluated, with its result.
        case ruleEvaluated(position: Int, rule: String, matched: Bool, trace: ConditionTrace)
        /// No rule matched; the route's default upstream serves.
        case routeDefault(upstream: String)
        /// The request reaches the idle slot of a blue-green upstream; `via` says why (the header or the segment).
        case previewed(upstream: String, slot: String, via: String)
        /// The request's preview segment was evaluated and did not match, so the active slot serves.
        case previewSegmentMissed(upstream: String, trace: ConditionTrace)
        /// An `X-Ficus-Preview` field was ignored; `reason` says why (untrusted client, not the idle slot).
        case previewIgnored(upstream: String, reason: String)
    }

    /// The request as one line (`GET api.example.com /orders/7?x=1 from 10.0.0.1`).
    public var request: String

    /// The decision, identical to what `decide` returns for the same request.
    public var decision: Decision

    /// The steps, in evaluation order.
    public var steps: [Step]

    /// Creates an explanation.
    ///
    /// Built by the routing table; public for tests of tools that render explanations.
    public init(request: String, decision: Decision, steps: [Step]) {
        self.request = request
        self.decision = decision
        self.steps = steps
    }

    /// A readable trace, one step per line and conditions indented below their rule.
    ///
    /// The last line states the outcome (`=> orders-v2 (rule 'canary', bucket 7)`).
    public var description: String {
        var lines = ["request \(self.request)"]
        for step in self.steps {
            switch step {
            case .noRoute:
                lines.append("no route matches")
            case .routeMatched(let route, let summary):
                lines.append("route '\(route)' matches (\(summary))")
            case .killed(let legacy):
                lines.append("global kill switch is on: legacy upstream '\(legacy)' serves")
            case .ruleDisabled(let position, let rule, let flag):
                lines.append("rule \(position) '\(rule)': skipped, flag '\(flag)' is off")
            case .ruleEvaluated(let position, let rule, let matched, let trace):
                lines.append("rule \(position) '\(rule)': \(matched ? "matches" : "does not match")")
                trace.render(into: &lines, depth: 1)
            case .routeDefault(let upstream):
                lines.append("no rule matches: default upstream '\(upstream)' serves")
            case .previewed(let upstream, let slot, let via):
                lines.append("preview: idle slot '\(slot)' of '\(upstream)' serves (\(via))")
            case .previewSegmentMissed(let upstream, let trace):
                lines.append("preview segment of '\(upstream)' does not match: active slot serves")
                trace.render(into: &lines, depth: 1)
            case .previewIgnored(let upstream, let reason):
                lines.append("preview of '\(upstream)' ignored: \(reason)")
            }
        }
        lines.append(self.outcome)
        return lines.joined(separator: "\n")
    }

    private var outcome: String {
        let decision = self.decision
        guard decision.reason != .noRoute else {
            return "=> 404 (no route)"
        }
        var details: [String] = []
        switch decision.reason {
        case .rule:
            details.append("rule '\(decision.rule ?? "")'")
        case .routeDefault:
            details.append("route default")
        case .killed:
            details.append("killed")
        case .noRoute:
            break
        }
        if let bucket = decision.bucket {
            details.append("bucket \(bucket)")
        }
        if let slot = decision.preview {
            details.append("preview of idle slot '\(slot.rawValue)'")
        }
        if let rewrite = decision.rewrite {
            details.append("rewrite \(rewrite.summary)")
        }
        return "=> \(decision.upstream) (\(details.joined(separator: ", ")))"
    }
}

/// One evaluated condition, its result, and the conditions evaluated below it.
///
/// Short-circuiting is visible: conditions after the one that decided an `all` or `any` are not listed.
public struct ConditionTrace: Sendable, Equatable {
    /// The condition and what the request supplied (`header:x-tenant in [acme]: "acme"`).
    public var text: String

    /// Whether the condition held.
    public var result: Bool

    /// The evaluated sub-conditions of `all`, `any`, `not` and segments.
    public var children: [ConditionTrace]

    /// Creates a trace node.
    ///
    /// Built by the routing table; public for tests.
    public init(text: String, result: Bool, children: [ConditionTrace] = []) {
        self.text = text
        self.result = result
        self.children = children
    }

    func render(into lines: inout [String], depth: Int) {
        lines.append(String(repeating: "  ", count: depth) + (self.result ? "yes " : "no  ") + self.text)
        for child in self.children {
            child.render(into: &lines, depth: depth + 1)
        }
    }
}

extension RequestRewrite {
    /// The rewrite as one line (`path /api -> /, set X-Migrated, remove Cookie`).
    ///
    /// Used in explanations.
    var summary: String {
        var parts: [String] = []
        if let path = self.path {
            parts.append("path \(path.prefix) -> \(path.replacement.isEmpty ? "/" : path.replacement)")
        }
        if !self.setHeaders.isEmpty {
            parts.append("set \(self.setHeaders.map(\.name).joined(separator: ", "))")
        }
        if !self.removeHeaders.isEmpty {
            parts.append("remove \(self.removeHeaders.joined(separator: ", "))")
        }
        return parts.joined(separator: ", ")
    }
}
