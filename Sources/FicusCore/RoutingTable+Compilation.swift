/// Turns a validated configuration into compiled routes and a rule program.
///
/// Everything that does not depend on the request is computed here: lower-cased names, parsed numbers, versions,
/// ranges and CIDRs, compiled regexes, hash tables, rewrites per target, and rules disabled by flags.
struct RoutingTableCompiler {
    private var parts = RuleProgram.Parts()
    private let segmentIndex: [String: Int]
    private let flags: [String: Bool]
    /// Positions in `parts.names`, so that each header or cookie name is stored once.
    private var nameIndex: [String: Int] = [:]
    /// The store-wide identity: what percentage rules without a stickiness of their own hash.
    private let identity: Attribute?

    init(configuration: Configuration) {
        self.identity = configuration.identity
        self.flags = Dictionary(configuration.flags.map { ($0.name, $0.enabled) }, uniquingKeysWith: { a, _ in a })
        var segmentIndex: [String: Int] = [:]
        for (index, segment) in configuration.segments.enumerated() where segmentIndex[segment.name] == nil {
            segmentIndex[segment.name] = index
        }
        self.segmentIndex = segmentIndex
        for segment in configuration.segments {
            let start = self.parts.predicates.count
            for constraint in segment.constraints {
                self.compile(constraint)
            }
            self.parts.segments.append(start..<self.parts.predicates.count)
            self.parts.segmentNames.append(segment.name)
        }
    }

    /// The program holding the rules of every route compiled so far, in order.
    func program() -> RuleProgram {
        RuleProgram(self.parts)
    }

    mutating func compile(_ route: Route) -> CompiledRoute {
        func rewrite(for upstream: String) -> RequestRewrite? {
            guard let rewrite = route.rewrites[upstream], !rewrite.isEmpty else {
                return nil
            }
            return rewrite
        }
        var summary = "host \(route.host ?? "*"), path \(route.path)"
        if !route.methods.isEmpty {
            summary += ", methods \(route.methods.map { $0.uppercased() }.joined(separator: " "))"
        }
        let firstRule = self.parts.rules.count
        var rules: [CompiledRule] = []
        rules.reserveCapacity(route.rules.count)
        for (position, rule) in route.rules.enumerated() {
            let disabledBy = rule.condition.flagNames.first { self.flags[$0] != true }
            var hasher = Murmur3.Hasher()
            hasher.combine(rule.name)
            hasher.combine(UInt8(ascii: ":"))
            let condition = self.parts.nodes.count
            self.compile(rule.condition)
            self.parts.rules.append(
                RuleCode(
                    condition: condition,
                    disabled: disabledBy != nil,
                    stickiness: (rule.stickiness ?? self.identity).map { self.compile($0) },
                    bucketHasher: hasher
                )
            )
            self.parts.stickinessLabels.append((rule.stickiness ?? self.identity)?.description ?? "client_ip")
            rules.append(
                CompiledRule(
                    name: rule.name,
                    position: position + 1,
                    upstream: rule.upstream,
                    rewrite: rewrite(for: rule.upstream),
                    disabledBy: disabledBy
                )
            )
        }
        self.parts.routes.append(firstRule..<self.parts.rules.count)
        return CompiledRoute(
            name: route.name,
            summary: summary,
            legacy: route.legacy,
            defaultUpstream: route.defaultUpstream,
            legacyRewrite: rewrite(for: route.legacy),
            defaultRewrite: rewrite(for: route.defaultUpstream),
            rules: rules,
            timeouts: route.timeouts,
            fallback: route.fallsBackToLegacy ? route.legacy : nil,
            fallbackStatuses: route.fallbackStatuses,
            retry: route.retry.map(RetryPlan.init),
            staleIfErrorMilliseconds: route.staleIfError.flatMap(DurationText.milliseconds),
            rateLimit: route.rateLimit.map { RateLimitPolicy(route: route.name, limit: $0, identity: self.identity) }
        )
    }

    /// Appends the nodes of `condition` in prefix order.
    private mutating func compile(_ condition: Condition) {
        let index = self.parts.nodes.count
        self.parts.nodes.append(ConditionNode(.all, end: index + 1))
        let node: ConditionNode
        switch condition {
        case .all(let conditions):
            for condition in conditions {
                self.compile(condition)
            }
            node = ConditionNode(.all, end: self.parts.nodes.count)
        case .any(let conditions):
            for condition in conditions {
                self.compile(condition)
            }
            node = ConditionNode(.any, end: self.parts.nodes.count)
        case .not(let condition):
            self.compile(condition)
            node = ConditionNode(.not, end: self.parts.nodes.count)
        case .flag(let name):
            self.parts.flagNames.append(name)
            node = ConditionNode(.flag, end: index + 1, operand: self.parts.flagNames.count - 1)
        case .segment(let name):
            if let segment = self.segmentIndex[name] {
                node = ConditionNode(.segment, end: index + 1, operand: segment)
            } else {
                node = ConditionNode(.any, end: index + 1)
            }
        case .version(let match):
            var exact: Int?
            var range = 0
            if let parsed = match.range.flatMap(SemanticVersionRange.init) {
                self.parts.semanticVersionRanges.append(parsed)
                range = self.parts.semanticVersionRanges.count - 1
            } else {
                exact = self.parts.text((match.equals ?? "").utf8)
            }
            self.parts.versions.append(
                VersionCode(
                    header: self.name(match.header.lowercased()),
                    parameter: match.parameter.map { self.parts.text($0.lowercased().utf8) },
                    exact: exact,
                    range: range
                )
            )
            self.parts.versionSources.append(match)
            node = ConditionNode(.version, end: index + 1, operand: self.parts.versions.count - 1)
        case .percentage(let percentage):
            node = ConditionNode(.percentage, end: index + 1, operand: percentage)
        case .method(let methods):
            let start = self.parts.texts.count
            for method in methods {
                _ = self.parts.text(method.uppercased().utf8)
            }
            node = ConditionNode(.method, end: index + 1, methods: start..<self.parts.texts.count)
        case .match(let predicate):
            node = ConditionNode(.predicate, end: index + 1, operand: self.compile(predicate))
        }
        self.parts.nodes[index] = node
    }

    /// The index of `name` in the program's names, adding it when new.
    private mutating func name(_ name: String) -> Int {
        if let index = self.nameIndex[name] {
            return index
        }
        self.parts.names.append(name)
        self.nameIndex[name] = self.parts.names.count - 1
        return self.parts.names.count - 1
    }

    private mutating func compile(_ attribute: Attribute) -> AttributeCode {
        switch attribute {
        case .header(let name):
            return AttributeCode(kind: .header, name: self.name(name.lowercased()))
        case .cookie(let name):
            return AttributeCode(kind: .cookie, name: self.name(name))
        case .query(let name):
            return AttributeCode(kind: .query, name: self.parts.text(name.utf8))
        case .clientIP:
            return AttributeCode(kind: .clientIP, name: 0)
        case .clientCertSubject:
            return AttributeCode(kind: .clientCertSubject, name: 0)
        }
    }

    /// Appends `predicate` and returns its index.
    @discardableResult
    private mutating func compile(_ predicate: Predicate) -> Int {
        let index = self.parts.predicates.count
        let folds = predicate.caseInsensitive
        let attribute = self.compile(predicate.attribute)
        var test: PredicateCode.Test
        var negated = false
        var number = 0.0
        var start = 0
        var end = 0
        func texts(_ parts: inout RuleProgram.Parts) {
            start = parts.texts.count
            for value in predicate.values {
                _ = parts.text(value.utf8.map { folds ? asciiLowercase($0) : $0 })
            }
            end = parts.texts.count
        }
        if predicate.attribute == .clientIP, predicate.op == .in || predicate.op == .notIn {
            test = .cidr
            negated = predicate.op == .notIn
            start = self.parts.cidrs.count
            self.parts.cidrs += predicate.values.compactMap(CIDR.init)
            end = self.parts.cidrs.count
        } else {
            switch predicate.op {
            case .in, .notIn, .equals:
                test = .oneOf
                negated = predicate.op == .notIn
                for value in predicate.values {
                    if folds {
                        self.parts.oneOfFolded.insert(Array(value.utf8), owner: index, true)
                    } else {
                        self.parts.oneOfExact.insert(Array(value.utf8), owner: index, true)
                    }
                }
            case .prefix:
                test = .prefix
                texts(&self.parts)
            case .suffix:
                test = .suffix
                texts(&self.parts)
            case .contains:
                test = .contains
                texts(&self.parts)
            case .regex:
                test = .regex
                start = self.parts.regexes.count
                self.parts.regexes += predicate.values.compactMap {
                    try? CompiledRegex(pattern: $0, caseInsensitive: folds)
                }
                end = self.parts.regexes.count
            case .numberEquals, .numberLessThan, .numberLessThanOrEqual, .numberGreaterThan,
                .numberGreaterThanOrEqual:
                test = .number
                number = predicate.values.first.flatMap { parseNumber($0) } ?? .nan
            case .semverEquals, .semverLessThan, .semverLessThanOrEqual, .semverGreaterThan,
                .semverGreaterThanOrEqual:
                test = .semver
                self.parts.semanticVersions.append(
                    predicate.values.first.flatMap { SemanticVersion($0) } ?? SemanticVersion(major: 0)
                )
                start = self.parts.semanticVersions.count - 1
                end = start + 1
            case .semverRange:
                if let range = predicate.values.first.flatMap(SemanticVersionRange.init) {
                    test = .semverRange
                    self.parts.semanticVersionRanges.append(range)
                    start = self.parts.semanticVersionRanges.count - 1
                    end = start + 1
                } else {
                    test = .absent
                }
            case .exists:
                test = .exists
            case .absent:
                test = .absent
            }
        }
        self.parts.predicates.append(
            PredicateCode(
                attribute: attribute,
                test: test,
                op: predicate.op,
                negated: negated,
                foldsCase: folds,
                operands: start..<end,
                number: number
            )
        )
        self.parts.predicateSources.append(predicate)
        return index
    }
}
