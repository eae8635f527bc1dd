import FicusCore
import FicusRollout
import FicusRuntime
import FicusStore
import Foundation

extension CanaryWiring {
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
            if removeRule, let index = configuration.routes.firstIndex(named: row.route) {
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

extension StoreBackend {
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
