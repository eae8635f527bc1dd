import FicusReport
import FicusRollout
import FicusStore
import Foundation

extension ReportCommand {
    /// The latest canary of every route, as the report's migration-progress section shows it.
    ///
    /// The same numbers as `ficus canary status`: the status is computed from the stored state at `now`, the driver
    /// from the lease row. Rates become percentages, the report's unit.
    static func canaries(store: any RolloutStore, now: Date) async throws -> [String: RouteCanary] {
        var canaries: [String: RouteCanary] = [:]
        for row in try await store.canaries(activeOnly: false) {
            let state = try CanaryState(jsonData: row.stateJSON)
            let status = CanaryStatus(state: state, now: now)
            var endedAt: Date?
            var driver: String?
            switch state.phase {
            case .promoted(let at, _), .aborted(let at, _, _):
                endedAt = at
            case .pending, .running, .paused:
                driver = try await store.canaryDriver(route: row.route, now: now)
            }
            canaries[row.route] = Self.canary(status, state: state, driver: driver, endedAt: endedAt)
        }
        return canaries
    }

    private static func canary(
        _ status: CanaryStatus,
        state: CanaryState,
        driver: String?,
        endedAt: Date?
    ) -> RouteCanary {
        RouteCanary(
            target: status.target,
            phase: status.phase,
            step: status.step,
            stepCount: status.stepCount,
            weight: status.weight,
            progressPercent: (status.progress * 10_000).rounded() / 100,
            reason: status.reason,
            holding: status.holding,
            driver: driver,
            endedAt: endedAt,
            gates: status.gates.map { gate in
                let scale = gate.name.hasSuffix("rate") ? 100.0 : 1.0
                return CanaryGate(
                    name: gate.name,
                    value: gate.value.map { $0 * scale },
                    threshold: gate.threshold * scale,
                    passing: gate.passing
                )
            },
            judgements: state.history.map { evaluation in
                let (verdict, reason): (String, String)
                switch evaluation.verdict {
                case .pass: (verdict, reason) = ("pass", "")
                case .hold(let why): (verdict, reason) = ("hold", why)
                case .fail(let why): (verdict, reason) = ("fail", why)
                }
                return CanaryJudgement(
                    step: evaluation.step + 1,
                    weight: evaluation.weight,
                    at: evaluation.at,
                    verdict: verdict,
                    reason: reason,
                    newRequests: evaluation.inputs.newRequests,
                    count: evaluation.count
                )
            }
        )
    }
}
