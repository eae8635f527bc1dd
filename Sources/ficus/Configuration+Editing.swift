import ArgumentParser
import FicusCore
import FicusRuntime
import Foundation

extension Configuration {
    // routeIndex and upstreamIndex (NotFound, which reads as CLIError.notFound) come from FicusRuntime.

    /// The position of the segment named `name`, or `CLIError.notFound`.
    func segmentIndex(_ name: String) throws -> Int {
        guard let index = self.segments.firstIndex(where: { $0.name == name }) else {
            throw CLIError.notFound(kind: "segment", name: name, known: self.segments.map(\.name))
        }
        return index
    }

    /// The position of the flag named `name`, or `CLIError.notFound`.
    func flagIndex(_ name: String) throws -> Int {
        guard let index = self.flags.firstIndex(where: { $0.name == name }) else {
            throw CLIError.notFound(kind: "flag", name: name, known: self.flags.map(\.name))
        }
        return index
    }

    /// Fails with `CLIError.notFound` unless an upstream named `name` exists.
    ///
    /// Checked before validation so that the message names the option the operator typed.
    func requireUpstream(_ name: String) throws {
        _ = try self.upstreamIndex(name)
    }

    /// Every place that names upstream `name`, as `route 'orders' (legacy)` and the like.
    ///
    /// `upstream rm` refuses while this is not empty, listing what to change first.
    func references(toUpstream name: String) -> [String] {
        var places: [String] = []
        for route in self.routes {
            var fields: [String] = []
            if route.legacy == name {
                fields.append("legacy")
            }
            if route.defaultUpstream == name {
                fields.append("default")
            }
            for rule in route.rules where rule.upstream == name {
                fields.append("rule '\(rule.name)'")
            }
            if route.rewrites[name] != nil {
                fields.append("rewrite")
            }
            if route.shadow?.to == name {
                fields.append("shadow")
            }
            if route.shadow?.secondary == name {
                fields.append("shadow secondary")
            }
            if !fields.isEmpty {
                places.append("route '\(route.name)' (\(fields.joined(separator: ", ")))")
            }
        }
        return places
    }

    /// Every rule name in the configuration.
    ///
    /// Rule names are unique across all routes, since percentage buckets hash them.
    var ruleNames: Set<String> {
        Set(self.routes.flatMap { $0.rules.map(\.name) })
    }
}

extension Route {
    /// The position of the rule named `reference`, or at the 1-based position `reference`.
    ///
    /// Operators see rules numbered in `route show`, so both forms are accepted.
    func ruleIndex(_ reference: String) throws -> Int {
        if let index = self.rules.firstIndex(where: { $0.name == reference }) {
            return index
        }
        if let position = Int(reference), (1...max(self.rules.count, 1)).contains(position), !self.rules.isEmpty {
            return position - 1
        }
        throw CLIError.notFound(kind: "rule", name: reference, known: self.rules.map(\.name))
    }

    /// The route's match as one line: host, path and methods.
    ///
    /// Used by list, status and show.
    var matchSummary: String {
        var text = (self.host ?? "*") + " " + self.path
        if !self.methods.isEmpty {
            text += " [" + self.methods.joined(separator: ",") + "]"
        }
        return text
    }
}

extension BlueGreenSlots.Slot: ExpressibleByArgument {}

/// Parses command-line text into model values, failing with usage errors that name the option.
///
/// Kept apart from the commands so that every option spelling (`K=V`, `HOST:PORT`, ...) is read one way.
enum ArgumentText {
    /// Parses `HOST:PORT` values of `option`.
    static func endpoints(_ texts: [String], option: String) throws -> [Endpoint] {
        try texts.map { text in
            guard let endpoint = Endpoint(parsing: text) else {
                throw CLIError.usage(
                    "\(option) '\(text)': expected HOST:PORT or 'HOST:PORT weight=N' (IPv6 in brackets: [::1]:8080)")
            }
            return endpoint
        }
    }

    /// Splits `K=V` (or `K: V` for `-H`) into a trimmed name and value.
    static func pair(_ text: String, option: String, separators: [Character] = ["="]) throws -> (String, String) {
        guard let split = text.firstIndex(where: { separators.contains($0) }) else {
            let form = separators.map { "NAME\($0)VALUE" }.joined(separator: " or ")
            throw CLIError.usage("\(option) '\(text)': expected \(form)")
        }
        let name = text[..<split].trimmingCharacters(in: .whitespaces)
        let value = text[text.index(after: split)...].trimmingCharacters(in: .whitespaces)
        guard !name.isEmpty else {
            throw CLIError.usage("\(option) '\(text)': the name is empty")
        }
        return (name, value)
    }

    /// Parses an attribute (`header:X-User-Id`, `cookie:sid`, `query:beta`, `client_ip`).
    static func attribute(_ text: String, option: String) throws -> Attribute {
        guard let attribute = Attribute(text) else {
            throw CLIError.usage("\(option) '\(text)': expected header:NAME, cookie:NAME, query:NAME or client_ip")
        }
        return attribute
    }

    /// Parses a comma-separated method list into upper case.
    static func methods(_ text: String) -> [String] {
        text.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces).uppercased() }.filter { !$0.isEmpty }
    }

    /// Parses `UPSTREAM:PREFIX->REPLACEMENT` (replacement may be empty to strip).
    static func rewrite(_ text: String) throws -> (upstream: String, rewrite: PathRewrite) {
        let form = "expected UPSTREAM:PREFIX->REPLACEMENT, e.g. orders-v2:/api/v1/orders->/orders"
        guard let colon = text.firstIndex(of: ":"), let arrow = text.range(of: "->") else {
            throw CLIError.usage("--rewrite '\(text)': \(form)")
        }
        let upstream = String(text[..<colon])
        let prefix = String(text[text.index(after: colon)..<arrow.lowerBound])
        let replacement = String(text[arrow.upperBound...])
        guard !upstream.isEmpty, !prefix.isEmpty, colon < arrow.lowerBound else {
            throw CLIError.usage("--rewrite '\(text)': \(form)")
        }
        return (upstream, PathRewrite(prefix: prefix, replacement: replacement))
    }
}
