/// Turns a validated configuration into compiled routes and segments.
///
/// Everything that does not depend on the request is computed here: lower-cased names, parsed numbers, versions,
/// ranges and CIDRs, compiled regexes, hash sets, rewrites per target, and rules disabled by flags.
struct RoutingTableCompiler {
    let segments: [CompiledSegment]
    private let segmentIndex: [String: Int]
    private let flags: [String: Bool]

    init(configuration: Configuration) {
        self.flags = Dictionary(configuration.flags.map { ($0.name, $0.enabled) }, uniquingKeysWith: { a, _ in a })
        var segmentIndex: [String: Int] = [:]
        for (index, segment) in configuration.segments.enumerated() where segmentIndex[segment.name] == nil {
            segmentIndex[segment.name] = index
        }
        self.segmentIndex = segmentIndex
        self.segments = configuration.segments.map { segment in
            CompiledSegment(name: segment.name, constraints: segment.constraints.map(Self.compile))
        }
    }

    func compile(_ route: Route) -> CompiledRoute {
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
        let rules = route.rules.enumerated().map { position, rule in
            CompiledRule(
                name: rule.name,
                position: position + 1,
                condition: self.compile(rule.condition),
                upstream: rule.upstream,
                rewrite: rewrite(for: rule.upstream),
                stickiness: rule.stickiness,
                disabledBy: rule.condition.flagNames.first { self.flags[$0] != true }
            )
        }
        return CompiledRoute(
            name: route.name,
            summary: summary,
            methods: route.methods.map { $0.uppercased() },
            legacy: route.legacy,
            defaultUpstream: route.defaultUpstream,
            legacyRewrite: rewrite(for: route.legacy),
            defaultRewrite: rewrite(for: route.defaultUpstream),
            rules: rules,
            timeouts: route.timeouts
        )
    }

    private func compile(_ condition: Condition) -> CompiledCondition {
        switch condition {
        case .all(let conditions):
            return .all(conditions.map(self.compile))
        case .any(let conditions):
            return .any(conditions.map(self.compile))
        case .not(let condition):
            return .not(self.compile(condition))
        case .flag(let name):
            return .flag(name)
        case .segment(let name):
            return self.segmentIndex[name].map(CompiledCondition.segment) ?? .any([])
        case .version(let match):
            let requirement: CompiledVersion.Requirement
            if let range = match.range.flatMap(SemanticVersionRange.init) {
                requirement = .range(range)
            } else {
                requirement = .exact(Array((match.equals ?? "").utf8))
            }
            return .version(
                CompiledVersion(
                    source: match,
                    header: match.header.lowercased(),
                    parameter: match.parameter.map { Array($0.lowercased().utf8) },
                    requirement: requirement
                )
            )
        case .percentage(let percentage):
            return .percentage(percentage)
        case .method(let methods):
            return .method(methods.map { $0.uppercased() })
        case .match(let predicate):
            return .predicate(Self.compile(predicate))
        }
    }

    static func compile(_ predicate: Predicate) -> CompiledPredicate {
        let folds = predicate.caseInsensitive
        func texts() -> [[UInt8]] {
            predicate.values.map { Array($0.utf8).map { folds ? asciiLowercase($0) : $0 } }
        }
        let attribute = CompiledAttribute(predicate.attribute)
        if predicate.attribute == .clientIP, predicate.op == .in || predicate.op == .notIn {
            let ranges = predicate.values.compactMap(CIDR.init)
            return CompiledPredicate(
                source: predicate,
                attribute: attribute,
                test: .cidr(ranges, negated: predicate.op == .notIn)
            )
        }
        let test: CompiledPredicate.Test
        switch predicate.op {
        case .in, .notIn, .equals:
            var table = ByteKeyedTable<Bool>(foldsCase: folds)
            for value in predicate.values {
                table.insert(Array(value.utf8), true)
            }
            test = .oneOf(table, negated: predicate.op == .notIn)
        case .prefix:
            test = .prefix(texts(), foldsCase: folds)
        case .suffix:
            test = .suffix(texts(), foldsCase: folds)
        case .contains:
            test = .contains(texts(), foldsCase: folds)
        case .regex:
            test = .regex(predicate.values.compactMap { try? CompiledRegex(pattern: $0, caseInsensitive: folds) })
        case .numberEquals, .numberLessThan, .numberLessThanOrEqual, .numberGreaterThan, .numberGreaterThanOrEqual:
            test = .number(predicate.op, predicate.values.first.flatMap { parseNumber($0) } ?? .nan)
        case .semverEquals, .semverLessThan, .semverLessThanOrEqual, .semverGreaterThan, .semverGreaterThanOrEqual:
            test = .semver(
                predicate.op,
                predicate.values.first.flatMap { SemanticVersion($0) } ?? SemanticVersion(major: 0)
            )
        case .semverRange:
            test = predicate.values.first.flatMap(SemanticVersionRange.init).map { .semverRange($0) } ?? .absent
        case .exists:
            test = .exists
        case .absent:
            test = .absent
        }
        return CompiledPredicate(source: predicate, attribute: attribute, test: test)
    }
}
