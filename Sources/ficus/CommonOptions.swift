import ArgumentParser
import FicusCore
import FicusStore
import Foundation

/// `--store PATH`, shared by every command that reads or writes the store.
///
/// The CLI is the only place that reads the environment: `FICUS_STORE` is resolved here and nowhere else.
struct StoreOptions: ParsableArguments {
    @Option(
        name: .long,
        help: ArgumentHelp("The store file (default: $FICUS_STORE, else ./ficus.sqlite).", valueName: "path"))
    var store: String?

    /// The store path after the option, the environment and the default.
    var path: String {
        self.store ?? ProcessInfo.processInfo.environment["FICUS_STORE"] ?? "./ficus.sqlite"
    }

    /// Opens the store; only `ficus init` may create the file.
    ///
    /// A mistyped `--store` must fail loudly instead of silently creating an empty store that every later command
    /// would then read.
    func open(creating: Bool = false) throws -> any ConfigurationStore {
        let path = self.path
        if !creating, !FileManager.default.fileExists(atPath: path) {
            throw CLIError.storeMissing(path: path)
        }
        return try SQLiteConfigurationStore(path: path)
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
