import FicusCore
import Foundation
import NIOCore

/// What becomes of a request once it is parsed: the upstream it goes to, with its forwarded head written and its
/// timeouts, fallback, retry, shadow and `stale_if_error` plans made, or the answer Ficus gives it itself (no route,
/// rate limited, an unknown upstream, too many tunnels).
///
/// Decided before the exchange machine hears of the request, so the machine sees a target and nothing of routing;
/// the connection handler keeps one planner per client connection (its client facts are the connection's).
struct RequestPlanner {
    let shared: ProxyContext
    /// What the forwarded heads record of the peer.
    var client: HeaderHygiene.ClientFacts

    /// Plans `head` (seen as `view`) with `table`, filling in `exchange` (route, upstream, forwarded head, plans);
    /// `headBuffer` is the connection's reused buffer for the forwarded head.
    func plan(
        _ head: HTTPHead, view: RequestView, table: RoutingTable, exchange: ProxyConnectionHandler.Exchange,
        headBuffer: inout ByteBuffer
    ) -> ExchangeStateMachine.Target {
        let decision = table.decide(view)
        guard let route = decision.route else {
            return .local(.init(status: 404, error: "no_route", detail: "no route matches \(view.method) \(view.path)"))
        }
        exchange.route = route
        if let limit = decision.rateLimit, let answer = self.rateLimited(limit, view: view, exchange: exchange) {
            return .local(answer)
        }
        exchange.upstreamName = decision.upstream
        exchange.stickyHash = decision.stickyHash
        guard let upstream = table.upstream(named: decision.upstream) else {
            return .local(
                .init(
                    status: 502,
                    error: "unknown_upstream",
                    detail: "route '\(route)' names upstream '\(decision.upstream)', which is not configured"
                ))
        }
        exchange.upstream = upstream
        if head.upgradeWebSocket, self.shared.tunnels.active >= self.shared.configuration.tunnels.maxActive {
            return .local(
                .init(
                    status: 503,
                    error: "too_many_tunnels",
                    detail: "\(self.shared.configuration.tunnels.maxActive) WebSocket tunnels are open; try again later",
                    retryAfter: true
                ))
        }
        let connectTimeout = decision.timeouts.connectMilliseconds.map(Self.milliseconds)
            ?? self.shared.configuration.timeouts.connect
        var responseTimeout = decision.timeouts.responseHeaderMilliseconds.map(Self.milliseconds)
            ?? self.shared.configuration.timeouts.responseHead
        // Reusing one buffer saves an allocation per request: by now the last request's head has been written.
        headBuffer.clear()
        HeaderHygiene.writeRequestHead(
            head,
            into: &headBuffer,
            client: self.client,
            viaName: self.shared.configuration.viaName,
            edits: HeaderHygiene.RequestEdits.forRequest(decision.rewrite, view: view),
            upstreamName: upstream.name,
            requestID: exchange.requestID
        )
        exchange.outboundHead = headBuffer
        // A WebSocket handshake is never shadowed: a copy would open a second session on the other side.
        if let shadowName = decision.shadow, shadowName != decision.upstream, !head.upgradeWebSocket,
            let dispatcher = self.shared.shadow
        {
            exchange.shadow = self.shadowRecorder(
                view: view, route: route, serving: upstream.name, shadow: table.upstream(named: shadowName),
                decision: decision, table: table, dispatcher: dispatcher, requestID: exchange.requestID)
        }
        var fallback: ExchangeStateMachine.Fallback?
        if let name = decision.fallback, table.hasUpstream(named: name) {
            fallback = .init(upstream: name, statuses: decision.fallbackStatuses)
            exchange.view = view
            exchange.table = table
        }
        var retry: ExchangeStateMachine.Retry?
        if let plan = decision.retry {
            retry = .init(
                onConnectFailure: plan.onConnectFailure,
                onReset: plan.onReset,
                statuses: plan.statuses,
                attempts: plan.attempts,
                backoffBase: .milliseconds(Int64(plan.backoffBaseMilliseconds)),
                backoffMax: .milliseconds(Int64(plan.backoffMaxMilliseconds))
            )
            if let perTry = plan.perTryTimeoutMilliseconds {
                responseTimeout = Self.milliseconds(perTry)
            }
            exchange.retryPlan = plan
            exchange.budgetUpstream = upstream.name
            self.shared.retryBudget.requestStarted(upstream.name)
        }
        if let maxAge = decision.staleIfErrorMilliseconds, head.method == .get, view.header("authorization") == nil {
            exchange.staleKey = StaleKey(route: route, view: view)
            exchange.staleMaxAge = .milliseconds(Int64(maxAge))
            exchange.view = view
            exchange.table = table
        }
        return .upstream(
            name: upstream.name, connectTimeout: connectTimeout, responseTimeout: responseTimeout, fallback: fallback,
            retry: retry, staleIfError: exchange.staleKey != nil)
    }

    /// The head of `exchange`'s request written again for its fallback upstream `name`: that route's rewrite for it,
    /// its Host when the client sent none, and `X-Ficus-Fallback: 1`. Nil when the request's view or table were not
    /// kept, or `name` is gone from the table.
    func fallbackHead(_ exchange: ProxyConnectionHandler.Exchange, to name: String) -> (Upstream, ByteBuffer)? {
        guard let view = exchange.view, let table = exchange.table, let upstream = table.upstream(named: name)
        else { return nil }
        var head = ByteBuffer()
        HeaderHygiene.writeRequestHead(
            view.head,
            into: &head,
            client: self.client,
            viaName: self.shared.configuration.viaName,
            edits: HeaderHygiene.RequestEdits.forRequest(
                table.rewrite(route: exchange.route, upstream: name), view: view),
            upstreamName: name,
            requestID: exchange.requestID,
            fallback: true
        )
        return (upstream, head)
    }

    /// Takes a token from the request's bucket of its route's rate limit; the answer when the request is limited and
    /// the limit enforces, nil when it goes on (a token was taken, or the limit only observes).
    ///
    /// The answer names no upstream (none was involved), so it stays out of every upstream's metric windows.
    private func rateLimited(
        _ policy: RateLimitPolicy, view: RequestView, exchange: ProxyConnectionHandler.Exchange
    ) -> ExchangeStateMachine.LocalAnswer? {
        let verdict = self.shared.rateLimiter.check(
            policy, key: policy.bucketKey(view), now: NIODeadline.now().uptimeNanoseconds)
        guard !verdict.allowed else { return nil }
        self.shared.metrics?.rateLimited(route: policy.route, mode: policy.observes ? "observe" : "enforce")
        guard !policy.observes else { return nil }
        exchange.localFields = RateLimitFields.lines(policy, verdict)
        let (quota, window) = RateLimitFields.quota(policy)
        return ExchangeStateMachine.LocalAnswer(
            status: 429,
            error: "rate_limited",
            detail: "route '\(policy.route)' allows \(quota) requests per \(window) s (\(policy.description)); "
                + "retry in \(max(1, verdict.resetSeconds)) s"
        )
    }

    /// Sets up the shadowing of the current request, or counts why it cannot be shadowed.
    private func shadowRecorder(
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
            client: self.client,
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

    /// A route's timeout as an amount, clamped to 1 ms ... 24 h: the store is checked input too.
    static func milliseconds(_ value: Int) -> TimeAmount {
        .milliseconds(Int64(min(max(value, 1), RouteTimeouts.maxMilliseconds)))
    }
}
