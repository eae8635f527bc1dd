import FicusCore
import Yams

/// The fields each object of a rules file may have, checked before decoding.
///
/// Decoding ignores unknown keys, so a typo (`defualt:`) would silently leave a route unflipped; rules files are
/// operated under pressure, so every unknown field is an error with its line and column.
enum RulesSchema {
    indirect enum Shape: Sendable {
        /// A mapping with exactly these keys allowed.
        case object([String: Shape])
        /// A list of one shape.
        case list(Shape)
        /// A mapping with any keys, each value of one shape.
        case dictionary(Shape)
        /// A condition: a mapping with exactly one of the condition keys.
        case condition
        /// A scalar or anything the decoder checks itself.
        case value
    }

    static let predicate = Shape.object([
        "attribute": .value, "op": .value, "values": .value, "case_insensitive": .value, "caseInsensitive": .value,
    ])

    static let conditionKeys: [String: Shape] = [
        "all": .list(.condition),
        "any": .list(.condition),
        "not": .condition,
        "flag": .value,
        "segment": .value,
        "version": .object(["header": .value, "parameter": .value, "equals": .value, "range": .value]),
        "percentage": .value,
        "method": .value,
        "match": predicate,
    ]

    static let rule = Shape.object(["name": .value, "condition": .condition, "upstream": .value, "stickiness": .value])

    static let rewrite = Shape.object([
        "path": .object(["prefix": .value, "replacement": .value]),
        "set_headers": .list(.object(["name": .value, "value": .value])),
        "remove_headers": .value,
        "setHeaders": .list(.object(["name": .value, "value": .value])),
        "removeHeaders": .value,
    ])

    /// The keys of `ShadowPolicy`'s coding, which the YAML shares with the store.
    static let shadow = Shape.object([
        "to": .value,
        "percent": .value,
        "methods": .value,
        "noise_percent": .value,
        "secondary": .value,
        "stickiness": .value,
        "ignore": .value,
        "sensitive_headers": .value,
        "sensitive_paths": .value,
    ])

    static let route = Shape.object([
        "name": .value,
        "host": .value,
        "path": .value,
        "methods": .value,
        "legacy": .value,
        "default": .value,
        "rules": .list(rule),
        "rewrites": .dictionary(rewrite),
        "timeouts": .object([
            "connect_milliseconds": .value, "response_header_milliseconds": .value,
            "connectMilliseconds": .value, "responseHeaderMilliseconds": .value,
        ]),
        "shadow": shadow,
        "fallback": .value,
        "fallback_on": .value,
        "stale_if_error": .value,
        "retry": .object([
            "on": .value, "attempts": .value, "per_try_timeout": .value,
            "backoff": .object(["base": .value, "max": .value]),
            "budget": .object(["percent": .value, "min_concurrent": .value]),
        ]),
        "rate_limit": .object(["requests": .value, "per": .value, "burst": .value, "key": .value, "mode": .value]),
    ])

    static let upstream = Shape.object([
        "name": .value,
        "addresses": .value,
        "ca_file": .value,
        "client_cert": .value,
        "client_key": .value,
        "slots": .object([
            "blue": .value, "green": .value, "active": .value, "preview_segment": .value, "preview_token_sha256": .value,
        ]),
        "outlier": .object([
            "enabled": .value, "consecutive_5xx": .value, "consecutive_gateway_failure": .value,
            "base_ejection_time": .value, "max_ejection_time": .value, "max_ejection_percent": .value,
        ]),
        "balance": .value,
        "limits": .object([
            "max_connections": .value, "max_pending": .value, "max_requests": .value, "max_retries": .value,
        ]),
        "health_check": .object([
            "path": .value, "interval": .value, "timeout": .value, "healthy": .value, "unhealthy": .value,
            "expect": .value,
        ]),
    ])

    static let document = Shape.object([
        "upstreams": .list(upstream),
        "routes": .list(route),
        "segments": .list(.object(["name": .value, "constraints": .list(predicate)])),
        "flags": .list(.object(["name": .value, "enabled": .value])),
        "killed": .value,
        "identity": .value,
    ])

    /// Fields an object may not have together, and why: one would silently win over the other.
    static let exclusiveFields: [(String, String, String)] =
        [
            (
                "addresses", "slots",
                "with slots, the active slot's addresses serve and 'addresses' would be ignored; keep one of them"
            )
        ]
        + FormerKeys.renamed.sorted { $0.key < $1.key }.map { former, current in
            (current, former, "'\(former)' is the former name of '\(current)'; keep '\(current)' only")
        }

    /// Every unknown field, every field that excludes another, and every condition without exactly one kind, in
    /// `root`; fields written under a former name (`setHeaders` for `set_headers`) are read, and added to `warnings`.
    static func check(_ root: Node, file: String, warnings: inout [RulesProblem]) -> [RulesProblem] {
        guard root.mapping != nil else {
            return [
                RulesProblem(
                    file: file,
                    line: root.mark?.line,
                    column: root.mark?.column,
                    message: "a rules file is a mapping with upstreams, routes, segments, flags, killed and identity"
                )
            ]
        }
        var found = Found()
        self.walk(root, shape: self.document, path: [], root: root, file: file, found: &found)
        warnings += found.warnings
        return found.problems
    }

    /// What a walk finds: problems refuse the file, warnings do not.
    private struct Found {
        var problems: [RulesProblem] = []
        var warnings: [RulesProblem] = []
    }

    private static func walk(
        _ node: Node,
        shape: Shape,
        path: [PathKey],
        root: Node,
        file: String,
        found: inout Found
    ) {
        func located(_ at: Node, _ message: String) -> RulesProblem {
            let (_, description) = self.resolve(path, in: root)
            let prefix = description.isEmpty ? "" : description + ": "
            return RulesProblem(file: file, line: at.mark?.line, column: at.mark?.column, message: prefix + message)
        }
        func report(_ at: Node, _ message: String) {
            found.problems.append(located(at, message))
        }
        switch shape {
        case .value:
            return
        case .list(let element):
            guard let items = node.sequence else {
                return
            }
            for (index, item) in items.enumerated() {
                self.walk(
                    item, shape: element, path: path + [.index(index)], root: root, file: file, found: &found)
            }
        case .dictionary(let element):
            guard let mapping = node.mapping else {
                return
            }
            for (key, value) in mapping {
                let name = key.string ?? ""
                self.walk(value, shape: element, path: path + [.key(name)], root: root, file: file, found: &found)
            }
        case .object(let fields):
            guard let mapping = node.mapping else {
                return
            }
            for (first, second, why) in self.exclusiveFields
            where fields[first] != nil && mapping[Node(first)] != nil && mapping[Node(second)] != nil {
                let at = mapping.keys.first { $0.string == second } ?? node
                report(at, "'\(first)' and '\(second)' together: \(why)")
            }
            for (key, value) in mapping {
                let name = key.string ?? ""
                guard let field = fields[name] else {
                    let expected = fields.keys.filter { FormerKeys.renamed[$0] == nil }.sorted()
                    report(key, "unknown field '\(name)' (expected one of: \(expected.joined(separator: ", ")))")
                    continue
                }
                if let current = FormerKeys.renamed[name] {
                    found.warnings.append(
                        located(key, "'\(name)' is now '\(current)'; the old name is still read, rename it"))
                }
                self.walk(value, shape: field, path: path + [.key(name)], root: root, file: file, found: &found)
            }
        case .condition:
            guard let mapping = node.mapping else {
                return
            }
            let keys = mapping.keys.compactMap(\.string)
            let known = self.conditionKeys.keys.sorted().joined(separator: ", ")
            guard keys.count == 1, let key = keys.first, let field = self.conditionKeys[key] else {
                let found = keys.isEmpty ? "none" : keys.map { "'\($0)'" }.joined(separator: ", ")
                report(node, "a condition needs exactly one of \(known); found \(found) (combine with all/any)")
                return
            }
            self.walk(
                mapping[Node(key)]!, shape: field, path: path + [.key(key)], root: root, file: file, found: &found
            )
        }
    }

    /// One step into a document: a mapping key or a list position.
    enum PathKey {
        case key(String)
        case index(Int)

        init(_ codingKey: any CodingKey) {
            if let index = codingKey.intValue {
                self = .index(index)
            } else {
                self = .key(codingKey.stringValue)
            }
        }
    }

    /// The deepest node of `path` that exists, and the path named as validation errors name things
    /// (`route 'orders': rule 2 ('beta'): condition`).
    static func resolve(_ path: [PathKey], in root: Node) -> (Node, String) {
        var node = root
        var names: [String] = []
        var parentKey = ""
        for step in path {
            switch step {
            case .key(let key):
                guard let child = node[key] else {
                    return (node, names.joined(separator: ": "))
                }
                node = child
                parentKey = key
                if !["upstreams", "routes", "segments", "flags", "rules", "constraints"].contains(key) {
                    names.append(key)
                }
            case .index(let index):
                guard let items = node.sequence, index < items.count else {
                    return (node, names.joined(separator: ": "))
                }
                node = Array(items)[index]
                let name = node["name"]?.string
                switch parentKey {
                case "upstreams", "routes", "segments", "flags":
                    let kind = String(parentKey.dropLast())
                    names.append(name.map { "\(kind) '\($0)'" } ?? "\(kind) \(index + 1)")
                case "rules":
                    names.append("rule \(index + 1)" + (name.map { " ('\($0)')" } ?? ""))
                case "constraints":
                    names.append("constraint \(index + 1)")
                default:
                    names.append("item \(index + 1)")
                }
                parentKey = ""
            }
        }
        return (node, names.joined(separator: ": "))
    }
}
