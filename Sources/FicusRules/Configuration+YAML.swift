import FicusCore
import Foundation
import Yams

extension Configuration {
    /// The configuration as a rules file that `ficus apply` turns back into an identical configuration.
    ///
    /// Encoded through the model's own `Codable` (so nothing can be forgotten), then stripped of the fields that
    /// hold their decoding default (empty lists, `case_insensitive: false`, an always-true condition) so that the
    /// file reads like one a person wrote; rewrites are sorted by upstream so that the output is stable.
    public func yamlDocument(header: [String]) throws -> String {
        let encoded = try YAMLEncoder().encode(self)
        guard let node = try Yams.compose(yaml: encoded) else {
            return header.map { "# \($0)" }.joined(separator: "\n") + "\n{}\n"
        }
        let body = try Yams.serialize(node: YAMLShaping.document(node), indent: 2, width: -1, allowUnicode: true)
        return (header.map { "# \($0)" } + [body]).joined(separator: "\n")
    }
}

/// Removes fields that hold their decoding default from an encoded configuration.
///
/// Only fields whose absence decodes to exactly the same value are removed, which the export round-trip tests
/// check.
enum YAMLShaping {
    static func document(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            switch key {
            case "routes":
                return self.list(value, self.route)
            case "segments":
                return self.list(value) { segment in
                    self.mapping(segment) { key, value in
                        key == "constraints" ? self.list(value, self.predicate) : value
                    }
                }
            default:
                return value
            }
        }
    }

    static func route(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            switch key {
            case "methods", "rules", "rewrites", "timeouts":
                if self.isEmpty(value) {
                    return nil
                }
                if key == "rules" {
                    return self.list(value, self.rule)
                }
                if key == "rewrites", let mapping = value.mapping {
                    let pairs = mapping.sorted { ($0.key.string ?? "") < ($1.key.string ?? "") }
                    return Node(pairs.map { ($0.key, self.rewrite($0.value)) })
                }
                return value
            case "shadow":
                return self.shadow(value)
            default:
                return value
            }
        }
    }

    /// Writes the shadow percentages as people do (`percent: 100`, not Yams's `1e+2`).
    ///
    /// Every other field of the policy is already left out when it holds its default by the model's own coding.
    static func shadow(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            guard key == "percent" || key == "noise_percent", let number = value.float, number.isFinite else {
                return value
            }
            return Node(self.number(number))
        }
    }

    /// `100` rather than `100.0`; fractions as given (the form `ficus shadow` prints too).
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }

    static func rule(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            guard key == "condition" else {
                return value
            }
            if let all = value["all"], value.mapping?.count == 1, self.isEmpty(all) {
                return nil
            }
            return self.condition(value)
        }
    }

    static func condition(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            switch key {
            case "all", "any":
                return self.list(value, self.condition)
            case "not":
                return self.condition(value)
            case "match":
                return self.predicate(value)
            default:
                return value
            }
        }
    }

    static func predicate(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            switch key {
            case "values":
                return self.isEmpty(value) ? nil : value
            case "case_insensitive":
                return value.bool == false ? nil : value
            default:
                return value
            }
        }
    }

    static func rewrite(_ node: Node) -> Node {
        self.mapping(node) { key, value in
            switch key {
            case "set_headers", "remove_headers":
                return self.isEmpty(value) ? nil : value
            case "path":
                return self.mapping(value) { key, value in key == "replacement" && value.string == "" ? nil : value }
            default:
                return value
            }
        }
    }

    private static func isEmpty(_ node: Node) -> Bool {
        node.sequence?.isEmpty == true || node.mapping?.isEmpty == true
    }

    private static func list(_ node: Node, _ transform: (Node) -> Node) -> Node {
        guard let items = node.sequence else {
            return node
        }
        return Node(items.map(transform))
    }

    private static func mapping(_ node: Node, _ transform: (String, Node) -> Node?) -> Node {
        guard let mapping = node.mapping else {
            return node
        }
        var pairs: [(Node, Node)] = []
        for (key, value) in mapping {
            if let kept = transform(key.string ?? "", value) {
                pairs.append((key, kept))
            }
        }
        return Node(pairs)
    }
}
