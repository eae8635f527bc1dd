import FicusCore
import FicusDiff
import FicusRollout
import FicusStore
import Foundation
import Logging
import ServiceLifecycle

/// Drives the store's running canaries from inside `ficus serve`: one proxy per canary, chosen by lease.
///
/// Runs in the proxy so that a canary outlives the CLI that started it. Each active canary's lease is decided every
/// ttl/3; only the holder sends ticks and evaluations, and it reloads the state from the store before every event, so
/// a takeover or an operator's command is seen at once. Windows are read one window interval (plus a margin) after
/// the step is due, so that the last window of the step has been flushed by every proxy.
final class CanaryController: Service, Sendable {
    let store: any RolloutStore & ShadowStore & ConfigurationStore
    let holder: String
    let leaseTTL: TimeInterval
    let pollInterval: Duration
    let logger: Logger
    let windowInterval: TimeInterval
    let clock: any NodeClock
    /// This proxy's failed metric-window writes (`WindowFailures`), read at every evaluation.
    let windowFailures: WindowFailures
    /// The store's changes (the store feed's), waited on between passes; nil: a pass every `pollInterval`.
    let changes: ChangeSignal?
    /// With `changes`: the longest wait between passes.
    let safetyNet: Duration

    init(
        store: any RolloutStore & ShadowStore & ConfigurationStore,
        holder: String,
        configuration: FicusNode.Configuration.Canary,
        windows: FicusNode.Configuration.Windows,
        clock: any NodeClock,
        windowFailures: WindowFailures = WindowFailures(),
        changes: ChangeSignal? = nil,
        logger: Logger
    ) {
        self.changes = changes
        self.safetyNet = configuration.safetyNet
        self.store = store
        self.holder = holder
        self.leaseTTL = configuration.leaseTTL.seconds
        self.windowInterval = windows.interval.seconds
        self.pollInterval = configuration.pollInterval
        self.clock = clock
        self.windowFailures = windowFailures
        self.logger = logger
    }

    /// How long after a step is due its windows are read: one window of the pace proxies keep while this canary
    /// runs (`WindowPace`), plus a margin.
    func evaluationDelay(for spec: CanarySpec) -> TimeInterval {
        WindowPace.interval(configured: self.windowInterval, canaryIntervals: [spec.interval]) + 0.5
    }

    /// What the controller remembers per route between passes.
    ///
    /// Only in memory: everything that must survive a restart is in the canary's row.
    struct RouteMemory {
        var lease: CanaryLeaseRow?
        var nextLeaseCheck = Date.distantPast
        var pendingEvaluation: (version: Int, from: Date, to: Date)?
        /// When the held canary next needs a look: its running step due, or its pending evaluation's windows landed.
        var nextDue: Date?
        /// `windowFailures.total` at the previous evaluation: failures since then belong to the step being judged.
        var windowFailuresSeen = 0
    }

    public func run() async throws {
        let memory = await cancelWhenGracefulShutdown { () async -> [String: RouteMemory] in
            var memory: [String: RouteMemory] = [:]
            var toldOfChange = false
            while !Task.isCancelled {
                let seen = self.changes?.generation ?? 0
                var failed = false
                do {
                    try await self.pass(&memory, toldOfChange: toldOfChange)
                } catch is CancellationError {
                    break
                } catch {
                    failed = true
                    self.logger.warning("canary controller pass failed", metadata: ["error": "\(error)"])
                }
                // After a failure (the store unreachable) the next look is a poll interval away, whatever is due.
                guard let changes = self.changes, !failed else {
                    try? await self.clock.sleep(for: self.pollInterval)
                    continue
                }
                await self.wait(for: changes, past: seen, until: Self.deadline(memory))
                toldOfChange = changes.generation != seen
            }
            return memory
        }
        for (route, remembered) in memory where remembered.lease != nil {
            try? await self.store.releaseCanaryLease(route: route, holder: self.holder)
        }
    }

    /// The earliest moment a pass has something to do without being told of a change: a lease to renew or check,
    /// a held step due, an evaluation whose windows have landed.
    static func deadline(_ memory: [String: RouteMemory]) -> Date? {
        memory.values.flatMap { [$0.nextLeaseCheck, $0.nextDue].compactMap { $0 } }.min()
    }

    /// Waits until the store changes after generation `seen`, `deadline` passes (at least 0.1 s), or `safetyNet` has
    /// gone by, whichever comes first.
    private func wait(for changes: ChangeSignal, past seen: UInt64, until deadline: Date?) async {
        var wait = self.safetyNet
        if let deadline {
            // Never less than a tenth of a second: a deadline already past (a step the pass just moved on, a write
            // that lost a race) is looked at again soon, without a busy loop on the store.
            wait = min(wait, .interval(max(0.1, deadline.timeIntervalSince(self.clock.now))))
        }
        let pause = wait
        await withTaskGroup(of: Void.self) { group in
            group.addTask {
                try? await self.clock.sleep(for: pause)
            }
            group.addTask {
                await changes.wait(past: seen)
            }
            await group.next()
            group.cancelAll()
        }
    }

    /// One look at every active canary: keep or take its lease, then drive it if held.
    ///
    /// Leases of canaries that finished are released at once.
    ///
    /// `toldOfChange`: the store changed since the last pass. A proxy that stands by then reads each lease at once,
    /// so that a lease released by a proxy that stopped is taken over now rather than at the next lease check; a
    /// holder keeps its schedule (its own renewal is a change too, and would renew again at every poll).
    private func pass(_ memory: inout [String: RouteMemory], toldOfChange: Bool = false) async throws {
        let rows = try await self.store.canaries(activeOnly: true)
        let active = Set(rows.map(\.route))
        for route in memory.keys where !active.contains(route) {
            if memory[route]?.lease != nil {
                try? await self.store.releaseCanaryLease(route: route, holder: self.holder)
            }
            memory[route] = nil
        }
        for row in rows {
            var remembered = memory[row.route] ?? RouteMemory()
            if toldOfChange, remembered.lease == nil {
                remembered.nextLeaseCheck = .distantPast
            }
            try await self.decideLease(route: row.route, &remembered)
            remembered.nextDue = nil
            if remembered.lease != nil {
                try await self.drive(row, &remembered)
                remembered.nextDue = try? self.nextDue(row, remembered)
            }
            memory[row.route] = remembered
        }
    }

    /// Calls `Lease.decide` when due and writes its decision as a compare-and-swap; a lost swap stands by.
    ///
    /// An acquired lease drops any pending evaluation, since the state is reloaded from the store anyway.
    private func decideLease(route: String, _ remembered: inout RouteMemory) async throws {
        let now = self.clock.now
        guard now >= remembered.nextLeaseCheck else {
            return
        }
        remembered.nextLeaseCheck = now.addingTimeInterval(self.leaseTTL / 3)
        let stored = try await self.store.canaryLease(route: route)
        let decision = Lease.decide(
            row: stored.map { Lease(holder: $0.holder, expiresAt: $0.expiresAt) },
            me: self.holder,
            now: now,
            ttl: self.leaseTTL,
            wasHolder: remembered.lease != nil
        )
        switch decision {
        case .acquire(let lease, _), .renew(let lease, _):
            let row = CanaryLeaseRow(holder: lease.holder, expiresAt: lease.expiresAt)
            if try await self.store.writeCanaryLease(route: route, row, replacing: stored) {
                if remembered.lease == nil {
                    self.logger.notice("driving canary", metadata: ["route": "\(route)"])
                    remembered.pendingEvaluation = nil
                }
                remembered.lease = try await self.store.canaryLease(route: route)
            } else {
                remembered.lease = nil
            }
        case .standBy, .lost:
            if remembered.lease != nil {
                self.logger.notice("lost the lease of a canary", metadata: ["route": "\(route)"])
            }
            remembered.lease = nil
            remembered.pendingEvaluation = nil
        }
    }

    /// When a held canary next needs a tick: when its pending evaluation's windows have landed, else when its running
    /// step is due (nil while paused or finished: an operator's command arrives as a change).
    ///
    /// Read from the row as stored before this pass's event; a step the pass moved on is due later, so the wait it
    /// gives is at most early, never late.
    private func nextDue(_ row: CanaryRow, _ remembered: RouteMemory) throws -> Date? {
        let state = try CanaryState(jsonData: row.stateJSON)
        if let pending = remembered.pendingEvaluation {
            return pending.to.addingTimeInterval(self.evaluationDelay(for: state.spec))
        }
        if case .running(let progress) = state.phase {
            return progress.dueAt
        }
        return nil
    }

    /// Sends a tick, or the evaluation asked for once its windows have landed.
    ///
    /// An evaluation is pinned to the row version it was asked on: if an operator changed the canary meanwhile,
    /// the evidence is dropped and the next tick asks again.
    private func drive(_ row: CanaryRow, _ remembered: inout RouteMemory) async throws {
        let wiring = CanaryWiring(store: self.store, author: "ficus serve (\(self.holder))")
        if let pending = remembered.pendingEvaluation {
            guard pending.version == row.version else {
                remembered.pendingEvaluation = nil
                return
            }
            let state = try CanaryState(jsonData: row.stateJSON)
            guard self.clock.now >= pending.to.addingTimeInterval(self.evaluationDelay(for: state.spec)) else {
                return
            }
            remembered.pendingEvaluation = nil
            var inputs = try await self.inputs(spec: state.spec, from: pending.from, to: pending.to)
            let failures = self.windowFailures.total
            inputs.windowErrors = failures - remembered.windowFailuresSeen
            remembered.windowFailuresSeen = failures
            do {
                let outcome = try await wiring.apply(
                    row: row, action: "canary.step", event: .evaluated(now: self.clock.now, inputs))
                self.log(outcome, route: row.route)
            } catch is CanaryConflict {
                return
            }
            return
        }
        let outcome: CanaryWiring.Outcome
        do {
            outcome = try await wiring.apply(row: row, action: "canary.step", event: .tick(now: self.clock.now))
        } catch is CanaryConflict {
            return
        }
        if case .evaluate(_, let version, let from, let to) = outcome {
            remembered.pendingEvaluation = (version, from, to)
        } else {
            self.log(outcome, route: row.route)
        }
    }

    /// Reads the gate inputs of `spec`'s route for the window from `from` to `to`.
    ///
    /// Legacy carries nothing at a 100% step, so its p99 then comes from the ten intervals before the window: the
    /// bar the new side is held to does not change because legacy went quiet.
    private func inputs(spec: CanarySpec, from: Date, to: Date) async throws -> GateInputs {
        let configuration = try await self.store.latest()?.configuration ?? Configuration()
        let route = configuration.routes.first { $0.name == spec.route }
        let legacy = route?.legacy ?? ""
        let traffic = try await self.store.trafficSummary(route: spec.route, from: from, to: to)
        let new = traffic.first { $0.upstream == spec.target }
        var legacyTraffic = traffic.first { $0.upstream == legacy }
        if (legacyTraffic?.requests ?? 0) == 0 {
            let lookback = from.addingTimeInterval(-max(600, 10 * spec.interval))
            legacyTraffic = try await self.store.trafficSummary(route: spec.route, from: lookback, to: to)
                .first { $0.upstream == legacy }
        }
        var shadow: ShadowCounts?
        if route?.shadow != nil {
            let rate = try await self.store.shadowDiffRate(
                route: spec.route,
                from: from,
                to: to,
                thresholds: NoiseThresholds()
            )
            shadow = ShadowCounts(compared: rate.compared, differing: rate.differingAfterNoise)
        }
        return GateInputs(
            newRequests: new?.requests ?? 0,
            newServerErrors: new?.serverErrors ?? 0,
            newP99Micros: new?.p99Microseconds ?? 0,
            legacyP99Micros: legacyTraffic?.p99Microseconds ?? 0,
            legacyRequests: traffic.first { $0.upstream == legacy }?.requests ?? 0,
            distinctIdentities: try await self.store.distinctIdentities(route: spec.route, from: from, to: to),
            shadow: shadow
        )
    }

    /// Logs the audit lines an event produced.
    ///
    /// The audit log has them too; the log line is for whoever watches the proxy.
    private func log(_ outcome: CanaryWiring.Outcome, route: String) {
        if case .applied(_, let actions, _) = outcome {
            for case .record(let line) in actions {
                self.logger.notice("canary", metadata: ["route": "\(route)", "step": "\(line)"])
            }
        }
    }
}
