import ArgumentParser
import FicusCore
import FicusDiff
import FicusStore

/// `ficus shadow`: a route's shadow policy, which mirrors its traffic to the side that does not answer.
///
/// `ficus shadow ROUTE ...` is `ficus shadow set ROUTE ...`, the form operators type most; the other subcommands edit
/// the lists that say how answers are compared and what is hidden.
struct ShadowCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "shadow",
        abstract: "Mirror a route's traffic to the side that does not answer, and say how the answers are compared.",
        discussion: """
            'ficus shadow ROUTE ...' is 'ficus shadow set ROUTE ...'; use the explicit 'set' for a route named like \
            a subcommand.
            """,
        subcommands: [Update.self, Ignore.self, Unignore.self, Sensitive.self, Show.self],
        defaultSubcommand: Update.self
    )
}

/// The changes `ficus shadow set` makes to a route's policy, parsed and checked before the store is opened.
///
/// A plain value so that the commit closure, which may run more than once when the store is busy, captures no
/// command state.
struct ShadowChange: Sendable, Equatable {
    /// Removes the policy; nothing else may be set.
    var off = false
    /// The shadow upstream; `.some(nil)` goes back to the route's other side.
    var to: String??
    var percent: Double?
    /// The shadowed methods; empty goes back to the safe ones.
    var methods: [String]?
    var noisePercent: Double?
    /// The noise upstream; `.some(nil)` goes back to the serving side.
    var secondary: String??
    /// The sampling attribute; `.some(nil)` goes back to the client address.
    var stickiness: Attribute??

    /// Applies the change to `route`, starting from the defaults when it has no policy yet.
    ///
    /// Upstreams are looked up here, inside the commit, so that the message names the option the operator typed.
    func apply(to route: inout Route, in configuration: Configuration) throws {
        if self.off {
            route.shadow = nil
            return
        }
        var policy = route.shadow ?? ShadowPolicy()
        if let to = self.to {
            if let to {
                try configuration.requireUpstream(to)
            }
            policy.to = to
        }
        if let secondary = self.secondary {
            if let secondary {
                try configuration.requireUpstream(secondary)
            }
            policy.secondary = secondary
        }
        if let percent = self.percent {
            policy.percent = percent
        }
        if let methods = self.methods {
            policy.methods = methods
        }
        if let noisePercent = self.noisePercent {
            policy.noisePercent = noisePercent
        }
        if let stickiness = self.stickiness {
            policy.stickiness = stickiness
        }
        route.shadow = policy
    }
}

extension ShadowCommand {
    /// `ficus shadow [set] ROUTE [--to UPSTREAM] [--percent N] ... [--off]`.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Shadow a route, change its policy, or stop shadowing it (--off); what is not given stays.",
            discussion: """
                A new policy shadows 100% of GET, HEAD and OPTIONS requests to the route's other side (the new \
                service while legacy serves, legacy once flipped) and sends 10% of them a second time to the serving \
                side to learn what is noise.
                """
        )

        @Argument(help: "The route's name.")
        var route: String

        @Option(
            help: ArgumentHelp(
                "The shadow upstream (default: the route's other side). Never the upstream that served the request.",
                valueName: "upstream"))
        var to: String?

        @ArgumentParser.Flag(
            name: .customLong("other-side"), help: "Shadow to the route's other side again (undoes --to).")
        var otherSide = false

        @Option(help: ArgumentHelp("Share of eligible requests shadowed, 0–100 (default 100).", valueName: "n"))
        var percent: Double?

        @Option(
            help: ArgumentHelp(
                "The methods shadowed (comma-separated; default GET,HEAD,OPTIONS). Others must be opted in.",
                valueName: "GET,HEAD"))
        var methods: String?

        @ArgumentParser.Flag(
            name: .customLong("safe-methods"), help: "Shadow only GET, HEAD and OPTIONS again (undoes --methods).")
        var safeMethods = false

        @Option(
            name: .customLong("noise-percent"),
            help: ArgumentHelp(
                "Share of shadowed safe requests sent a second time to the serving side to learn noise, 0–100 "
                    + "(default 10).",
                valueName: "n"))
        var noisePercent: Double?

        @Option(
            help: ArgumentHelp(
                "Another instance of the old code that answers the noise samples instead of the serving side.",
                valueName: "upstream"))
        var secondary: String?

        @ArgumentParser.Flag(
            name: .customLong("no-secondary"), help: "Send the noise samples to the serving side again.")
        var noSecondary = false

        @Option(
            help: ArgumentHelp(
                "What the sampling hash reads (default: the client address).",
                valueName: "header:X-User-Id|cookie:K|query:K|client_ip"))
        var sticky: String?

        @ArgumentParser.Flag(name: .customLong("no-sticky"), help: "Sample by client address again.")
        var noSticky = false

        @ArgumentParser.Flag(help: "Stop shadowing the route (removes its policy, ignored paths included).")
        var off = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        /// The options as a change, or a usage error naming the options that conflict.
        func parsedChange() throws -> ShadowChange {
            var change = ShadowChange()
            let setters: [(String, Bool)] = [
                ("--to", self.to != nil), ("--other-side", self.otherSide), ("--percent", self.percent != nil),
                ("--methods", self.methods != nil), ("--safe-methods", self.safeMethods),
                ("--noise-percent", self.noisePercent != nil), ("--secondary", self.secondary != nil),
                ("--no-secondary", self.noSecondary), ("--sticky", self.sticky != nil), ("--no-sticky", self.noSticky),
            ]
            if self.off {
                let given = setters.filter(\.1).map(\.0)
                guard given.isEmpty else {
                    let list = given.joined(separator: ", ")
                    throw CLIError.usage("--off removes the shadow policy; give it alone, not with \(list)")
                }
                change.off = true
                return change
            }
            for (option, undo, isGiven, undoGiven) in [
                ("--to", "--other-side", self.to != nil, self.otherSide),
                ("--methods", "--safe-methods", self.methods != nil, self.safeMethods),
                ("--secondary", "--no-secondary", self.secondary != nil, self.noSecondary),
                ("--sticky", "--no-sticky", self.sticky != nil, self.noSticky),
            ] where isGiven && undoGiven {
                throw CLIError.usage("give \(option) or \(undo), not both")
            }
            if let to = self.to {
                change.to = .some(to)
            } else if self.otherSide {
                change.to = .some(nil)
            }
            change.percent = self.percent
            if let text = self.methods {
                let methods = ArgumentText.methods(text)
                guard !methods.isEmpty else {
                    throw CLIError.usage("--methods '\(text)': name at least one method, or use --safe-methods")
                }
                change.methods = methods
            } else if self.safeMethods {
                change.methods = []
            }
            change.noisePercent = self.noisePercent
            if let secondary = self.secondary {
                change.secondary = .some(secondary)
            } else if self.noSecondary {
                change.secondary = .some(nil)
            }
            if let sticky = self.sticky {
                change.stickiness = .some(try ArgumentText.attribute(sticky, option: "--sticky"))
            } else if self.noSticky {
                change.stickiness = .some(nil)
            }
            return change
        }

        func run() async throws {
            try await ErrorReport.run {
                let change = try self.parsedChange()
                let name = self.route
                let store = try await self.storeOptions.open()
                let author = self.change.changeAuthor(action: change.off ? "shadow.off" : "shadow.set")
                try await store.commitPrinting(author) { configuration in
                    let index = try configuration.routeIndex(name)
                    var route = configuration.routes[index]
                    try change.apply(to: &route, in: configuration)
                    configuration.routes[index] = route
                }
            }
        }
    }

    /// `ficus shadow ignore ROUTE PATH...`.
    struct Ignore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "ignore",
            abstract: "Never report differences at these paths of a shadowed route.",
            discussion: """
                A path is a JSON path ($.meta.generatedAt, $.items[*].updatedAt, $..traceId), header:NAME or status: \
                anything a difference report shows can be pasted here. Quote it for the shell.
                """
        )

        @Argument(help: "The route's name.")
        var route: String

        @Argument(help: ArgumentHelp("The paths to ignore.", valueName: "path"))
        var paths: [String]

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let paths = try self.paths.map { try ShadowText.ignorePath($0) }
                let name = self.route
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "shadow.ignore")) { configuration in
                    try configuration.editShadow(of: name) { policy in
                        for path in paths where !policy.ignorePaths.contains(path) {
                            policy.ignorePaths.append(path)
                        }
                    }
                }
            }
        }
    }

    /// `ficus shadow unignore ROUTE PATH...`.
    struct Unignore: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "unignore",
            abstract: "Report differences at these paths of a shadowed route again."
        )

        @Argument(help: "The route's name.")
        var route: String

        @Argument(
            help: ArgumentHelp("The ignored paths to report again, as 'shadow show' lists them.", valueName: "path"))
        var paths: [String]

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let paths = self.paths
                let name = self.route
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "shadow.unignore")) { configuration in
                    try configuration.editShadow(of: name) { policy in
                        let known = policy.ignorePaths
                        for path in paths {
                            guard let index = policy.ignorePaths.firstIndex(of: path) else {
                                throw CLIError.notFound(kind: "ignored path", name: path, known: known)
                            }
                            policy.ignorePaths.remove(at: index)
                        }
                    }
                }
            }
        }
    }

    /// `ficus shadow sensitive ROUTE [--header NAME]... [--path JSONPATH]... [--remove]`.
    struct Sensitive: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "sensitive",
            abstract: "Hide headers and JSON fields of a shadowed route's requests and answers before they are stored.",
            discussion: """
                Authorization, Cookie, Set-Cookie and Proxy-Authorization are always hidden. Hidden values are \
                replaced by a marker in stored records and reports; the comparison still sees whether they differed.
                """
        )

        @Argument(help: "The route's name.")
        var route: String

        @Option(help: ArgumentHelp("A header whose values are hidden. Repeatable.", valueName: "name"))
        var header: [String] = []

        @Option(
            help: ArgumentHelp(
                "A JSON path whose values are hidden ($.card.number, $..password). Repeatable.", valueName: "jsonpath"))
        var path: [String] = []

        @ArgumentParser.Flag(help: "Stop hiding the given headers and paths.")
        var remove = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                guard !self.header.isEmpty || !self.path.isEmpty else {
                    throw CLIError.usage("give at least one --header NAME or --path JSONPATH")
                }
                let headers = try self.header.map { try ShadowText.headerName($0, option: "--header") }
                let paths =
                    self.remove ? self.path : try self.path.map { try ShadowText.jsonPath($0, option: "--path") }
                let remove = self.remove
                let name = self.route
                let store = try await self.storeOptions.open()
                let action = remove ? "shadow.sensitive.rm" : "shadow.sensitive"
                try await store.commitPrinting(self.change.changeAuthor(action: action)) { configuration in
                    try configuration.editShadow(of: name) { policy in
                        if remove {
                            try Self.remove(headers: headers, paths: paths, from: &policy)
                        } else {
                            Self.add(headers: headers, paths: paths, to: &policy)
                        }
                    }
                }
            }
        }

        /// Adds what is not there yet; header names compare in any case, as HTTP does.
        static func add(headers: [String], paths: [String], to policy: inout ShadowPolicy) {
            for header in headers
            where !policy.sensitiveHeaders.contains(where: { $0.lowercased() == header.lowercased() }) {
                policy.sensitiveHeaders.append(header)
            }
            for path in paths where !policy.sensitivePaths.contains(path) {
                policy.sensitivePaths.append(path)
            }
        }

        /// Removes each one, failing for one that is not there so that a typo does not pass for a removal.
        static func remove(headers: [String], paths: [String], from policy: inout ShadowPolicy) throws {
            let knownHeaders = policy.sensitiveHeaders
            let knownPaths = policy.sensitivePaths
            for header in headers {
                guard let index = policy.sensitiveHeaders.firstIndex(where: { $0.lowercased() == header.lowercased() })
                else {
                    throw CLIError.notFound(kind: "sensitive header", name: header, known: knownHeaders)
                }
                policy.sensitiveHeaders.remove(at: index)
            }
            for path in paths {
                guard let index = policy.sensitivePaths.firstIndex(of: path) else {
                    throw CLIError.notFound(kind: "sensitive path", name: path, known: knownPaths)
                }
                policy.sensitivePaths.remove(at: index)
            }
        }
    }

    /// `ficus shadow show ROUTE [--json]`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show a route's shadow policy (JSON: null when the route is not shadowed)."
        )

        @Argument(help: "The route's name.")
        var route: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                let route = configuration.routes[try configuration.routeIndex(self.route)]
                if self.output.json {
                    try Console.json(route.shadow)
                    return
                }
                guard let policy = route.shadow else {
                    Console.out("route '\(route.name)' is not shadowed (start with 'ficus shadow \(route.name)')")
                    return
                }
                let lines = ["shadow of route '\(route.name)'"] + ShadowCommand.describe(policy, route: route)
                Console.out(lines.joined(separator: "\n"))
            }
        }
    }

    /// A policy as indented lines: what `shadow show` prints and `route show` includes.
    static func describe(_ policy: ShadowPolicy, route: Route) -> [String] {
        let serving = route.defaultUpstream
        var to: String
        if let upstream = policy.to {
            to = upstream
        } else {
            let now = policy.target(serving: serving, route: route).map { "now \($0)" } ?? "none yet"
            to = "the route's other side (\(now))"
        }
        if policy.target(serving: serving, route: route) == nil, policy.to != nil {
            to += " (serves the route now: nothing is shadowed until it stops)"
        }
        let methods =
            policy.methods.isEmpty
            ? ShadowPolicy.safeMethods.joined(separator: ",") + " (the safe ones)"
            : policy.methods.joined(separator: ",")
        let noiseSide = policy.secondary ?? "the serving side"
        var lines = [
            "  to         \(to)",
            "  percent    \(ShadowText.number(policy.percent))% of \(methods) requests, sampled by "
                + (policy.stickiness?.description ?? "client_ip"),
            "  noise      \(ShadowText.number(policy.noisePercent))% of shadowed safe requests answered again by "
                + noiseSide,
        ]
        if !policy.ignorePaths.isEmpty {
            lines.append("  ignore     " + policy.ignorePaths.joined(separator: ", "))
        }
        let always = ["Authorization", "Cookie", "Set-Cookie", "Proxy-Authorization"]
        lines.append("  sensitive  headers " + (always + policy.sensitiveHeaders).joined(separator: ", "))
        if !policy.sensitivePaths.isEmpty {
            lines.append("             paths " + policy.sensitivePaths.joined(separator: ", "))
        }
        return lines
    }
}

extension Configuration {
    /// Runs `edit` on the shadow policy of route `name`, failing when the route is not shadowed.
    ///
    /// Editing the lists must not start mirroring traffic as a side effect; `ficus shadow ROUTE` does that, on purpose.
    mutating func editShadow(of name: String, _ edit: (inout ShadowPolicy) throws -> Void) throws {
        let index = try self.routeIndex(name)
        guard var policy = self.routes[index].shadow else {
            throw CLIError.failed("route '\(name)' is not shadowed: start with 'ficus shadow \(name) [--to UPSTREAM]'")
        }
        try edit(&policy)
        self.routes[index].shadow = policy
    }

    /// Every shadow path that the core validator lets through but FicusDiff cannot use.
    ///
    /// FicusCore does not depend on FicusDiff, so it checks only the form (`$...`, `header:NAME`, `status`); a pattern
    /// that then fails to parse would silently never match, so the rules files are checked here as well.
    func shadowPathErrors() -> [FicusCore.ValidationError] {
        var errors: [FicusCore.ValidationError] = []
        for (index, route) in self.routes.enumerated() {
            guard let policy = route.shadow else {
                continue
            }
            let object = route.name.isEmpty ? "route \(index + 1)" : "route '\(route.name)'"
            // Paths of none of the three forms are reported by the core validator already.
            let formed = { (path: String) in path.hasPrefix("$") || path.hasPrefix("header:") || path == "status" }
            for path in policy.ignorePaths where formed(path) {
                if let problem = ShadowText.ignorePathProblem(path) {
                    errors.append(FicusCore.ValidationError(object: object, field: "shadow.ignore", message: problem))
                }
            }
            for path in policy.sensitivePaths where formed(path) {
                if let problem = ShadowText.jsonPathProblem(path) {
                    errors.append(
                        FicusCore.ValidationError(object: object, field: "shadow.sensitive_paths", message: problem))
                }
            }
        }
        return errors
    }
}

/// Reads the paths and names the shadow commands take, failing with usage errors that say what was expected.
///
/// Shared by the commands and the rules-file check, so that the command line and YAML accept the same paths.
enum ShadowText {
    static let jsonPathForms = "a JSON path such as $.meta.generatedAt, $.items[*].id or $..token"

    /// Why `text` is not a JSON path pattern FicusDiff can use, or nil.
    static func jsonPathProblem(_ text: String) -> String? {
        if JSONPathPattern(text) != nil {
            return nil
        }
        if text.hasPrefix("header:") {
            return "'\(text)' is not a JSON path: headers are hidden with sensitive_headers (--header)"
        }
        return "'\(text)' is not \(Self.jsonPathForms)"
    }

    /// Why `text` is not an ignorable path (a JSON path, `header:NAME` or `status`), or nil.
    static func ignorePathProblem(_ text: String) -> String? {
        if text == "status" || JSONPathPattern(text) != nil {
            return nil
        }
        if text.hasPrefix("header:") {
            let name = String(text.dropFirst("header:".count))
            return Self.isToken(name) ? nil : "'\(text)': '\(name)' is not a header name"
        }
        return "'\(text)' is not \(Self.jsonPathForms), header:NAME or status"
    }

    /// `text` if it is an ignorable path, else a usage error.
    static func ignorePath(_ text: String) throws -> String {
        if let problem = Self.ignorePathProblem(text) {
            throw CLIError.usage(problem)
        }
        return text
    }

    /// `text` if it is a JSON path pattern, else a usage error naming `option`.
    static func jsonPath(_ text: String, option: String) throws -> String {
        if let problem = Self.jsonPathProblem(text) {
            throw CLIError.usage("\(option) \(problem)")
        }
        return text
    }

    /// `text` if it is a header name, else a usage error naming `option`.
    static func headerName(_ text: String, option: String) throws -> String {
        guard Self.isToken(text) else {
            throw CLIError.usage("\(option) '\(text)' is not a header name")
        }
        return text
    }

    /// Whether `text` is an HTTP token (RFC 9110), the form of header names and methods.
    static func isToken(_ text: String) -> Bool {
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

    /// `100` rather than `100.0`; fractions as given.
    static func number(_ value: Double) -> String {
        value == value.rounded() && abs(value) < 1e15 ? String(Int(value)) : String(value)
    }
}
