import FicusCore
import Foundation

extension CanarySpec {
    /// Every problem in the spec on its own, or an empty list when it is valid.
    ///
    /// Each error names the field (`steps`, `interval`, `max-error-rate`) with the spelling of the CLI option, so
    /// that the operator knows which flag to change.
    public func validate() -> [ValidationError] {
        var errors: [ValidationError] = []
        let object = self.objectName
        func report(_ field: String, _ message: String) {
            errors.append(ValidationError(object: object, field: field, message: message))
        }
        if self.route.isEmpty {
            report("route", "must not be empty")
        }
        if self.target.isEmpty {
            report("to", "must not be empty")
        }
        if self.steps.isEmpty {
            report("steps", "must not be empty")
        } else {
            for (index, step) in self.steps.enumerated() where !(1...100).contains(step) {
                report("steps", "step \(index + 1) is \(step)%, must be within 1...100")
            }
            for index in self.steps.indices.dropFirst() where self.steps[index] <= self.steps[index - 1] {
                let previous = self.steps[index - 1]
                report(
                    "steps",
                    "must be strictly increasing, step \(index + 1) (\(self.steps[index])%) follows \(previous)%"
                )
            }
            if let last = self.steps.last, last != 100 {
                report("steps", "must end at 100, ends at \(last)%")
            }
        }
        if !(self.interval.isFinite && self.interval >= 1) {
            report("interval", "must be at least 1 second, is \(RolloutFormat.number(self.interval))")
        } else if self.interval > 7 * 86_400 {
            report("interval", "must be at most 7 days, is \(RolloutFormat.duration(self.interval))")
        }
        if !(1...1000).contains(self.maxHold) {
            report("max-hold", "must be within 1...1000 intervals, is \(self.maxHold)")
        }
        let gates = self.gates
        if !(gates.maxErrorRate.isFinite && (0...1).contains(gates.maxErrorRate)) {
            report("max-error-rate", "must be within 0...1 (0%...100%), is \(RolloutFormat.number(gates.maxErrorRate))")
        }
        if !(gates.maxP99Ratio.isFinite && gates.maxP99Ratio > 0) {
            report("max-p99-ratio", "must be greater than 0, is \(RolloutFormat.number(gates.maxP99Ratio))")
        }
        if let maxDiffRate = gates.maxDiffRate, !(maxDiffRate.isFinite && (0...1).contains(maxDiffRate)) {
            report("max-diff-rate", "must be within 0...1 (0%...100%), is \(RolloutFormat.number(maxDiffRate))")
        }
        if gates.minRequests < 1 {
            report("min-requests", "must be at least 1, is \(gates.minRequests)")
        }
        return errors
    }

    /// Every problem of the spec against the configuration it would run on, including those of `validate()`.
    ///
    /// `ficus canary start` checks this before it stores anything: the route and target must exist, the target must
    /// not be the route's legacy upstream, and a diff gate needs a shadow policy to read from.
    public func validate(in configuration: Configuration) -> [ValidationError] {
        var errors = self.validate()
        let object = self.objectName
        guard let route = configuration.routes.first(where: { $0.name == self.route }) else {
            errors.append(ValidationError(object: object, field: "route", message: "unknown route '\(self.route)'"))
            return errors
        }
        if !self.target.isEmpty {
            if configuration.upstream(named: self.target) == nil {
                errors.append(
                    ValidationError(object: object, field: "to", message: "unknown upstream '\(self.target)'")
                )
            } else if self.target == route.legacy {
                let message = "'\(self.target)' is the route's legacy upstream; a canary moves traffic away from it"
                errors.append(ValidationError(object: object, field: "to", message: message))
            }
        }
        if self.gates.maxDiffRate != nil, route.shadow == nil {
            let message = "route '\(self.route)' has no shadow policy, so there are no diffs to gate on"
            errors.append(ValidationError(object: object, field: "max-diff-rate", message: message))
        }
        if self.reverseShadowOnPromote, route.shadow == nil {
            let message = "route '\(self.route)' has no shadow policy to reverse"
            errors.append(ValidationError(object: object, field: "reverse-shadow", message: message))
        }
        return errors
    }

    /// The object name validation errors carry: `canary 'orders'`.
    ///
    /// Matches the `route 'orders'` style of configuration errors.
    var objectName: String {
        "canary '\(self.route)'"
    }
}

/// A canary spec that failed validation, with every problem found.
///
/// Thrown by `CanaryStateMachine.init(spec:)`; reporting all problems at once saves a fix-and-retry loop.
public struct CanarySpecInvalid: Error, Sendable, Equatable, CustomStringConvertible {
    /// Every problem, in the order of the spec's fields; never empty when thrown.
    ///
    /// Same type as configuration errors, so the CLI prints both the same way.
    public var errors: [ValidationError]

    /// Creates the error.
    ///
    /// See `errors`.
    public init(errors: [ValidationError]) {
        self.errors = errors
    }

    /// A headline with the count, then one error per line.
    ///
    /// Fits both logs and terminal output.
    public var description: String {
        let headline = "invalid canary (\(self.errors.count) error\(self.errors.count == 1 ? "" : "s"))"
        return ([headline] + self.errors.map { "  - \($0)" }).joined(separator: "\n")
    }
}
