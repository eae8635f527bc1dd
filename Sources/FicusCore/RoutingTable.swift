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
    /// The conditions of the rules, one program per `chunk` routes (route `i` is route `i % chunk` of program
    /// `i / chunk`; each program also holds every segment), so that a new revision recompiles only the programs
    /// whose routes changed. At least one, so that preview segments have a program with no route.
    let programs: [RuleProgram]
    /// `programs`' code, read on every decision without touching the array or retaining a program. Written only in
    /// `init` and freed in `deinit`, so sharing it across threads is safe (as `RuleProgram`'s own memory is).
    nonisolated(unsafe) private let codes: UnsafeMutableBufferPointer<UnsafePointer<RuleProgram.Code>>
    let index: RouteIndex
    let upstreamsByName: [String: Upstream]
    let killed: Bool
    /// The shadow policies by route name, with their precomputed hash salts.
    let shadowPolicies: [String: CompiledShadow]

    /// The idle slots that preview requests may reach, by the name of their blue-green upstream.
    ///
    /// Only upstreams whose idle slot has addresses are listed, so a preview never goes nowhere.
    let previews: [String: CompiledPreview]

    /// The idle slot of a blue-green upstream, ready for preview decisions.
    struct CompiledPreview: Sendable {
        var slot: BlueGreenSlots.Slot
        /// `orders@green`: the name the idle slot is served under.
        var name: String
        /// The index of the preview segment in the rule program, or nil.
        var segment: Int?
        var segmentName: String?
        /// The preview token's SHA-256 digest, or nil when the upstream has no token (no header reaches the slot).
        var tokenDigest: [UInt8]?
    }

    /// A route's shadow policy, ready for sampling.
    struct CompiledShadow: Sendable {
        var route: Route
        var policy: ShadowPolicy
        var methods: Set<String>
        var group: String
    }

    /// Routes per rule program: a flip recompiles this many routes at most.
    @inline(__always) static var chunk: Int { 32 }

    /// Validates and compiles `configuration`.
    ///
    /// Throws `ConfigurationInvalid` with every validation error, so an invalid revision is never served.
    ///
    /// With `previous` (the table being served) only what changed is checked and compiled again: objects equal to
    /// the previous configuration's are not validated again, the rule programs of chunks whose routes, segments,
    /// flags and identity are unchanged are shared, and the route index is shared while no route's host, path or
    /// methods changed. The table decides exactly as one compiled from scratch.
    public init(configuration: Configuration, revision: Int, previous: RoutingTable? = nil) throws {
        let validation = configuration.validated(unchangedSince: previous?.configuration)
        guard validation.errors.isEmpty else {
            throw ConfigurationInvalid(errors: validation.errors)
        }
        let reusable = previous.flatMap { previous in
            previous.configuration.segments == configuration.segments
                && previous.configuration.flags == configuration.flags
                && previous.configuration.identity == configuration.identity ? previous : nil
        }
        var routes: [CompiledRoute] = []
        routes.reserveCapacity(configuration.routes.count)
        var programs: [RuleProgram] = []
        let count = configuration.routes.count
        for start in stride(from: 0, to: max(count, 1), by: Self.chunk) {
            let range = start..<min(start + Self.chunk, count)
            if let reusable, reusable.routes.count >= range.upperBound,
                min(start + Self.chunk, reusable.routes.count) == range.upperBound,
                validation.unchangedInPlace.map({ unchanged in range.allSatisfy { unchanged[$0] } })
                    ?? configuration.routes.isSame(range, as: reusable.configuration.routes)
            {
                routes += reusable.routes[range]
                programs.append(reusable.programs[start / Self.chunk])
                continue
            }
            var compiler = RoutingTableCompiler(configuration: configuration)
            for route in configuration.routes[range] {
                routes.append(compiler.compile(route))
            }
            programs.append(compiler.program())
        }
        let codes = UnsafeMutableBufferPointer<UnsafePointer<RuleProgram.Code>>.allocate(capacity: programs.count)
        _ = codes.initialize(from: programs.map(\.code))
        self.codes = codes
        self.programs = programs
        if let previous, validation.sameRouteKeys {
            self.index = previous.index
        } else {
            self.index = RouteIndex(routes: Array(configuration.routes))
        }
        self.revision = revision
        self.configuration = configuration
        self.routes = routes
        var upstreams = Dictionary(configuration.upstreams.map { ($0.name, $0) }, uniquingKeysWith: { a, _ in a })
        var previews: [String: CompiledPreview] = [:]
        for upstream in configuration.upstreams {
            guard let slots = upstream.slots, !slots[slots.idle].isEmpty else { continue }
            let name = Upstream.previewName(upstream.name, slot: slots.idle)
            var preview = Upstream(name: name, addresses: slots[slots.idle])
            // The idle slot is the same service, spoken to with the same TLS settings.
            preview.caFile = upstream.caFile
            preview.clientCert = upstream.clientCert
            preview.clientKey = upstream.clientKey
            // ... and balanced, ejected, limited and health-checked as the upstream is. The checks of both slots run
            // under the configured upstream's name (`Upstream.configuredName`): the preview skips an idle address
            // that fails them, and a flip finds the new active slot's health already known.
            preview.balance = upstream.balance
            preview.outlier = upstream.outlier
            preview.limits = upstream.limits
            preview.healthCheck = upstream.healthCheck
            upstreams[name] = preview
            previews[upstream.name] = CompiledPreview(
                slot: slots.idle,
                name: name,
                segment: slots.previewSegment.flatMap { segment in
                    configuration.segments.firstIndex { $0.name == segment }
                },
                segmentName: slots.previewSegment,
                tokenDigest: slots.previewTokenSHA256.flatMap(PreviewToken.digestBytes)
            )
        }
        self.upstreamsByName = upstreams
        self.previews = previews
        self.killed = configuration.killed
        var shadows: [String: CompiledShadow] = [:]
        for route in configuration.routes {
            guard let policy = route.shadow else { continue }
            shadows[route.name] = CompiledShadow(
                route: route,
                policy: policy,
                methods: Set(policy.effectiveMethods.map { $0.uppercased() }),
                group: "shadow:\(route.name)"
            )
        }
        self.shadowPolicies = shadows
    }

    deinit {
        self.codes.deinitialize()
        self.codes.deallocate()
    }

    /// The upstream named `name`, or nil; preview names (`orders@green`) resolve to the idle slot's addresses.
    ///
    /// The proxy resolves `Decision.upstream` through the same table that made the decision, so names and addresses
    /// always come from one revision.
    public func upstream(named name: String) -> Upstream? {
        self.upstreamsByName[name]
    }

    /// Whether an upstream named `name` is configured, without copying it.
    public func hasUpstream(named name: String) -> Bool {
        self.upstreamsByName.index(forKey: name) != nil
    }

    /// The configured upstreams, by name (preview names such as `orders@green` left out).
    ///
    /// What the admin listener's `/upstreams` lists, with each address's health.
    public var upstreams: [Upstream] {
        self.upstreamsByName.filter { !$0.key.contains("@") }.sorted { $0.key < $1.key }.map(\.value)
    }

    /// Decides where `request` goes.
    ///
    /// Pure and allocation-free for host, path, method, flag, segment, percentage and text predicates; regex,
    /// numeric predicates and pre-release versions may allocate.
    public func decide<R: RoutableRequest>(_ request: R) -> Decision {
        var decision = self.evaluate(request, recorder: nil)
        if !self.previews.isEmpty, self.applyPreview(&decision, request, recorder: nil) {
            return decision
        }
        if !self.shadowPolicies.isEmpty {
            self.applyShadow(&decision, request)
        }
        return decision
    }

    /// Sends the request to the idle slot of its blue-green upstream when it asks for a preview; true if it did.
    ///
    /// `X-Ficus-Preview: <idle slot>; token=<token>` with the upstream's preview token wins, from any client; a
    /// header without the right token is ignored, whoever sends it (a trusted address is not a secret). Otherwise
    /// the upstream's preview segment decides. The kill switch always serves the active legacy slot, so killed
    /// decisions are left alone.
    private func applyPreview<R: RoutableRequest>(
        _ decision: inout Decision,
        _ request: R,
        recorder: TraceRecorder?
    ) -> Bool {
        guard decision.reason == .rule || decision.reason == .routeDefault,
            let preview = self.previews[decision.upstream]
        else { return false }
        let upstream = decision.upstream
        var via: String?
        if let asked = request.header("x-ficus-preview") {
            let (slot, token) = PreviewToken.parseHeader(asked)
            if preview.tokenDigest == nil {
                recorder?.steps.append(
                    .previewIgnored(
                        upstream: upstream,
                        reason: "the upstream has no preview token ('ficus bluegreen preview \(upstream) --token')"
                    )
                )
            } else if token == nil {
                let reason = "no token (X-Ficus-Preview: \(preview.slot.rawValue); token=...)"
                recorder?.steps.append(.previewIgnored(upstream: upstream, reason: reason))
            } else if let token, let digest = preview.tokenDigest, !PreviewToken.matches(token, expected: digest) {
                recorder?.steps.append(.previewIgnored(upstream: upstream, reason: "the token is not the preview token"))
            } else if slot == preview.slot.rawValue {
                via = "X-Ficus-Preview: \(slot) with the preview token"
            } else {
                recorder?.steps.append(
                    .previewIgnored(
                        upstream: upstream,
                        reason: "'\(slot)' is not the idle slot ('\(preview.slot.rawValue)')"
                    )
                )
            }
        }
        if via == nil, let segment = preview.segment {
            let evaluation = Evaluation(program: self.codes[0], recorder: recorder)
            let name = preview.segmentName ?? ""
            if evaluation.matches(segment: segment, text: "segment '\(name)'", request) {
                via = "segment '\(name)'"
                _ = recorder?.takeTrace()
            } else if let recorder, let trace = recorder.takeTrace() {
                recorder.steps.append(.previewSegmentMissed(upstream: upstream, trace: trace))
            }
        }
        guard let via else { return false }
        recorder?.steps.append(.previewed(upstream: upstream, slot: preview.slot.rawValue, via: via))
        decision.upstream = preview.name
        decision.preview = preview.slot
        return true
    }

    /// The rewrite a route applies to requests sent to `upstream`, if any.
    public func rewrite(route: String, upstream: String) -> RequestRewrite? {
        self.configuration.routes.first { $0.name == route }?.rewrites[upstream]
    }

    /// Adds the shadow (and noise) upstream when the route's policy samples this request.
    private func applyShadow<R: RoutableRequest>(_ decision: inout Decision, _ request: R) {
        guard let route = decision.route, let shadow = self.shadowPolicies[route] else { return }
        let method = request.method
        guard shadow.methods.contains(method),
            let target = shadow.policy.target(serving: decision.upstream, route: shadow.route)
        else { return }
        let samplesNoise = ShadowPolicy.safeMethods.contains(method) && shadow.policy.noisePercent > 0
        // At 100% every request is shadowed whoever sends it: no key to find and hash.
        if shadow.policy.percent >= 100 {
            decision.shadow = target
            if samplesNoise { Self.offerNoise(&decision, shadow.policy) }
            return
        }
        let key: String?
        switch shadow.policy.stickiness ?? self.configuration.identity {
        case .header(let name)?: key = request.header(name.lowercased())
        case .cookie(let name)?: key = request.cookie(name)
        case .query(let name)?: key = QueryString.value(named: name, in: request.query)
        case .clientCertSubject?: key = request.clientCertificateSubject
        default: key = nil
        }
        guard let value = key ?? request.clientAddress?.unmapped.description else { return }
        guard Double(Murmur3.bucket(group: shadow.group, value: value)) <= shadow.policy.percent else { return }
        decision.shadow = target
        if samplesNoise { Self.offerNoise(&decision, shadow.policy) }
    }

    /// Names the upstream a noise sample of this request would go to; whether it is one is drawn by the proxy.
    private static func offerNoise(_ decision: inout Decision, _ policy: ShadowPolicy) {
        decision.noise = policy.secondary ?? decision.upstream
        decision.noisePercent = policy.noisePercent
    }

    /// Decides where `request` goes and records every step of the decision.
    ///
    /// Runs the same evaluation as `decide`, with a recorder attached, so the explanation always matches.
    public func explain<R: RoutableRequest>(_ request: R) -> Explanation {
        let recorder = TraceRecorder()
        var decision = self.evaluate(request, recorder: recorder)
        if !self.applyPreview(&decision, request, recorder: recorder) {
            self.applyShadow(&decision, request)
        }
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
        guard let routeIndex = self.index.find(request) else {
            recorder?.steps.append(.noRoute)
            return .noRoute
        }
        let route = self.routes[routeIndex]
        recorder?.steps.append(.routeMatched(route: route.name, summary: route.summary))
        if self.killed {
            recorder?.steps.append(.killed(legacy: route.legacy))
            var decision = Decision(
                upstream: route.legacy,
                route: route.name,
                rewrite: route.legacyRewrite,
                timeouts: route.timeouts,
                reason: .killed
            )
            decision.retry = route.retry
            decision.staleIfErrorMilliseconds = route.staleIfErrorMilliseconds
            decision.rateLimit = route.rateLimit
            return decision
        }
        let code = self.codes[routeIndex / Self.chunk]
        let rules = code.pointee.routes[routeIndex % Self.chunk]
        var evaluation = Evaluation(program: code, recorder: recorder)
        for index in rules {
            let rule = code.pointee.rules[index]
            if rule.disabled {
                if let recorder, case let compiled = route.rules[index - rules.lowerBound],
                    let flag = compiled.disabledBy
                {
                    recorder.steps.append(.ruleDisabled(position: compiled.position, rule: compiled.name, flag: flag))
                }
                continue
            }
            evaluation.start()
            let matched = evaluation.evaluate(rule.condition, index, request)
            if let recorder, let trace = recorder.takeTrace() {
                let compiled = route.rules[index - rules.lowerBound]
                recorder.steps.append(
                    .ruleEvaluated(position: compiled.position, rule: compiled.name, matched: matched, trace: trace)
                )
            }
            if matched {
                let compiled = route.rules[index - rules.lowerBound]
                var decision = Decision(
                    upstream: compiled.upstream,
                    route: route.name,
                    rule: compiled.name,
                    bucket: evaluation.lastBucket,
                    stickyHash: evaluation.lastStickyHash,
                    rewrite: compiled.rewrite,
                    timeouts: route.timeouts,
                    reason: .rule
                )
                Self.applyFallback(&decision, route)
                return decision
            }
        }
        recorder?.steps.append(.routeDefault(upstream: route.defaultUpstream))
        var decision = Decision(
            upstream: route.defaultUpstream,
            route: route.name,
            bucket: evaluation.lastBucket,
            stickyHash: evaluation.lastStickyHash,
            rewrite: route.defaultRewrite,
            timeouts: route.timeouts,
            reason: .routeDefault
        )
        Self.applyFallback(&decision, route)
        return decision
    }

    /// Names the route's legacy upstream as the fallback of a decision for another upstream.
    ///
    /// Also carries the route's retry plan and rate limit, which apply to every decision of the route, whichever
    /// upstream it chose.
    private static func applyFallback(_ decision: inout Decision, _ route: CompiledRoute) {
        decision.retry = route.retry
        decision.staleIfErrorMilliseconds = route.staleIfErrorMilliseconds
        decision.rateLimit = route.rateLimit
        guard let legacy = route.fallback, decision.upstream != legacy else { return }
        decision.fallback = legacy
        decision.fallbackStatuses = route.fallbackStatuses
    }
}

/// Collects the steps and condition traces of one explained decision.
///
/// A class so that the evaluation can hold an optional reference: nil in `decide`, which then skips all tracing.
final class TraceRecorder {
    var steps: [Explanation.Step] = []
    /// Where the current rule's bucket came from (`header:X-User-Id "42"`), for its percentage conditions.
    var bucketSource = ""
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
