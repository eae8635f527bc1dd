import FicusCore
import Foundation
import NIOCore

extension ProxyConnectionHandler {
    /// Sets up the shadowing of the current request, or counts why it cannot be shadowed.
    func shadowRecorder(
        view: RequestView,
        route: String,
        serving: String,
        shadow: Upstream?,
        decision: Decision,
        table: RoutingTable,
        dispatcher: ShadowDispatcher,
        requestID: String
    ) -> ShadowRecorder? {
        guard let shadow else {
            self.shared.metrics?.shadowDropped(route: route, view: view, reason: "unknown_upstream")
            return nil
        }
        guard dispatcher.tryAcquire() else {
            self.shared.metrics?.shadowDropped(route: route, view: view, reason: "capacity")
            return nil
        }
        // Drawn only for a copy that will be made, so an endpoint's noise floor counts samples actually taken.
        var second: Upstream?
        if let candidate = decision.noise,
            dispatcher.noise.draw(route: route, method: view.method, path: view.path, percent: decision.noisePercent)
        {
            second = table.upstream(named: candidate)
        }
        let plan = ShadowJob.Plan(
            view: view,
            client: self.clientFacts,
            viaName: self.shared.configuration.viaName,
            table: table,
            route: route,
            serving: serving,
            shadow: shadow,
            second: second,
            timestamp: Int64(Date().timeIntervalSince1970 * 1_000_000),
            requestID: requestID
        )
        return ShadowRecorder(
            plan: plan,
            dispatcher: dispatcher,
            limits: self.shared.configuration.shadow,
            metrics: self.shared.metrics
        )
    }
}
