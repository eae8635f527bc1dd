import CoreMetrics
import FicusCore
import FicusRollout
import FicusStore
import NIOConcurrencyHelpers

/// Publishes where every rollout stands as gauges on this proxy's `/metrics`, whichever proxy drives it.
///
/// A dashboard or an alert reads one proxy and sees each canary's weight, step and phase and each blue-green
/// upstream's active slot: `ficus_canary_weight{route}`, `ficus_canary_step{route}` (1-based; 0 before the first
/// and after the end), `ficus_canary_phase{route,phase}` (1 for the current phase, 0 for the others) and
/// `ficus_bluegreen_active_slot{upstream,slot}` (1 for the active slot, 0 for the idle one).
final class RolloutGauges: Sendable {
    private let factory: MetricsFactory
    private let gauges = NIOLockedValueBox<[String: Gauge]>([:])

    static let phases = ["pending", "running", "paused", "promoted", "aborted"]

    init(factory: MetricsFactory) {
        self.factory = factory
    }

    /// Sets the blue-green gauges from the configuration being served.
    func update(configuration: Configuration) {
        for upstream in configuration.upstreams {
            guard let slots = upstream.slots else { continue }
            for slot in BlueGreenSlots.Slot.allCases {
                self.gauge("ficus_bluegreen_active_slot", [("upstream", upstream.name), ("slot", slot.rawValue)])
                    .record(slot == slots.active ? 1 : 0)
            }
        }
    }

    /// Sets the canary gauges from the canaries stored for each route (the newest canary of a route, finished or not).
    func update(canaries: [CanaryState]) {
        for state in canaries {
            let route = state.spec.route
            self.gauge("ficus_canary_weight", [("route", route)]).record(state.weight)
            let step: Int
            switch state.phase {
            case .running(let progress), .paused(let progress, _): step = progress.index + 1
            case .pending, .promoted, .aborted: step = 0
            }
            self.gauge("ficus_canary_step", [("route", route)]).record(step)
            let current = CanaryStatus.word(for: state.phase)
            for phase in Self.phases {
                self.gauge("ficus_canary_phase", [("route", route), ("phase", phase)]).record(phase == current ? 1 : 0)
            }
        }
    }

    /// Reads the canaries from `store` and updates their gauges; a store that cannot be read leaves them as they were.
    func refresh(from store: any RolloutStore) async {
        guard let rows = try? await store.canaries(activeOnly: false) else { return }
        self.update(canaries: rows.compactMap { try? CanaryState(jsonData: $0.stateJSON) })
    }

    private func gauge(_ label: String, _ dimensions: [(String, String)]) -> Gauge {
        let key = label + dimensions.map { "|\($0.0)=\($0.1)" }.joined()
        return self.gauges.withLockedValue { gauges in
            if let existing = gauges[key] { return existing }
            let created = Gauge(label: label, dimensions: dimensions, factory: self.factory)
            gauges[key] = created
            return created
        }
    }
}
