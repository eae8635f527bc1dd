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
struct CanaryWiring: Sendable {
    /// The outcome of one event.
    ///
    /// `evaluate` is returned instead of written: reading windows is the controller's job.
    enum Outcome: Sendable {
        /// The state and actions were written (or there was nothing to write).
        case applied(state: CanaryState, actions: [CanaryAction], revision: Int?)
        /// The machine asks for the windows from `from` to `to`; nothing was written.
        case evaluate(state: CanaryState, version: Int, from: Date, to: Date)
        /// The event was refused; nothing was written.
        case refused(String)
    }

    let store: any RolloutStore

    /// Who the revisions and audit entries name.
    let author: String

    /// Loads `route`'s canary, handles `event(now)` and writes the result, retrying a few times on a lost race.
    ///
    /// `expectVersion` pins the state the event was decided on (the controller's evaluations); a conflict then throws
    /// instead of retrying, because the evidence belongs to a state that no longer exists.
    func apply(
        route: String,
        action: String,
        expectVersion: Int? = nil,
        _ event: @escaping @Sendable (Date) -> CanaryEvent
    ) async throws -> Outcome {
        var attempt = 0
        while true {
            attempt += 1
            guard let row = try await self.store.canary(route: route) else {
                throw CLIError.notFound(kind: "canary", name: route, known: [])
            }
            if let expectVersion, row.version != expectVersion {
                throw CanaryConflict(route: route, detail: "changed while its windows were read")
            }
            do {
                return try await self.apply(row: row, action: action, event: event(Date()))
            } catch let conflict as CanaryConflict where expectVersion == nil && attempt < 5 {
                _ = conflict
                continue
            }
        }
    }

    /// Handles `event` on `row`'s state and writes what the actions say, expecting `row.version`.
    ///
    /// See `apply(route:action:expectVersion:_:)`.
    func apply(row: CanaryRow, action: String, event: CanaryEvent) async throws -> Outcome {
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
    func write(
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
    static func setWeight(
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

    /// The override hook for `ficus kill`, `ficus rollback` and `ficus flip`: abort the canary, recorded, and drop its
    /// rule from the operator's revision when `removeRule`.
    ///
    /// A flip or kill means "this is where the traffic goes": a canary rule left behind would keep sending its share
    /// to the new side with nobody driving it. A rollback restores a revision exactly, so it keeps what it restores.
    static func overrideHook(
        routes: Set<String>?,
        command: OperatorOverride,
        removeRule: Bool
    ) -> CanaryOverrideHook {
        CanaryOverrideHook(routes: routes) { row, configuration in
            var machine = CanaryStateMachine(state: try CanaryState(jsonData: row.stateJSON))
            let actions = machine.handle(.operatorOverride(now: Date(), command))
            if removeRule, let index = configuration.routes.firstIndex(where: { $0.name == row.route }) {
                configuration.routes[index].rules.removeAll { $0.name == row.ruleName }
            }
            let line = actions.compactMap { action -> String? in
                if case .record(let line) = action {
                    return line
                }
                return nil
            }.joined(separator: "; ")
            return CanaryOverrideOutcome(
                stateJSON: try machine.state.jsonData(),
                active: !machine.state.isFinished,
                auditLine: line.isEmpty ? nil : line
            )
        }
    }
}

extension SQLiteConfigurationStore {
    /// `commitPrinting`, with the active canaries of `routes` (nil: all) aborted by `command` in the same transaction.
    ///
    /// For `ficus flip` and `ficus kill`: the canary's rule goes with the operator's revision, see
    /// `CanaryWiring.overrideHook`.
    func commitPrinting(
        _ author: ChangeAuthor,
        allowingRuleNamesFrom restoredFrom: Int? = nil,
        overriding command: OperatorOverride,
        routes: Set<String>?,
        removeRule: Bool,
        change: @escaping @Sendable (inout Configuration) throws -> Void
    ) async throws {
        let hook = CanaryWiring.overrideHook(routes: routes, command: command, removeRule: removeRule)
        let revision = try await self.retryingWhenBusy {
            try await self.commit(
                author,
                expectRevision: nil,
                allowingRuleNamesFrom: restoredFrom,
                overridingCanaries: hook,
                change: change
            )
        }
        guard let revision else {
            let current = try await self.latest()?.number ?? 0
            Console.err("nothing to change: the configuration already is as requested (revision \(current))")
            Console.out("revision \(current)")
            return
        }
        Console.out("revision \(revision.number)")
    }
}

extension RolloutStore {
    /// The proxy that drives `route`'s canary at `now` (the holder of a live lease), or nil when none does.
    ///
    /// `canary status` and the report show it; liveness is `Lease.isLive(at:)`, the rule the controllers use.
    func canaryDriver(route: String, now: Date) async throws -> String? {
        guard let row = try await self.canaryLease(route: route) else {
            return nil
        }
        let lease = Lease(holder: row.holder, expiresAt: row.expiresAt)
        return lease.isLive(at: now) ? lease.holder : nil
    }
}
