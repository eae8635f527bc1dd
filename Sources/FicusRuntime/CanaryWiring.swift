import FicusCore
import FicusRollout
import FicusStore
import Foundation

/// Carries out a canary's actions on the store: the CLI and the controller both apply events through this.
///
/// Any process may apply an event: it loads the canary's row, runs the state machine, and writes the new state with
/// the revision and audit line the actions ask for in one transaction, as a compare-and-swap on the row's version.
/// A lost race reloads and tries again on the fresh state, so an operator's pause and the controller's step never
/// overwrite each other; the lease only decides who sends ticks and evaluations.
public struct CanaryWiring: Sendable {
    /// The outcome of one event.
    ///
    /// `evaluate` is returned instead of written: reading windows is the controller's job.
    public enum Outcome: Sendable {
        /// The state and actions were written (or there was nothing to write).
        case applied(state: CanaryState, actions: [CanaryAction], revision: Int?)
        /// The machine asks for the windows from `from` to `to`; nothing was written.
        case evaluate(state: CanaryState, version: Int, from: Date, to: Date)
        /// The event was refused; nothing was written.
        case refused(String)
    }

    public let store: any RolloutStore

    /// Who the revisions and audit entries name.
    public let author: String

    public init(store: any RolloutStore, author: String) {
        self.store = store
        self.author = author
    }

    /// Handles `event` on `row`'s state and writes what the actions say, expecting `row.version`.
    ///
    /// The CLI's `apply(route:action:expectVersion:_:)` reloads the row and retries on a lost race.
    public func apply(row: CanaryRow, action: String, event: CanaryEvent) async throws -> Outcome {
        let state = try CanaryState(jsonData: row.stateJSON)
        var machine = CanaryStateMachine(state: state)
        let actions = machine.handle(event)
        return try await self.write(
            row: row,
            before: state,
            after: machine.state,
            actions: actions,
            action: action,
            expectVersion: row.version
        )
    }

    /// Writes a state and its actions: at most one revision (setWeight, promote, abort) with the record as reason.
    ///
    /// Also used by `ficus canary start`, with `expectVersion` nil.
    public func write(
        row: CanaryRow,
        before: CanaryState?,
        after: CanaryState,
        actions: [CanaryAction],
        action: String,
        expectVersion: Int?
    ) async throws -> Outcome {
        var lines: [String] = []
        var change: (@Sendable (inout Configuration) throws -> Void)?
        let spec = after.spec
        let ruleName = row.ruleName
        let stickiness = row.stickiness
        for item in actions {
            switch item {
            case .refuse(let message):
                return .refused(message)
            case .evaluate(let from, let to):
                return .evaluate(state: after, version: row.version, from: from, to: to)
            case .record(let line):
                lines.append(line)
            case .wait:
                break
            case .setWeight(let percent):
                change = { configuration in
                    try Self.setWeight(percent, spec: spec, rule: ruleName, stickiness: stickiness, in: &configuration)
                }
            case .promote(let reverseShadow):
                change = { configuration in
                    let index = try configuration.routeIndex(spec.route)
                    configuration.routes[index].defaultUpstream = spec.target
                    configuration.routes[index].rules.removeAll { $0.name == ruleName }
                    if reverseShadow, configuration.routes[index].shadow != nil {
                        let legacy = configuration.routes[index].legacy
                        configuration.routes[index].shadow?.to = legacy
                    }
                }
            case .abort:
                change = { configuration in
                    let index = try configuration.routeIndex(spec.route)
                    configuration.routes[index].rules.removeAll { $0.name == ruleName }
                }
            }
        }
        if lines.isEmpty, change == nil, before == after {
            return .applied(state: after, actions: actions, revision: nil)
        }
        var written = row
        written.stateJSON = try after.jsonData()
        written.active = !after.isFinished
        let reason = lines.isEmpty ? "canary '\(spec.route)' state updated" : lines.joined(separator: "; ")
        let result = try await self.store.writeCanary(
            written,
            expectVersion: expectVersion,
            author: ChangeAuthor(author: self.author, reason: reason, action: action),
            change: change
        )
        return .applied(state: after, actions: actions, revision: result.revision?.number)
    }

    /// Sets the canary rule of `spec.route` to `percent`% towards the target, adding it last when missing.
    ///
    /// Last, so that the canary moves only the traffic that would fall through to the route's default: rules that
    /// send a segment somewhere on purpose keep doing so, and a 100% rule is never followed by another rule.
    public static func setWeight(
        _ percent: Int,
        spec: CanarySpec,
        rule name: String,
        stickiness: Attribute?,
        in configuration: inout Configuration
    ) throws {
        let index = try configuration.routeIndex(spec.route)
        let rule = Rule(name: name, condition: .percentage(percent), upstream: spec.target, stickiness: stickiness)
        if let position = configuration.routes[index].rules.firstIndex(where: { $0.name == name }) {
            configuration.routes[index].rules[position] = rule
        } else {
            configuration.routes[index].rules.append(rule)
        }
    }
}
