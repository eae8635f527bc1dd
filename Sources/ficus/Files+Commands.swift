import ArgumentParser
import FicusCore
import FicusRules
import FicusStore
import Foundation

/// `ficus apply FILE|DIR...`: make the store hold what the rules files say, as one revision.
struct ApplyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "apply",
        abstract: "Apply rules files as one revision, after printing the plan.",
        discussion: """
            The files are the whole desired configuration: objects absent from them are removed (--merge adds and \
            changes only). Everything is validated first; the plan lists what is added (+), changed (~) and removed \
            (-). 'killed' is kept as the store has it unless a file sets it. The plan is applied only if the store \
            is still at the revision it was made against (--expect-revision N makes that explicit for a plan made \
            earlier with --dry-run).
            """
    )

    @Argument(help: ArgumentHelp("Rules files, or directories of *.yaml files.", valueName: "file|dir"))
    var paths: [String]

    @ArgumentParser.Flag(name: .customLong("dry-run"), help: "Print the plan and change nothing.")
    var dryRun = false

    @ArgumentParser.Flag(help: "Only add and change objects; keep those the files do not mention.")
    var merge = false

    @Option(
        name: .customLong("expect-revision"),
        help: ArgumentHelp("Refuse unless the store is at this revision.", valueName: "n"))
    var expectRevision: Int?

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func validate() throws {
        guard !self.paths.isEmpty else {
            throw ArgumentParser.ValidationError("give at least one rules file or directory")
        }
    }

    func run() async throws {
        try await ErrorReport.run {
            let store = try await self.storeOptions.open()
            let files = try RulesFiles.load(self.paths)
            if !self.merge {
                try files.validate(files.standalone)
            }
            let (base, baseRevision) = try await store.latestConfiguration()
            if let expected = self.expectRevision, expected != baseRevision {
                throw StoreError.revisionMismatch(expected: expected, actual: baseRevision)
            }
            var desired: Configuration
            if self.merge {
                desired = base
                ApplyCommand.merge(files.configuration, into: &desired)
                desired.killed = files.killed ?? base.killed
                desired.identity = files.configuration.identity ?? base.identity
                try files.validate(desired)
            } else {
                desired = files.configuration
                desired.killed = files.killed ?? base.killed
            }
            try ApplyCommand.refuseRetiredRuleNames(
                desired,
                base: base,
                everUsed: try await store.ruleNamesEverUsed(),
                files: files
            )
            let plan = RevisionDiff(from: base, to: desired)
            Console.out("Plan against revision \(baseRevision) (\(files.files.joined(separator: ", "))):")
            guard !plan.isEmpty else {
                Console.out("No changes: the store already holds this configuration.")
                return
            }
            for line in plan.lines {
                Console.out("  " + line)
            }
            Console.out("Plan: \(plan.tally).")
            if self.dryRun {
                Console.out("Dry run: nothing applied. To apply exactly this plan: --expect-revision \(baseRevision)")
                return
            }
            let final = desired
            try await store.commitPrinting(
                self.change.changeAuthor(action: "apply"),
                expectRevision: baseRevision
            ) { configuration in
                configuration = final
            }
        }
    }

    /// Adds or replaces every object of `files` in `configuration`, by name.
    static func merge(_ files: Configuration, into configuration: inout Configuration) {
        func upsert<Object>(_ objects: [Object], into list: inout [Object], name: (Object) -> String) {
            for object in objects {
                if let index = list.firstIndex(where: { name($0) == name(object) }) {
                    list[index] = object
                } else {
                    list.append(object)
                }
            }
        }
        upsert(files.upstreams, into: &configuration.upstreams, name: \.name)
        upsert(files.segments, into: &configuration.segments, name: \.name)
        upsert(files.flags, into: &configuration.flags, name: \.name)
        for route in files.routes {
            if let index = configuration.routes.firstIndex(named: route.name) {
                configuration.routes[index] = route
            } else {
                configuration.routes.append(route)
            }
        }
    }
}

/// `ficus validate FILE|DIR...`: check rules files without touching a store.
struct ValidateCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "validate",
        abstract: "Check rules files: YAML syntax, fields, and the whole configuration they describe.",
        discussion: "Exit status 3 when anything is wrong; every problem is printed as FILE:LINE:COLUMN: message."
    )

    @Argument(help: ArgumentHelp("Rules files, or directories of *.yaml files.", valueName: "file|dir"))
    var paths: [String]

    func validate() throws {
        guard !self.paths.isEmpty else {
            throw ArgumentParser.ValidationError("give at least one rules file or directory")
        }
    }

    func run() async throws {
        try await ErrorReport.run {
            let files = try RulesFiles.load(self.paths)
            let configuration = files.standalone
            try files.validate(configuration)
            _ = try RoutingTable(configuration: configuration, revision: 0)
            let ruleCount = configuration.routes.reduce(0) { $0 + $1.rules.count }
            Console.out(
                "ok: \(files.files.count) file\(files.files.count == 1 ? "" : "s"), "
                    + "\(configuration.upstreams.count) upstreams, \(configuration.routes.count) routes, "
                    + "\(ruleCount) rules, \(configuration.segments.count) segments, \(configuration.flags.count) flags"
            )
        }
    }
}

/// `ficus export [--revision N]`: the configuration as a rules file.
struct ExportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "export",
        abstract: "Print a revision as YAML that 'ficus apply' turns back into the same configuration."
    )

    @Option(help: ArgumentHelp("The revision to export (default: the newest).", valueName: "n"))
    var revision: Int?

    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        try await ErrorReport.run {
            let store = try await self.storeOptions.open()
            let stored: StoredRevision
            if let number = self.revision {
                stored = try await store.revision(number)
            } else {
                stored = try await store.requireLatest()
            }
            let time = ISO8601DateFormatter().string(from: stored.createdAt)
            let header = [
                "ficus export: revision \(stored.number) by \(stored.author) at \(time)",
                "Apply with: ficus apply FILE (the file is the whole configuration)",
            ]
            Console.out(try stored.configuration.yamlDocument(header: header))
        }
    }
}

/// `ficus init [--from FILE]`: create the store.
struct InitCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "init",
        abstract: "Create the store, optionally with a first revision from rules files.",
        discussion:
            "The only command that creates a store file; every other command refuses a path that does not exist."
    )

    @Option(
        parsing: .singleValue,
        help: ArgumentHelp("Rules file or directory for the first revision.", valueName: "file|dir"))
    var from: [String] = []

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func run() async throws {
        try await ErrorReport.run {
            var files: RulesFiles?
            if !self.from.isEmpty {
                let loaded = try RulesFiles.load(self.from)
                try loaded.validate(loaded.standalone)
                files = loaded
            }
            let path = self.storeOptions.shown
            // An SQLite file is created here or was there; a PostgreSQL schema is created or checked by the open.
            var empty = "store '\(path)' is ready (empty schema)"
            if case .sqlite(let file) = try StoreLocation(parsing: self.storeOptions.path) {
                let existed = FileManager.default.fileExists(atPath: file)
                empty = existed ? "store '\(path)' exists and is empty" : "created store '\(path)' (empty)"
            }
            let store = try await self.storeOptions.open(creating: true)
            let latest = try await store.latest()
            guard let files else {
                if let latest {
                    Console.err("store '\(path)' already exists")
                    Console.out("revision \(latest.number)")
                } else {
                    Console.err(empty)
                    Console.out("revision 0")
                }
                return
            }
            if let latest {
                throw CLIError.failed(
                    "store '\(path)' already holds revision \(latest.number): use 'ficus apply' to change it"
                )
            }
            let configuration = files.standalone
            try await store.commitPrinting(self.change.changeAuthor(action: "init"), expectRevision: 0) { current in
                current = configuration
            }
        }
    }
}
