import ArgumentParser
import FicusCore
import FicusStore
import Foundation

/// `--store PATH|postgres://…`, shared by every command that reads or writes the store.
///
/// The CLI is the only place that reads the environment: `FICUS_STORE` is resolved here and nowhere else.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp(
            "The store: an SQLite file (PATH or sqlite:PATH) or postgres://USER@HOST:PORT/DB?sslmode=… "
                + "(default: $FICUS_STORE, else ./ficus.sqlite).",
            valueName: "store"
        )
    )
    var store: String?

    /// The store text after the option, the environment and the default.
    var path: String {
        Self.text(option: self.store)
    }

    /// `option`, else `FICUS_STORE`, else `./ficus.sqlite`; shared with `ficus serve`, whose option is its own.
    static func text(option: String?) -> String {
        option ?? ProcessInfo.processInfo.environment["FICUS_STORE"] ?? "./ficus.sqlite"
    }

    /// The store as messages may name it: the path, or the URL without its password.
    var shown: String {
        (try? StoreLocation(parsing: self.path).description) ?? PostgresStoreURL.redacting(self.path)
    }

    /// Opens the store; only `ficus init` may create it (the SQLite file, or the schema in a PostgreSQL database).
    ///
    /// A mistyped `--store` must fail loudly instead of silently creating an empty store that every later command
    /// would then read.
    func open(creating: Bool = false) async throws -> any StoreBackend {
        try await Self.open(self.path, creating: creating)
    }

    /// Opens the store `text` names (see `open(creating:)`), with `telemetry` limits for an SQLite store and
    /// `keepConnections` idle PostgreSQL connections kept between operations (`ficus serve`, which closes the store).
    static func open(
        _ text: String,
        creating: Bool,
        telemetry: TelemetryLimits = TelemetryLimits(),
        keepConnections: Int = 0
    ) async throws -> any StoreBackend {
        var location = try StoreLocation(parsing: text)
        if case .sqlite(let path) = location, !creating, !FileManager.default.fileExists(atPath: path) {
            throw CLIError.storeMissing(path: path)
        }
        if case .postgres(let url) = location {
            // PGPASSWORD and the password file, as libpq reads them (docs/FLEET.md, "Credentials").
            location = .postgres(try url.resolvingPassword(environment: ProcessInfo.processInfo.environment))
        }
        return try await StoreFactory.open(
            location, creating: creating, telemetry: telemetry, keepConnections: keepConnections)
    }
}

/// `--reason` and `--author`, shared by every command that changes the configuration.
///
/// Both go into the revision and the audit log; the author defaults to `$USER` so that the log always says who.
struct ChangeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Why the change is made; stored with the revision and in the audit log.", valueName: "text"))
    var reason: String = ""

    @Option(help: ArgumentHelp("Who makes the change (default: $USER).", valueName: "name"))
    var author: String?

    /// The author and reason for a change made by `action` (`flip`, `route.add`, ...).
    func changeAuthor(action: String) -> ChangeAuthor {
        let environment = ProcessInfo.processInfo.environment
        let author = self.author ?? environment["USER"] ?? environment["LOGNAME"] ?? "unknown"
        return ChangeAuthor(author: author, reason: self.reason, action: action)
    }
}

/// `--json`, shared by every read command.
///
/// Tables are for people; JSON is for scripts and is the stable interface.
struct OutputOptions: ParsableArguments {
    @ArgumentParser.Flag(help: "Print JSON instead of a table.")
    var json = false
}
