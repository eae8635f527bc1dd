import FicusCore
import FicusStore
import Foundation

extension ReportBuilder {
    /// The migration progress of every configured route (or the one asked for), sorted by name.
    ///
    /// Configured shares come from the newest revision, observed ones from the metric windows, and the changes from
    /// the revisions that touched the route joined with the audit log for the action that made them.
    func progress(configuration: Configuration?) async throws -> [RouteProgress] {
        guard let configuration else {
            return []
        }
        let routes = configuration.routes
            .filter { self.options.route == nil || $0.name == self.options.route }
            .sorted { $0.name < $1.name }
        guard !routes.isEmpty else {
            return []
        }
        var actions: [Int: String] = [:]
        let audit = try await self.store.audit(limit: nil)
        for entry in audit.reversed() {
            if let revision = entry.revision, actions[revision] == nil {
                actions[revision] = entry.action
            }
        }
        let window = ReportWindow(from: self.options.from, to: self.options.to, bucketSeconds: 60)
        let blueGreen = audit.filter { $0.action.hasPrefix("bluegreen.") && window.contains($0.time) }
        var progress: [RouteProgress] = []
        for route in routes {
            var routeProgress = try await self.progress(route, actions: actions)
            routeProgress.canary = self.canaries[route.name].flatMap { $0.belongs(in: window) ? $0 : nil }
            routeProgress.slots = Self.slots(of: route, in: configuration, events: blueGreen)
            progress.append(routeProgress)
        }
        return progress
    }

    /// The blue-green upstreams `route` names, with the `ficus bluegreen` audit entries about each, newest first.
    ///
    /// An entry is about an upstream when its reason names it (`upstream 'orders': ...`, written by deploy, check
    /// and switch) or its revision's diff changed it (`~ upstream orders: ...`, as `preview` writes).
    static func slots(of route: Route, in configuration: Configuration, events: [AuditEntry]) -> [UpstreamSlots] {
        let names = Set([route.legacy, route.defaultUpstream] + route.rules.map(\.upstream))
        return configuration.upstreams
            .filter { names.contains($0.name) && $0.slots != nil }
            .sorted { $0.name < $1.name }
            .compactMap { upstream in
                guard let slots = upstream.slots else { return nil }
                let quoted = "upstream '\(upstream.name)'"
                let diffLine = "upstream \(upstream.name):"
                let about = events.filter { $0.reason.contains(quoted) || $0.detail.contains(diffLine) }
                return UpstreamSlots(
                    upstream: upstream.name,
                    active: slots.active.rawValue,
                    activeAddresses: slots[slots.active].map(\.description),
                    idle: slots.idle.rawValue,
                    idleAddresses: slots[slots.idle].map(\.description),
                    previewSegment: slots.previewSegment,
                    events: about.map { entry in
                        // The command's own line when it wrote one, else the diff line with the operator's reason.
                        var summary = entry.reason
                        if !entry.reason.contains(quoted),
                            let line = entry.detail.split(separator: "\n").first(where: { $0.contains(diffLine) })
                        {
                            summary = String(line) + (entry.reason.isEmpty ? "" : " — \(entry.reason)")
                        }
                        return SlotEvent(
                            time: entry.time,
                            revision: entry.revision,
                            author: entry.author,
                            action: entry.action,
                            summary: summary
                        )
                    }
                )
            }
    }

    func progress(_ route: Route, actions: [Int: String]) async throws -> RouteProgress {
        let window = ReportWindow(from: self.options.from, to: self.options.to, bucketSeconds: 60)
        let history = try await self.store.history(limit: nil, route: route.name)
        let inWindow = history.filter { window.contains($0.createdAt) }
        let changes = inWindow.map { revision in
            RouteChange(
                revision: revision.number,
                time: revision.createdAt,
                author: revision.author,
                reason: revision.reason,
                action: actions[revision.number] ?? "change",
                summary: revision.summary
            )
        }
        let traffic = try await self.store.trafficSummary(
            route: route.name, from: self.options.from, to: self.options.to)
        let total = traffic.reduce(0) { $0 + $1.requests }
        let observed = traffic.map {
            ObservedTraffic(
                upstream: $0.upstream,
                requests: $0.requests,
                percent: EndpointReport.percent($0.requests, of: total),
                serverErrors: $0.serverErrors,
                p99Microseconds: $0.p99Microseconds
            )
        }
        let legacy = traffic.filter { $0.upstream == route.legacy }.reduce(0) { $0 + $1.requests }
        let (rules, shares, conditional) = Self.configuredShares(route)
        return RouteProgress(
            route: route.name,
            legacy: route.legacy,
            defaultUpstream: route.defaultUpstream,
            rules: rules,
            configuredShares: shares,
            conditionalRules: conditional,
            observed: observed,
            observedLegacyPercent: total == 0 ? nil : EndpointReport.percent(legacy, of: total),
            observedNewPercent: total == 0 ? nil : EndpointReport.percent(total - legacy, of: total),
            sinceRevision: history.first?.number,
            since: history.first?.createdAt,
            flips: changes.filter(\.isFlip).count,
            rollbacks: changes.filter(\.isRollback).count,
            changes: Array(changes.prefix(self.options.maxChangesPerRoute))
        )
    }

    /// The route's rules as shown, the share per upstream the unconditional rules give, and the conditional rules.
    ///
    /// Each percentage rule hashes its own name, so a rule takes its percentage of what earlier rules left; rules
    /// that depend on request attributes take an unknown part and are named instead of guessed.
    static func configuredShares(_ route: Route) -> ([RuleShare], [UpstreamShare], [String]) {
        var rules: [RuleShare] = []
        var shares: [String: Double] = [:]
        var conditional: [String] = []
        var remaining = 100.0
        for rule in route.rules {
            let percentage = Self.percentage(of: rule.condition)
            rules.append(
                RuleShare(
                    name: rule.name,
                    upstream: rule.upstream,
                    condition: rule.condition.description,
                    percentage: percentage
                ))
            if let percentage {
                let share = remaining * Double(percentage) / 100
                shares[rule.upstream, default: 0] += share
                remaining -= share
            } else {
                conditional.append(rule.name)
            }
        }
        shares[route.defaultUpstream, default: 0] += remaining
        let list = shares.filter { $0.value > 0 }
            .map { UpstreamShare(upstream: $0.key, percent: ($0.value * 100).rounded() / 100) }
            .sorted { $0.percent != $1.percent ? $0.percent > $1.percent : $0.upstream < $1.upstream }
        return (rules, list, conditional)
    }

    /// The percentage of a condition that is a plain percentage (or always: 100), else nil.
    static func percentage(of condition: Condition) -> Int? {
        switch condition {
        case .percentage(let percentage):
            return percentage
        case .all(let conditions) where conditions.isEmpty:
            return 100
        case .all(let conditions) where conditions.count == 1:
            return Self.percentage(of: conditions[0])
        default:
            return nil
        }
    }
}
