extension Configuration {
    /// Every problem in the configuration, or an empty list when it is valid.
    ///
    /// A configuration is checked whole before it is stored or compiled, and all problems are reported at once so
    /// that an operator fixes a rule file in one pass.
    public func validate() -> [ValidationError] {
        var validator = ConfigurationValidator(configuration: self)
        validator.run()
        return validator.errors
    }

    /// The same problems as `validate()`, found with less work when `previous` is a configuration that validated
    /// without any: an upstream, segment or route equal to the one of the same name in `previous` is not checked
    /// again while the names everything refers to (upstreams, segments, flags) are unchanged, and the reachability
    /// of routes is not checked again while no route's host, path or methods changed.
    ///
    /// What a proxy applying a new revision runs: a flip of one route among a thousand checks one route. Checks that
    /// span objects (unique names, rule names across routes) always run.
    public func validate(unchangedSince previous: Configuration?) -> [ValidationError] {
        self.validated(unchangedSince: previous).errors
    }

    /// `validate(unchangedSince:)`, with what it learnt for a routing table built against `previous`: which routes
    /// equal the previous route at their position (nil when that was not worked out), and whether every route kept
    /// its host, path and methods.
    func validated(
        unchangedSince previous: Configuration?
    ) -> (errors: [ValidationError], unchangedInPlace: [Bool]?, sameRouteKeys: Bool) {
        var validator = ConfigurationValidator(configuration: self)
        if let previous {
            validator.previous = ConfigurationValidator.Baseline(previous, current: self)
        }
        let sameRouteKeys = validator.previous?.sameRouteKeys ?? false
        validator.run()
        return (validator.errors, validator.unchangedInPlace, sameRouteKeys)
    }
}

/// Checks a configuration and collects errors.
///
/// A separate type keeps the name tables built once and shared by every check.
struct ConfigurationValidator {
    let configuration: Configuration
    var errors: [ValidationError] = []
    private var upstreamNames: Set<String> = []
    private var segmentNames: Set<String> = []
    private var flagNames: Set<String> = []
    /// A valid earlier configuration whose equal objects need no check, when the names they may refer to are the same.
    var previous: Baseline?
    /// Per route, with a baseline whose names are the same: whether it equals the previous route at its position.
    private(set) var unchangedInPlace: [Bool]?

    /// What `validate(unchangedSince:)` may rely on from a valid earlier configuration.
    struct Baseline {
        let previous: Configuration
        /// Whether upstreams, segments and flags have the names they had, in the same order: what makes an object
        /// equal to its previous version valid again.
        let sameNames: Bool
        /// Whether every route has the host, path and methods it had, in the same order (no reachability changes).
        let sameRouteKeys: Bool
        private var routesByName: [String: Int]?

        init(_ previous: Configuration, current: Configuration) {
            self.previous = previous
            self.sameNames = previous.upstreams.map(\.name) == current.upstreams.map(\.name)
                && previous.segments.map(\.name) == current.segments.map(\.name)
                && previous.flags.map(\.name) == current.flags.map(\.name)
            self.sameRouteKeys =
                previous.routes.count == current.routes.count
                && previous.routes.indices.allSatisfy { index in
                    if current.routes.isSameStoredVersion(at: index, as: previous.routes, at: index) {
                        return true
                    }
                    let old = previous.routes[index]
                    let new = current.routes[index]
                    return old.host == new.host && old.path == new.path && old.methods == new.methods
                }
        }

        /// Whether `upstream` is one of the previous configuration's, unchanged.
        func unchanged(_ upstream: Upstream, at index: Int) -> Bool {
            self.sameNames && self.previous.upstreams.indices.contains(index) && self.previous.upstreams[index] == upstream
        }

        func unchanged(_ segment: Segment, at index: Int) -> Bool {
            self.sameNames && self.previous.segments.indices.contains(index) && self.previous.segments[index] == segment
        }

        /// Where the previous version of the route named `name` is (at `index` first, where it usually is), or nil.
        ///
        /// By name only: a route still in its stored form is not decoded.
        mutating func previousRoute(_ name: String, at index: Int) -> Int? {
            if self.previous.routes.indices.contains(index), self.previous.routes.name(at: index) == name {
                return index
            }
            if self.routesByName == nil {
                self.routesByName = self.previous.routes.firstIndexByName
            }
            return self.routesByName?[name]
        }
    }

    init(configuration: Configuration) {
        self.configuration = configuration
    }

    mutating func run() {
        self.upstreamNames = self.checkUniqueNames(self.configuration.upstreams.map(\.name), kind: "upstream")
        self.segmentNames = self.checkUniqueNames(self.configuration.segments.map(\.name), kind: "segment")
        self.flagNames = self.checkUniqueNames(self.configuration.flags.map(\.name), kind: "flag")
        let reported = self.errors.count
        _ = self.checkUniqueNames(self.configuration.routes.names, kind: "route")
        if self.errors.count > reported {
            // Two routes of one name: "the previous version" of a route means nothing, so every route is checked.
            self.previous = nil
        }
        if let identity = self.configuration.identity {
            self.checkAttributeName(identity, object: "identity", field: "identity")
        }
        for (index, upstream) in self.configuration.upstreams.enumerated()
        where self.previous?.unchanged(upstream, at: index) != true {
            self.checkUpstream(upstream, object: Self.objectName("upstream", upstream.name, index))
        }
        for (index, segment) in self.configuration.segments.enumerated()
        where self.previous?.unchanged(segment, at: index) != true {
            let object = Self.objectName("segment", segment.name, index)
            if segment.constraints.isEmpty {
                self.report(object, "constraints", "must not be empty")
            }
            for (position, predicate) in segment.constraints.enumerated() {
                self.checkPredicate(predicate, object: object, field: "constraint \(position + 1)")
            }
        }
        self.checkRoutes()
        if self.previous?.sameRouteKeys != true {
            self.checkShadowedRoutes()
        }
    }

    /// Checks every route, or with a baseline only the routes that differ from their previous version.
    ///
    /// Rule names must be unique across routes. Those of unchanged routes were (the previous configuration was
    /// valid), and so were those a changed route kept from its previous version; only names new to their route can
    /// clash with an unchanged route. Then, and only then, every route's names are recorded in order as a full check
    /// does, so that the errors and their order are the same.
    private mutating func checkRoutes() {
        let routes = self.configuration.routes
        var changed = Array(repeating: true, count: routes.count)
        var newNames: Set<String> = []
        if var baseline = self.previous, baseline.sameNames {
            var inPlace = Array(repeating: false, count: routes.count)
            defer { self.unchangedInPlace = inPlace }
            for index in routes.indices {
                let name = routes.name(at: index)
                let previous = baseline.previousRoute(name, at: index)
                if let previous, routes.isSame(at: index, as: baseline.previous.routes, at: previous) {
                    changed[index] = false
                    inPlace[index] = previous == index
                    continue
                }
                let kept = Set(previous.map { baseline.previous.routes[$0].rules.map(\.name) } ?? [])
                for rule in routes[index].rules where !kept.contains(rule.name) {
                    newNames.insert(rule.name)
                }
            }
        }
        let clashPossible =
            !newNames.isEmpty
            && routes.indices.contains { index in
                !changed[index] && routes[index].rules.contains { newNames.contains($0.name) }
            }
        var ruleOwners: [String: Int] = [:]
        for index in routes.indices {
            if changed[index] {
                let route = routes[index]
                self.checkRoute(route, index: index, object: Self.objectName("route", route.name, index), ruleOwners: &ruleOwners)
            } else if clashPossible {
                for (position, rule) in routes[index].rules.enumerated() {
                    self.checkRuleOwner(rule, position: position, route: index, &ruleOwners)
                }
            }
        }
    }

    /// Reports a rule name already used by another rule, or records its route (by index: the texts of a report are
    /// made only when there is something to report, so that ten thousand valid rules cost no string building).
    private mutating func checkRuleOwner(_ rule: Rule, position: Int, route: Int, _ ruleOwners: inout [String: Int]) {
        func object(_ index: Int) -> String {
            Self.objectName("route", self.configuration.routes.name(at: index), index)
        }
        if rule.name.isEmpty {
            self.report(object(route), Self.ruleField(rule, position), "name must not be empty")
        } else if let owner = ruleOwners[rule.name] {
            self.report(
                object(route), Self.ruleField(rule, position),
                "duplicate rule name '\(rule.name)', already used in \(object(owner))")
        } else {
            ruleOwners[rule.name] = route
        }
    }

    private static func objectName(_ kind: String, _ name: String, _ index: Int) -> String {
        name.isEmpty ? "\(kind) \(index + 1)" : "\(kind) '\(name)'"
    }

    private static func ruleField(_ rule: Rule, _ index: Int) -> String {
        "rule \(index + 1) ('\(rule.name)')"
    }

    private mutating func report(_ object: String, _ field: String, _ message: String) {
        self.errors.append(ValidationError(object: object, field: field, message: message))
    }

    private mutating func checkUniqueNames(_ names: [String], kind: String) -> Set<String> {
        var seen: Set<String> = []
        seen.reserveCapacity(names.count)
        for (index, name) in names.enumerated() {
            if name.isEmpty {
                self.report(Self.objectName(kind, name, index), "name", "must not be empty")
            } else if !seen.insert(name).inserted {
                self.report(Self.objectName(kind, name, index), "name", "duplicate \(kind) name '\(name)'")
            }
        }
        return seen
    }

    private mutating func checkUpstream(_ upstream: Upstream, object: String) {
        if upstream.name.contains("@") {
            self.report(object, "name", "must not contain '@' (reserved for preview slots such as 'orders@green')")
        }
        if let slots = upstream.slots {
            if let segment = slots.previewSegment, !self.segmentNames.contains(segment) {
                self.report(object, "slots preview_segment", "unknown segment '\(segment)'")
            }
            if let digest = slots.previewTokenSHA256, !PreviewToken.isDigest(digest) {
                self.report(
                    object,
                    "slots preview_token_sha256",
                    "must be a SHA-256 digest (64 lower-case hex digits); 'ficus bluegreen preview --token' makes one"
                )
            }
            if slots.activeAddresses.isEmpty {
                self.report(object, "slots", "active slot '\(slots.active.rawValue)' has no addresses")
            }
            for slot in BlueGreenSlots.Slot.allCases {
                self.checkEndpoints(slots[slot], object: object, field: "slots \(slot.rawValue)")
            }
        } else {
            if upstream.addresses.isEmpty {
                self.report(object, "addresses", "must not be empty")
            }
            self.checkEndpoints(upstream.addresses, object: object, field: "addresses")
        }
        if let check = upstream.healthCheck {
            for problem in check.problems {
                self.report(object, "health_check." + problem.field, problem.message)
            }
        }
        if let outlier = upstream.outlier {
            self.checkOutlier(outlier, object: object)
        }
        if let limits = upstream.limits {
            let fields: [(String, Int?, ClosedRange<Int>)] = [
                ("max_connections", limits.maxConnections, 1...UpstreamLimits.maximum),
                ("max_pending", limits.maxPending, 0...UpstreamLimits.maximum),
                ("max_requests", limits.maxRequests, 1...UpstreamLimits.maximum),
                ("max_retries", limits.maxRetries, 0...UpstreamLimits.maximum),
            ]
            for (field, value, range) in fields {
                if let value, !range.contains(value) {
                    self.report(object, "limits \(field)", "\(value) is outside \(range.lowerBound)–\(range.upperBound)")
                }
            }
        }
        self.checkUpstreamTLS(upstream, object: object)
    }

    /// Counts from 0 (that trigger off) to 1,000, times within a day with the base no longer than the maximum, and a
    /// percentage.
    private mutating func checkOutlier(_ outlier: OutlierPolicy, object: String) {
        for (field, value) in [
            ("consecutive_5xx", outlier.consecutive5xx),
            ("consecutive_gateway_failure", outlier.consecutiveGatewayFailure),
        ] {
            if let value, !(0...1000).contains(value) {
                self.report(object, "outlier \(field)", "\(value) is outside 0–1000 (0 turns this trigger off)")
            }
        }
        for (field, value) in [
            ("base_ejection_time", outlier.baseEjectionTime), ("max_ejection_time", outlier.maxEjectionTime),
        ] {
            if let value, !(1...TimeSpan.maxMilliseconds).contains(value.milliseconds) {
                self.report(object, "outlier \(field)", "\(value) is outside 1ms–24h")
            }
        }
        if outlier.effectiveBaseEjectionTime > outlier.effectiveMaxEjectionTime {
            self.report(
                object, "outlier base_ejection_time",
                "\(outlier.effectiveBaseEjectionTime) is longer than max_ejection_time \(outlier.effectiveMaxEjectionTime)")
        }
        if let percent = outlier.maxEjectionPercent, !(0...100).contains(percent) {
            self.report(object, "outlier max_ejection_percent", "\(percent) is outside 0–100")
        }
    }

    /// A client certificate without its key (or the reverse) could only fail at the first connection; an empty
    /// path is never a file.
    private mutating func checkUpstreamTLS(_ upstream: Upstream, object: String) {
        let paths = [
            ("ca_file", upstream.caFile), ("client_cert", upstream.clientCert), ("client_key", upstream.clientKey),
        ]
        for (field, path) in paths {
            if let path, path.isEmpty {
                self.report(object, field, "must not be empty (leave it out instead)")
            }
        }
        if (upstream.clientCert == nil) != (upstream.clientKey == nil) {
            let field = upstream.clientCert == nil ? "client_key" : "client_cert"
            self.report(object, field, "client_cert and client_key go together")
        }
    }

    private mutating func checkEndpoints(_ endpoints: [Endpoint], object: String, field: String) {
        for endpoint in endpoints {
            if endpoint.host.isEmpty || endpoint.host.contains(where: { $0 == " " || $0 == "/" }) {
                self.report(object, field, "invalid host '\(endpoint.host)'")
            }
            if !(1...65535).contains(endpoint.port) {
                self.report(object, field, "port \(endpoint.port) of '\(endpoint.host)' is outside 1–65535")
            }
            if let weight = endpoint.weight, !(1...Endpoint.maxWeight).contains(weight) {
                self.report(object, field, "weight \(weight) of '\(endpoint.address)' is outside 1–\(Endpoint.maxWeight)")
            }
        }
    }

    private mutating func checkRoute(_ route: Route, index routeIndex: Int, object: String, ruleOwners: inout [String: Int]) {
        if let host = route.host, let problem = HostPattern.problem(host) {
            self.report(object, "host", problem)
        }
        if let problem = PathPattern.problem(route.path) {
            self.report(object, "path", problem)
        }
        for method in route.methods where !isHTTPToken(method) {
            self.report(object, "methods", "invalid method '\(method)'")
        }
        self.checkUpstreamReference(route.legacy, object: object, field: "legacy")
        if route.defaultUpstream != route.legacy {
            self.checkUpstreamReference(route.defaultUpstream, object: object, field: "default")
        }
        for (upstream, rewrite) in route.rewrites.sorted(by: { $0.key < $1.key }) {
            let field = "rewrites '\(upstream)'"
            self.checkUpstreamReference(upstream, object: object, field: field)
            self.checkRewrite(rewrite, object: object, field: field)
        }
        for (name, value) in [
            ("connect_milliseconds", route.timeouts.connectMilliseconds),
            ("response_header_milliseconds", route.timeouts.responseHeaderMilliseconds),
        ] {
            if let value, value <= 0 {
                self.report(object, "timeouts", "\(name) must be positive, got \(value)")
            } else if let value, value > RouteTimeouts.maxMilliseconds {
                self.report(
                    object, "timeouts", "\(name) must be at most \(RouteTimeouts.maxMilliseconds) (24 h), got \(value)")
            }
        }
        if let fallback = route.fallback, fallback != "legacy", fallback != "off" {
            self.report(object, "fallback", "must be legacy or off, got '\(fallback)'")
        }
        if let stale = route.staleIfError, DurationText.milliseconds(stale) == nil {
            self.report(object, "stale_if_error", "'\(stale)' is not a duration from 1ms to 24h (such as 60s, 5m)")
        }
        if let retry = route.retry {
            for problem in retry.problems {
                self.report(object, "retry." + problem.field, problem.message)
            }
        }
        if let statuses = route.fallbackOn {
            if statuses.isEmpty {
                self.report(object, "fallback_on", "must name at least one status (or set fallback: off)")
            }
            if statuses.count > 100 {
                self.report(object, "fallback_on", "at most 100 statuses, got \(statuses.count)")
            }
            for status in statuses where !(500...599).contains(status) {
                self.report(object, "fallback_on", "\(status) is not a server error status (500-599)")
            }
        }
        if let limit = route.rateLimit {
            self.checkRateLimit(limit, object: object)
        }
        var catchAll: (index: Int, rule: Rule)?
        for (index, rule) in route.rules.enumerated() {
            let field = Self.ruleField(rule, index)
            self.checkRuleOwner(rule, position: index, route: routeIndex, &ruleOwners)
            if !self.upstreamNames.contains(rule.upstream) {
                self.report(object, field, "unknown upstream '\(rule.upstream)'")
            }
            if let stickiness = rule.stickiness {
                self.checkAttributeName(stickiness, object: object, field: field)
            }
            self.checkCondition(rule.condition, object: object, field: field, negated: false)
            if let catchAll {
                self.report(
                    object,
                    field,
                    "unreachable: \(Self.ruleField(catchAll.rule, catchAll.index)) before it matches every request"
                )
            } else if rule.condition.isAlwaysTrue {
                catchAll = (index, rule)
            }
        }
        if let shadow = route.shadow {
            self.checkShadow(shadow, route: route, object: object)
        }
    }

    private mutating func checkShadow(_ shadow: ShadowPolicy, route: Route, object: String) {
        if let to = shadow.to {
            self.checkUpstreamReference(to, object: object, field: "shadow.to")
        } else if route.newSide == nil {
            self.report(
                object,
                "shadow.to",
                "the route has no other side yet (no rule or default other than '\(route.legacy)'): name the shadow upstream"
            )
        }
        if let secondary = shadow.secondary {
            self.checkUpstreamReference(secondary, object: object, field: "shadow.secondary")
        }
        for (field, value) in [("shadow.percent", shadow.percent), ("shadow.noise_percent", shadow.noisePercent)]
        where !(0...100).contains(value) || value.isNaN {
            self.report(object, field, "must be between 0 and 100, got \(value)")
        }
        for method in shadow.methods where !isHTTPToken(method) {
            self.report(object, "shadow.methods", "invalid method '\(method)'")
        }
        if let stickiness = shadow.stickiness {
            self.checkAttributeName(stickiness, object: object, field: "shadow.stickiness")
        }
        for header in shadow.sensitiveHeaders where !isHTTPToken(header) {
            self.report(object, "shadow.sensitive_headers", "invalid header name '\(header)'")
        }
        for path in shadow.ignorePaths + shadow.sensitivePaths
        where !(path.hasPrefix("$") || path.hasPrefix("header:") || path == "status") {
            self.report(object, "shadow", "'\(path)' is not a JSON path ($...), header:NAME or status")
        }
    }

    private mutating func checkUpstreamReference(_ name: String, object: String, field: String) {
        if !self.upstreamNames.contains(name) {
            self.report(object, field, "unknown upstream '\(name)'")
        }
    }

    private mutating func checkRewrite(_ rewrite: RequestRewrite, object: String, field: String) {
        if let path = rewrite.path {
            if !path.prefix.hasPrefix("/") {
                self.report(object, field, "path prefix '\(path.prefix)' must start with '/'")
            }
            if !path.replacement.isEmpty, !path.replacement.hasPrefix("/") {
                self.report(object, field, "path replacement '\(path.replacement)' must be empty or start with '/'")
            }
        }
        for header in rewrite.setHeaders {
            if !isHTTPToken(header.name) {
                self.report(object, field, "invalid header name '\(header.name)'")
            }
            if header.value.utf8.contains(where: { $0 == 0x0D || $0 == 0x0A || $0 == 0 }) {
                self.report(object, field, "value of header '\(header.name)' contains CR, LF or NUL")
            }
        }
        for name in rewrite.removeHeaders where !isHTTPToken(name) {
            self.report(object, field, "invalid header name '\(name)'")
        }
    }

    private mutating func checkCondition(_ condition: Condition, object: String, field: String, negated: Bool) {
        switch condition {
        case .all(let conditions), .any(let conditions):
            for condition in conditions {
                self.checkCondition(condition, object: object, field: field, negated: negated)
            }
        case .not(let condition):
            self.checkCondition(condition, object: object, field: field, negated: !negated)
        case .flag(let name):
            if !self.flagNames.contains(name) {
                self.report(object, field, "unknown flag '\(name)'")
            } else if negated {
                self.report(
                    object,
                    field,
                    "flag '\(name)' under 'not' can never match: a flag that is off disables the whole rule"
                )
            }
        case .segment(let name):
            if !self.segmentNames.contains(name) {
                self.report(object, field, "unknown segment '\(name)'")
            }
        case .version(let match):
            self.checkVersion(match, object: object, field: field)
        case .percentage(let percentage):
            if !(0...100).contains(percentage) {
                self.report(object, field, "percentage \(percentage) is outside 0–100")
            }
        case .method(let methods):
            if methods.isEmpty {
                self.report(object, field, "method list is empty")
            }
            for method in methods where !isHTTPToken(method) {
                self.report(object, field, "invalid method '\(method)'")
            }
        case .match(let predicate):
            self.checkPredicate(predicate, object: object, field: field)
        }
    }

    private mutating func checkVersion(_ match: VersionMatch, object: String, field: String) {
        if !isHTTPToken(match.header) {
            self.report(object, field, "version header '\(match.header)' is not a valid header name")
        }
        if let parameter = match.parameter, !isHTTPToken(parameter) {
            self.report(object, field, "version parameter '\(parameter)' is not a valid parameter name")
        }
        switch (match.equals, match.range) {
        case (.some, .some), (nil, nil):
            self.report(object, field, "version needs exactly one of 'equals' and 'range'")
        case (nil, let range?):
            if SemanticVersionRange(range) == nil {
                self.report(object, field, "bad semver range '\(range)'")
            }
        case (.some, nil):
            break
        }
    }

    /// Reports every field of a rate limit that is out of range or not one of its words, as `rate_limit.FIELD`.
    private mutating func checkRateLimit(_ limit: RateLimit, object: String) {
        let most = RateLimit.maxRequests
        if limit.requests < 1 || limit.requests > most {
            self.report(object, "rate_limit.requests", "must be from 1 to \(most), got \(limit.requests)")
        }
        if limit.perMilliseconds == nil {
            self.report(
                object, "rate_limit.per",
                "must be a duration from 1ms to 24h such as 500ms, 1s, 1m or 1h, got '\(limit.per)'")
        }
        if let burst = limit.burst, burst < 1 || burst > most {
            self.report(object, "rate_limit.burst", "must be from 1 to \(most), got \(burst)")
        }
        if let key = limit.key {
            switch RateLimit.Key(key) {
            case nil:
                self.report(object, "rate_limit.key", "must be none, client_ip, header:NAME or identity, got '\(key)'")
            case .header(let name)?:
                if !isHTTPToken(name) {
                    self.report(object, "rate_limit.key", "invalid header name '\(name)'")
                }
            default:
                break
            }
        }
        if let mode = limit.mode, mode != "enforce", mode != "observe" {
            self.report(object, "rate_limit.mode", "must be enforce or observe, got '\(mode)'")
        }
    }

    private mutating func checkAttributeName(_ attribute: Attribute, object: String, field: String) {
        switch attribute {
        case .header(let name):
            if !isHTTPToken(name) {
                self.report(object, field, "invalid header name '\(name)'")
            }
        case .cookie(let name), .query(let name):
            if name.isEmpty {
                self.report(object, field, "\(attribute) has an empty name")
            }
        case .clientIP, .clientCertSubject:
            break
        }
    }

    private mutating func checkPredicate(_ predicate: Predicate, object: String, field: String) {
        self.checkAttributeName(predicate.attribute, object: object, field: field)
        let op = predicate.op.rawValue
        let values = predicate.values
        if predicate.op.takesNoValue {
            if !values.isEmpty {
                self.report(object, field, "'\(op)' takes no values")
            }
            return
        }
        if predicate.op.takesSingleValue, values.count != 1 {
            self.report(object, field, "'\(op)' takes exactly one value, got \(values.count)")
            return
        }
        if values.isEmpty {
            self.report(object, field, "'\(op)' needs at least one value")
            return
        }
        if predicate.attribute == .clientIP {
            guard predicate.op == .in || predicate.op == .notIn else {
                self.report(object, field, "client_ip supports only in, not_in, exists and absent, not '\(op)'")
                return
            }
            for value in values where CIDR(value) == nil {
                self.report(object, field, "bad CIDR '\(value)'")
            }
            return
        }
        switch predicate.op {
        case .regex:
            for pattern in values {
                do {
                    _ = try Regex(pattern)
                } catch {
                    self.report(object, field, "bad regex '\(pattern)': \(error)")
                    continue
                }
                if let problem = RegexSafety.nestedQuantifier(in: pattern) {
                    self.report(object, field, "regex '\(pattern)': \(problem)")
                }
            }
        case .numberEquals, .numberLessThan, .numberLessThanOrEqual, .numberGreaterThan, .numberGreaterThanOrEqual:
            if parseNumber(values[0]) == nil {
                self.report(object, field, "'\(values[0])' is not a number")
            }
        case .semverEquals, .semverLessThan, .semverLessThanOrEqual, .semverGreaterThan, .semverGreaterThanOrEqual:
            if SemanticVersion(values[0]) == nil {
                self.report(object, field, "'\(values[0])' is not a semantic version")
            }
        case .semverRange:
            if SemanticVersionRange(values[0]) == nil {
                self.report(object, field, "bad semver range '\(values[0])'")
            }
        case .in, .notIn, .equals, .prefix, .suffix, .contains, .exists, .absent:
            break
        }
    }

    /// Reports routes that can never match because an earlier route has the same host and path and covers its
    /// methods.
    ///
    /// Both would sit on the same trie node and the earlier one would always be found first. A route listing methods
    /// is tried before one that lists none, so only two routes of the same kind can hide each other.
    private mutating func checkShadowedRoutes() {
        var earlier: [String: [(name: String, methods: Set<String>)]] = [:]
        for (index, route) in self.configuration.routes.enumerated() {
            guard PathPattern.problem(route.path) == nil else {
                continue
            }
            let key = "\(route.host?.lowercased() ?? "")\u{0}\(PathPattern.normalizedKey(route.path))"
            let methods = Set(route.methods.map { $0.uppercased() })
            for previous in earlier[key, default: []]
            where previous.methods.isEmpty == methods.isEmpty && methods.isSubset(of: previous.methods) {
                self.report(
                    Self.objectName("route", route.name, index),
                    "path",
                    "unreachable: route '\(previous.name)' has the same host and path and covers its methods"
                )
                break
            }
            earlier[key, default: []].append((route.name, methods))
        }
    }
}

/// Whether `text` is a non-empty HTTP token (RFC 9110), as header names and methods must be.
///
/// Rejecting other characters at validation keeps them out of forwarded request heads.
func isHTTPToken(_ text: String) -> Bool {
    !text.isEmpty
        && text.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"),
                UInt8(ascii: "0")...UInt8(ascii: "9"):
                return true
            default:
                return "!#$%&'*+-.^_`|~".utf8.contains(byte)
            }
        }
}

/// Parses a decimal number (`42`, `-1.5`, `1e3`); nil for anything else, including `nan` and `inf`.
///
/// Numeric predicates compare finite numbers only; infinities would make every bound meaningless.
func parseNumber(_ text: some StringProtocol) -> Double? {
    let trimmed = Substring(text).trimmingASCIISpaces()
    guard !trimmed.isEmpty,
        trimmed.utf8.allSatisfy({ byte in
            (UInt8(ascii: "0")...UInt8(ascii: "9")).contains(byte) || "+-.eE".utf8.contains(byte)
        }), let value = Double(trimmed), value.isFinite
    else {
        return nil
    }
    return value
}
