import FicusCore
import NIOCore

extension ProxyConnectionHandler {
    /// What the shell keeps of the request in progress beside the machine's decisions: what metrics, the access log,
    /// the shadow recorder and the upstream connection need.
    final class Exchange {
        var methodString: String
        var path: String
        var started: NIODeadline
        var route = "-"
        var upstreamName = "-"
        /// The routing decision's sticky hash, which metric windows count distinct values of.
        var stickyHash: UInt32?
        var upstream: Upstream?
        var requestFraming: HTTPBodyFraming
        var outboundHead = ByteBuffer()
        var connection: UpstreamConnection?
        var status = 0
        var responseBytes: Int64 = 0
        var shadow: ShadowRecorder?
        /// The client as the access log names it: the peer, or the address trusted proxies reported.
        var client = "-"
        /// `X-Request-Id`: forwarded, logged and kept with shadow records.
        var requestID = "-"
        /// `UPSTREAM:REASON` once the request went to its fallback.
        var fallbackFrom: String?
        /// The route's retry plan, and the upstream whose retry budget counts the request; nil without a plan.
        var retryPlan: RetryPlan?
        var budgetUpstream: String?
        /// The request's current retry holds a slot of its upstream's budget.
        var holdsRetry = false
        /// Retries made.
        var retries = 0
        /// Where the answer is kept for `stale_if_error`, and how old a copy may stand in; nil: not eligible.
        var staleKey: StaleKey?
        var staleMaxAge: TimeAmount = .zero
        /// The answer being copied as it streams to the client.
        var staleCapture: StaleCapture?
        /// The copy found to stand in for a failure, and the status of the failure it replaced.
        var staleAnswer: StaleAnswer?
        var staleFor: Int?
        /// The request and the table it was routed with, kept to write its head again for a fallback upstream.
        var view: RequestView?
        var table: RoutingTable?
        /// Header lines a local answer carries beyond its own (a 429's rate limit fields), or nil.
        var localFields: String?
        /// Upstreams whose `max_retries` admitted a re-send of this request; released when the exchange finishes.
        var retriesHeld: [String] = []

        init(methodString: String, path: String, requestFraming: HTTPBodyFraming, started: NIODeadline) {
            self.methodString = methodString
            self.path = path
            self.requestFraming = requestFraming
            self.started = started
        }

        /// Asks for a slot of `upstream`'s `max_retries` breaker for a re-send of this request (held until the exchange
        /// finishes); false when the breaker refuses.
        func beginRetry(on upstream: Upstream, _ shared: ProxyContext) -> Bool {
            guard shared.health.beginRetry(upstream) else { return false }
            self.retriesHeld.append(upstream.name)
            return true
        }

        /// Asks the route's retry budget, and the upstream's `max_retries`, for the retry the machine wants; a refusal
        /// is counted. The slot of a retry before this one (which has ended) is given back first. False (not counted)
        /// without a retry plan.
        func acquireRetry(_ shared: ProxyContext) -> Bool {
            guard let plan = self.retryPlan, let budget = self.budgetUpstream else { return false }
            if self.holdsRetry {
                shared.retryBudget.retryEnded(budget)
                self.holdsRetry = false
            }
            var granted = shared.retryBudget.tryAcquire(
                budget, percent: plan.budgetPercent, minConcurrent: plan.budgetMinConcurrent)
            // The upstream's `max_retries` breaker has its say too (it counts its own overflow).
            if granted, let target = self.upstream, !self.beginRetry(on: target, shared) {
                shared.retryBudget.retryEnded(budget)
                granted = false
            }
            if granted {
                self.holdsRetry = true
            } else {
                shared.metrics?.retryRefused(route: self.route, upstream: budget)
            }
            return granted
        }

        /// Gives back what the exchange holds of its upstreams' budgets: it is finished, or became a tunnel.
        func releaseBudgets(_ shared: ProxyContext) {
            if let budget = self.budgetUpstream {
                shared.retryBudget.requestFinished(budget, heldRetry: self.holdsRetry)
            }
            for upstream in self.retriesHeld { shared.health.endRetry(upstream: upstream) }
        }
    }
}
