import ArgumentParser
import FicusCore
import FicusStore

/// `ficus rule`: the ordered condition → upstream steps of a route; the first match wins.
struct RuleCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rule",
        abstract: "Add, remove and reorder a route's rules.",
        subcommands: [Add.self, Remove.self, Move.self]
    )
}

extension RuleCommand {
    /// `ficus rule add ROUTE --to UPSTREAM (--segment S | --flag F | --version EXPR | --percent N | --header K=V ...)`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a rule to a route: when its conditions all hold, --to serves.",
            discussion: """
                Conditions given together must all hold. --version EXPR is an exact version (2) or a semver range \
                (>=2.0.0 <3, ^2, 2.x); it is read from --version-header (default X-API-Version), or from a media-type \
                parameter with --version-parameter (e.g. --version-header Accept --version-parameter version). \
                --percent N sends N% of users, bucketed by --sticky (default: the client address). The rule's name \
                (default ROUTE-KIND) is what buckets hash: keep it when editing so users stay on their side.
                """
        )

        @Argument(help: "The route's name.")
        var route: String

        @Option(help: ArgumentHelp("The upstream that serves matching requests.", valueName: "upstream"))
        var to: String

        @Option(
            help: ArgumentHelp("The rule's name, unique in the configuration (default: ROUTE-KIND).", valueName: "name")
        )
        var name: String?

        @Option(help: ArgumentHelp("Insert at this 1-based position (default: last).", valueName: "n"))
        var at: Int?

        @Option(help: ArgumentHelp("The request is in this segment.", valueName: "segment"))
        var segment: String?

        @Option(help: ArgumentHelp("This flag is on (turning it off disables the rule).", valueName: "flag"))
        var flag: String?

        @Option(help: ArgumentHelp("The API version matches: exact text or a semver range.", valueName: "expr"))
        var version: String?

        @Option(
            name: .customLong("version-header"), help: ArgumentHelp("Header carrying the version.", valueName: "name"))
        var versionHeader = "X-API-Version"

        @Option(
            name: .customLong("version-parameter"),
            help: ArgumentHelp("Media-type parameter carrying the version.", valueName: "name"))
        var versionParameter: String?

        @Option(help: ArgumentHelp("The user's sticky bucket is within this percentage (0-100).", valueName: "n"))
        var percent: Int?

        @Option(
            help: ArgumentHelp(
                "What identifies a user for --percent.", valueName: "header:NAME|cookie:NAME|query:NAME|client_ip"))
        var sticky: String?

        @Option(help: ArgumentHelp("A request header equals a value. Repeatable.", valueName: "name=value"))
        var header: [String] = []

        @Option(help: ArgumentHelp("A cookie equals a value. Repeatable.", valueName: "name=value"))
        var cookie: [String] = []

        @Option(help: ArgumentHelp("A query parameter equals a value. Repeatable.", valueName: "name=value"))
        var query: [String] = []

        @Option(help: ArgumentHelp("The method is one of these (comma-separated).", valueName: "GET,POST"))
        var method: String?

        @ArgumentParser.Flag(help: "Match every request (a catch-all; rules after it are unreachable).")
        var always = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let (condition, kind) = try self.condition()
                let stickiness = try self.sticky.map { try ArgumentText.attribute($0, option: "--sticky") }
                if stickiness != nil, self.percent == nil {
                    throw CLIError.usage("--sticky only applies with --percent")
                }
                let routeName = self.route
                let upstream = self.to
                let explicitName = self.name
                let position = self.at
                let store = try await self.storeOptions.open()
                // Names of removed rules stay taken: buckets hash the name, so reusing one would reshuffle the
                // old rule's users. An explicit retired name is left to the store, which refuses it.
                let everUsed = try await store.ruleNamesEverUsed()
                try await store.commitPrinting(self.change.changeAuthor(action: "rule.add")) { configuration in
                    let index = try configuration.routeIndex(routeName)
                    try configuration.requireUpstream(upstream)
                    let taken = configuration.ruleNames.union(everUsed)
                    let name: String
                    if let explicitName {
                        guard !configuration.ruleNames.contains(explicitName) else {
                            throw CLIError.alreadyExists(
                                kind: "rule",
                                name: explicitName,
                                hint: "rule names are unique across all routes"
                            )
                        }
                        name = explicitName
                    } else {
                        name = RuleCommand.freshName("\(routeName)-\(kind)", taken: taken)
                    }
                    let rule = Rule(name: name, condition: condition, upstream: upstream, stickiness: stickiness)
                    var rules = configuration.routes[index].rules
                    if let position {
                        guard (1...(rules.count + 1)).contains(position) else {
                            throw CLIError.usage(
                                "--at \(position): the route has \(rules.count) rules (1...\(rules.count + 1))")
                        }
                        rules.insert(rule, at: position - 1)
                    } else {
                        rules.append(rule)
                    }
                    configuration.routes[index].rules = rules
                }
            }
        }

        /// The rule's condition from the options, and a word for its default name.
        func condition() throws -> (Condition, String) {
            var parts: [(Condition, String)] = []
            if let segment = self.segment {
                parts.append((.segment(segment), segment))
            }
            if let flag = self.flag {
                parts.append((.flag(flag), flag))
            }
            if let version = self.version {
                let isRange =
                    version.contains(where: { "<>^~*| ".contains($0) }) || version.lowercased().hasSuffix(".x")
                let match = VersionMatch(
                    header: self.versionHeader,
                    parameter: self.versionParameter,
                    equals: isRange ? nil : version,
                    range: isRange ? version : nil
                )
                let label = version.filter { $0.isLetter || $0.isNumber || $0 == "." }
                parts.append((.version(match), isRange || label.isEmpty ? "version" : "v\(label)"))
            }
            if let percent = self.percent {
                parts.append((.percentage(percent), "canary"))
            }
            for text in self.header {
                let (name, value) = try ArgumentText.pair(text, option: "--header")
                parts.append((.header(name, .equals, [value]), "header"))
            }
            for text in self.cookie {
                let (name, value) = try ArgumentText.pair(text, option: "--cookie")
                parts.append((.cookie(name, .equals, [value]), "cookie"))
            }
            for text in self.query {
                let (name, value) = try ArgumentText.pair(text, option: "--query")
                parts.append((.query(name, .equals, [value]), "query"))
            }
            if let method = self.method {
                parts.append((.method(ArgumentText.methods(method)), "method"))
            }
            if self.always {
                guard parts.isEmpty else {
                    throw CLIError.usage("--always excludes every other condition")
                }
                return (.always, "all")
            }
            guard let first = parts.first else {
                throw CLIError.usage(
                    "a rule needs a condition: --segment, --flag, --version, --percent, --header, --cookie, --query, "
                        + "--method, or --always"
                )
            }
            return parts.count == 1 ? first : (.all(parts.map(\.0)), first.1)
        }
    }

    /// `ficus rule rm ROUTE RULE`.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove a rule (by name or 1-based position) from a route."
        )

        @Argument(help: "The route's name.")
        var route: String

        @Argument(help: "The rule's name or position.")
        var rule: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let routeName = self.route
                let reference = self.rule
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "rule.rm")) { configuration in
                    let index = try configuration.routeIndex(routeName)
                    let ruleIndex = try configuration.routes[index].ruleIndex(reference)
                    configuration.routes[index].rules.remove(at: ruleIndex)
                }
            }
        }
    }

    /// `ficus rule move ROUTE RULE --position N`.
    struct Move: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "move",
            abstract: "Move a rule to another position in its route (the first match wins).",
            discussion: "Moving a rule never moves a user between buckets: buckets hash the rule's name."
        )

        @Argument(help: "The route's name.")
        var route: String

        @Argument(help: "The rule's name or position.")
        var rule: String

        @Option(help: ArgumentHelp("The new 1-based position.", valueName: "n"))
        var position: Int

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let routeName = self.route
                let reference = self.rule
                let position = self.position
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "rule.move")) { configuration in
                    let index = try configuration.routeIndex(routeName)
                    var rules = configuration.routes[index].rules
                    let from = try configuration.routes[index].ruleIndex(reference)
                    guard (1...rules.count).contains(position) else {
                        throw CLIError.usage(
                            "--position \(position): the route has \(rules.count) rules (1...\(rules.count))")
                    }
                    let rule = rules.remove(at: from)
                    rules.insert(rule, at: position - 1)
                    configuration.routes[index].rules = rules
                }
            }
        }
    }

    /// `base`, or `base-2`, `base-3`, ... when taken.
    ///
    /// Rule names must be unique across the configuration and never reused because buckets hash them, so `taken`
    /// holds every name ever used, not only the current ones.
    static func freshName(_ base: String, taken: Swift.Set<String>) -> String {
        guard taken.contains(base) else {
            return base
        }
        var counter = 2
        while taken.contains("\(base)-\(counter)") {
            counter += 1
        }
        return "\(base)-\(counter)"
    }
}
