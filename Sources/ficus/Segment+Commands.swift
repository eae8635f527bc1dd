import ArgumentParser
import FicusCore
import FicusStore
import Foundation

/// `ficus segment`: named groups of requests (beta users, internal network) that rules can name.
struct SegmentCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "segment",
        abstract: "Add, remove, list and show segments.",
        subcommands: [Add.self, Remove.self, List.self, Show.self]
    )
}

extension SegmentCommand {
    /// `ficus segment add NAME --header K=V ...`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a segment: constraints that must all hold.",
            discussion: """
                --match takes any predicate as 'ATTRIBUTE OP VALUE[,VALUE...]', e.g. 'header:X-Plan in gold,platinum', \
                'header:X-App-Version semver_gte 2.3.0', 'cookie:beta exists'. Operators: \
                \(FicusCore.Predicate.Operator.allCases.map(\.rawValue).joined(separator: ", ")).
                """
        )

        @Argument(help: "The segment's name.")
        var name: String

        @Option(help: ArgumentHelp("A request header equals a value. Repeatable.", valueName: "name=value"))
        var header: [String] = []

        @Option(help: ArgumentHelp("A cookie equals a value. Repeatable.", valueName: "name=value"))
        var cookie: [String] = []

        @Option(help: ArgumentHelp("A query parameter equals a value. Repeatable.", valueName: "name=value"))
        var query: [String] = []

        @Option(help: ArgumentHelp("The client address is in this CIDR; repeat for any of several.", valueName: "cidr"))
        var ip: [String] = []

        @Option(help: ArgumentHelp("An attribute is one of a list of ids.", valueName: "attribute=id,id,..."))
        var ids: [String] = []

        @Option(help: ArgumentHelp("Any predicate. Repeatable.", valueName: "'attribute op values'"))
        var match: [String] = []

        @ArgumentParser.Flag(name: .customLong("case-insensitive"), help: "Compare text without regard to ASCII case.")
        var caseInsensitive = false

        @ArgumentParser.Flag(help: "Replace the segment if it exists.")
        var replace = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let segment = Segment(name: self.name, constraints: try self.constraints())
                let replace = self.replace
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "segment.add")) { configuration in
                    if let index = configuration.segments.firstIndex(where: { $0.name == segment.name }) {
                        guard replace else {
                            throw CLIError.alreadyExists(
                                kind: "segment", name: segment.name, hint: "add --replace to replace it")
                        }
                        configuration.segments[index] = segment
                    } else {
                        configuration.segments.append(segment)
                    }
                }
            }
        }

        func constraints() throws -> [FicusCore.Predicate] {
            let folding = self.caseInsensitive
            var predicates: [FicusCore.Predicate] = []
            for text in self.header {
                let (name, value) = try ArgumentText.pair(text, option: "--header")
                predicates.append(FicusCore.Predicate(.header(name), .equals, [value], caseInsensitive: folding))
            }
            for text in self.cookie {
                let (name, value) = try ArgumentText.pair(text, option: "--cookie")
                predicates.append(FicusCore.Predicate(.cookie(name), .equals, [value], caseInsensitive: folding))
            }
            for text in self.query {
                let (name, value) = try ArgumentText.pair(text, option: "--query")
                predicates.append(FicusCore.Predicate(.query(name), .equals, [value], caseInsensitive: folding))
            }
            if !self.ip.isEmpty {
                predicates.append(FicusCore.Predicate(.clientIP, .in, self.ip))
            }
            for text in self.ids {
                let (attribute, list) = try ArgumentText.pair(text, option: "--ids")
                let values = list.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
                let parsed = try ArgumentText.attribute(attribute, option: "--ids")
                predicates.append(
                    FicusCore.Predicate(parsed, .in, values.filter { !$0.isEmpty }, caseInsensitive: folding))
            }
            for text in self.match {
                predicates.append(try SegmentCommand.predicate(text, caseInsensitive: folding))
            }
            guard !predicates.isEmpty else {
                throw CLIError.usage("a segment needs constraints: --header, --cookie, --query, --ip, --ids or --match")
            }
            return predicates
        }
    }

    /// `ficus segment rm NAME`.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove a segment that no rule names."
        )

        @Argument(help: "The segment's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "segment.rm")) { configuration in
                    configuration.segments.remove(at: try configuration.segmentIndex(name))
                }
            }
        }
    }

    /// `ficus segment list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the segments.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                if self.output.json {
                    try Console.json(configuration.segments)
                    return
                }
                var table = TextTable("NAME", "CONSTRAINTS")
                for segment in configuration.segments {
                    table.append([segment.name, segment.constraints.map(\.description).joined(separator: " and ")])
                }
                Console.out(table.rendered)
            }
        }
    }

    /// `ficus segment show NAME`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show a segment's constraints and the rules that name it."
        )

        @Argument(help: "The segment's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                let segment = configuration.segments[try configuration.segmentIndex(self.name)]
                if self.output.json {
                    try Console.json(segment)
                    return
                }
                var lines = ["segment '\(segment.name)' (every constraint must hold)"]
                for (index, constraint) in segment.constraints.enumerated() {
                    lines.append("  \(index + 1). \(constraint)")
                }
                let users = configuration.routes.flatMap { route in
                    route.rules.filter { $0.condition.mentions(segment: segment.name) }.map {
                        "route '\(route.name)' rule '\($0.name)'"
                    }
                }
                lines.append("  used by: " + (users.isEmpty ? "no rule" : users.joined(separator: ", ")))
                Console.out(lines.joined(separator: "\n"))
            }
        }
    }

    /// Parses `ATTRIBUTE OP [VALUE[,VALUE...]]`.
    static func predicate(_ text: String, caseInsensitive: Bool) throws -> FicusCore.Predicate {
        let words = text.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true).map(String.init)
        let operators = FicusCore.Predicate.Operator.allCases.map(\.rawValue).joined(separator: ", ")
        guard words.count >= 2 else {
            throw CLIError.usage("--match '\(text)': expected 'ATTRIBUTE OP VALUE[,VALUE...]'")
        }
        let attribute = try ArgumentText.attribute(words[0], option: "--match")
        guard let op = FicusCore.Predicate.Operator(rawValue: words[1]) else {
            throw CLIError.usage("--match '\(text)': unknown operator '\(words[1])' (one of \(operators))")
        }
        var values: [String] = []
        if words.count == 3 {
            values =
                op == .semverRange || op == .regex
                ? [words[2]]
                : words[2].split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        }
        return FicusCore.Predicate(attribute, op, values, caseInsensitive: caseInsensitive)
    }
}

extension Condition {
    /// Whether the condition names segment `name` anywhere.
    func mentions(segment name: String) -> Bool {
        switch self {
        case .all(let conditions), .any(let conditions):
            return conditions.contains { $0.mentions(segment: name) }
        case .not(let condition):
            return condition.mentions(segment: name)
        case .segment(let segment):
            return segment == name
        case .flag, .version, .percentage, .method, .match:
            return false
        }
    }
}
