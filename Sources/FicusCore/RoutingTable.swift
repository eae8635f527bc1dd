/// An immutable, compiled configuration revision that decides where each request goes.
///
/// Built once per revision off the request path and swapped in atomically by the proxy; every decision is a pure
/// function of the table and the request, so requests in flight finish on the table they started with.
public final class RoutingTable: Sendable {
    /// The revision number of the configuration.
    ///
    /// Reported on `/healthz` and `/metrics` so operators can see which revision a proxy serves.
    public let revision: Int

    /// The configuration the table was compiled from.
    ///
    /// Kept whole for the admin API and for comparing revisions.
    public let configuration: Configuration

    let routes: [CompiledRoute]
    let segments: [CompiledSegment]
    let index: RouteIndex
    let upstreamsByName: [String: Upstream]
    let killed: Bool

    /// Validates and compiles `configuration`.
    ///
    /// Throws `ConfigurationInvalid` with every validation error, so an invalid revision is never served.
    public init(configuration: Configuration, revision: Int) throws {
        let errors = configuration.validate()
        guard errors.isEmpty else {
            throw ConfigurationInvalid(errors: errors)
        }
        let compiler = RoutingTableCompiler(configuration: configuration)
        self.revision = revision
        self.configuration = configuration
        self.segments = compiler.segments
        self.routes = configuration.routes.map(compiler.compile)
        self.index = RouteIndex(routes: configuration.routes)
        self.upstreamsByName = Dictionary(
            configuration.upstreams.map { ($0.name, $0) },
            uniquingKeysWith: { a, _ in a }
        )
        self.killed = configuration.killed
    }

    /// The upstream named `name`, or nil.
    ///
    /// The proxy resolves `Decision.upstream` through the same table that made the decision, so names and addresses
    /// always come from one revision.
    public func upstream(named name: String) -> Upstream? {
        self.upstreamsByName[name]
    }

    /// Decides where `request` goes.
    ///
    /// Pure and allocation-free for host, path, method, flag, segment, percentage and text predicates; regex,
    /// numeric predicates and pre-release versions may allocate.
    public func decide<R: RoutableRequest>(_ request: R) -> Decision {
        self.evaluate(request, recorder: nil)
    }

    /// Decides where `request` goes and records every step of the decision.
    ///
    /// Runs the same evaluation as `decide`, with a recorder attached, so the explanation always matches.
    public func explain<R: RoutableRequest>(_ request: R) -> Explanation {
        let recorder = TraceRecorder()
        let decision = self.evaluate(request, recorder: recorder)
        var line = "\(request.method) \(request.host ?? "-") \(request.path)"
        if let query = request.query {
            line += "?\(query)"
        }
        if let address = request.clientAddress {
            line += " from \(address)"
        }
        return Explanation(request: line, decision: decision, steps: recorder.steps)
    }

    private func evaluate<R: RoutableRequest>(_ request: R, recorder: TraceRecorder?) -> Decision {
        guard let routeIndex = self.index.find(request, routes: self.routes) else {
            recorder?.steps.append(.noRoute)
            return .noRoute
        }
        let route = self.routes[routeIndex]
        recorder?.steps.append(.routeMatched(route: route.name, summary: route.summary))
        if self.killed {
            recorder?.steps.append(.killed(legacy: route.legacy))
            return Decision(
                upstream: route.legacy,
                route: route.name,
                rewrite: route.legacyRewrite,
                timeouts: route.timeouts,
                reason: .killed
            )
        }
        var evaluation = Evaluation(segments: self.segments, recorder: recorder)
        for rule in route.rules {
            if let flag = rule.disabledBy {
                recorder?.steps.append(.ruleDisabled(position: rule.position, rule: rule.name, flag: flag))
                continue
            }
            evaluation.start()
            let matched = evaluation.evaluate(rule.condition, rule, request)
            if let recorder, let trace = recorder.takeTrace() {
                recorder.steps.append(
                    .ruleEvaluated(position: rule.position, rule: rule.name, matched: matched, trace: trace)
                )
            }
            if matched {
                return Decision(
                    upstream: rule.upstream,
                    route: route.name,
                    rule: rule.name,
                    bucket: evaluation.lastBucket,
                    rewrite: rule.rewrite,
                    timeouts: route.timeouts,
                    reason: .rule
                )
            }
        }
        recorder?.steps.append(.routeDefault(upstream: route.defaultUpstream))
        return Decision(
            upstream: route.defaultUpstream,
            route: route.name,
            bucket: evaluation.lastBucket,
            rewrite: route.defaultRewrite,
            timeouts: route.timeouts,
            reason: .routeDefault
        )
    }
}

/// Collects the steps and condition traces of one explained decision.
///
/// A class so that the evaluation can hold an optional reference: nil in `decide`, which then skips all tracing.
final class TraceRecorder {
    var steps: [Explanation.Step] = []
    private var stack: [[ConditionTrace]] = []
    private var finished: ConditionTrace?

    func begin() {
        self.stack.append([])
    }

    func end(_ text: String, _ result: Bool) {
        let node = ConditionTrace(text: text, result: result, children: self.stack.removeLast())
        if self.stack.isEmpty {
            self.finished = node
        } else {
            self.stack[self.stack.count - 1].append(node)
        }
    }

    func takeTrace() -> ConditionTrace? {
        defer {
            self.finished = nil
        }
        return self.finished
    }
}
