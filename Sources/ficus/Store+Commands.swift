import ArgumentParser
import FicusStore
import Foundation

/// `ficus store`: whole-store operations.
struct StoreCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "Whole-store operations: copy a store's history to another store.",
        subcommands: [StoreCopyCommand.self]
    )
}

/// `ficus store copy --from SOURCE --to DESTINATION`: moves a team from SQLite to PostgreSQL (or back) with its
/// whole history (docs/FLEET.md, "Moving a store").
struct StoreCopyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "copy",
        abstract: "Copy every revision, the audit log, rule names, canaries and blue-green states to a new store.",
        discussion: """
            The destination (an SQLite path or postgres://…) is created when missing and must hold no revision. \
            Numbers, authors, reasons and times are kept, so history, diff, rollback and audit read the same on \
            both; the copy is read back and compared before success is reported. Telemetry, heartbeats and canary \
            leases are not copied.
            """
    )

    @Option(help: ArgumentHelp("The store to copy: an SQLite file or postgres://….", valueName: "store"))
    var from: String

    @Option(help: ArgumentHelp("The new store: an SQLite file or postgres://…, empty or missing.", valueName: "store"))
    var to: String

    func run() async throws {
        try await ErrorReport.run {
            let sourceText = try StoreLocation(parsing: self.from).description
            let destinationText = try StoreLocation(parsing: self.to).description
            guard sourceText != destinationText else {
                throw CLIError.usage("--from and --to name the same store '\(sourceText)'")
            }
            let source = try await StoreOptions.open(self.from, creating: false)
            let history = try await source.exportHistory()
            guard !history.revisions.isEmpty else {
                throw CLIError.failed("store '\(sourceText)' holds no revision: there is nothing to copy")
            }
            let destination = try await StoreOptions.open(self.to, creating: true)
            try await destination.importHistory(history)
            // Read back: what the destination serves and lists must be what the source held.
            let copied = try await destination.exportHistory()
            guard copied.revisions.map(\.number) == history.revisions.map(\.number),
                copied.revisions.map(\.configuration) == history.revisions.map(\.configuration),
                copied.audit.map(\.id) == history.audit.map(\.id),
                copied.ruleNames == history.ruleNames,
                copied.canaries.map(\.route) == history.canaries.map(\.route),
                copied.blueGreen.map(\.upstream) == history.blueGreen.map(\.upstream)
            else {
                throw CLIError.failed(
                    "the copy in '\(destinationText)' does not read back as '\(sourceText)': do not use it"
                )
            }
            Console.err("copied \(history.counts) from '\(sourceText)' to '\(destinationText)'")
            Console.out("revision \(history.revisions.count)")
        }
    }
}
