import FicusCore
import Foundation

extension RevisionDiff {
    /// `on` or `off`.
    ///
    /// Flags and the kill switch read better as switches than as `true`/`false`.
    static func onOff(_ value: Bool) -> String {
        value ? "on" : "off"
    }

    /// A route's match and upstreams in one line (`GET,POST api.example.com/orders → orders-v2 (legacy legacy)`).
    ///
    /// What an operator needs to recognise a newly added route.
    static func describe(_ route: Route) -> String {
        let methods = route.methods.isEmpty ? "" : route.methods.joined(separator: ",") + " "
        let upstreams = route.legacy == route.defaultUpstream
            ? route.defaultUpstream
            : "\(route.defaultUpstream) (legacy \(route.legacy))"
        return "\(methods)\(route.host ?? "")\(route.path) → \(upstreams)"
    }

    /// A rule as `condition → upstream`, with its stickiness when set.
    ///
    /// The same one-line condition text as validation messages and explanations.
    static func describe(_ rule: Rule) -> String {
        let text = "\(rule.condition) → \(rule.upstream)"
        return rule.stickiness.map { "\(text) (sticky by \($0))" } ?? text
    }

    /// An upstream's addresses, or its slots with the active one marked, then its balancing, outlier ejection and
    /// limits when set.
    ///
    /// Shows which addresses serve, which is what a change to an upstream is mostly about; the settings follow so
    /// that a change of them alone is visible too.
    static func describe(_ upstream: Upstream) -> String {
        var text: String
        if let slots = upstream.slots {
            text = "blue \(self.describe(slots.blue)), green \(self.describe(slots.green)), active \(slots.active.rawValue)"
        } else {
            text = self.describe(upstream.addresses)
        }
        if let balance = upstream.balance { text += "; balance \(balance.rawValue)" }
        if let outlier = upstream.outlier { text += "; outlier \(outlier.oneLine)" }
        if let limits = upstream.limits { text += "; limits \(limits.oneLine())" }
        return text
    }

    /// Addresses as `[host:port, host:port]`.
    ///
    /// Brackets keep an empty list visible.
    static func describe(_ addresses: [Endpoint]) -> String {
        "[\(addresses.map(\.description).joined(separator: ", "))]"
    }

    /// Segment constraints as `[header:X-Tenant in [acme], ip in [10.0.0.0/8]]`.
    ///
    /// Uses the predicates' own one-line form.
    static func describe(_ constraints: [FicusCore.Predicate]) -> String {
        "[\(constraints.map(\.description).joined(separator: ", "))]"
    }

    /// Methods joined with commas, or `any` when the route takes every method.
    ///
    /// An empty list means every method, which a blank would hide.
    static func describe(methods: [String]) -> String {
        methods.isEmpty ? "any" : methods.joined(separator: ",")
    }

    /// A stickiness attribute, or `client address` for the default.
    ///
    /// Nil means the client address, which is worth saying rather than leaving blank.
    static func describe(stickiness: Attribute?) -> String {
        stickiness.map(\.description) ?? "client address"
    }

    /// A value as compact JSON with sorted keys.
    ///
    /// Rewrites and timeouts have no one-line text form of their own; their stored form is readable and stable.
    static func json<Value: Encodable>(_ value: Value) -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        guard let data = try? encoder.encode(value) else {
            return "\(value)"
        }
        return String(decoding: data, as: UTF8.self)
    }
}
