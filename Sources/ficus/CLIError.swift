import FicusRules

/// Everything a `ficus` command can fail with, as values.
///
/// Commands throw these (or store and validation errors); `CLIError+Reporting.swift` is the one place that turns any
/// error into a message and an exit code, so every command fails the same way.
enum CLIError: Error, Sendable, Equatable {
    /// A named object does not exist: `kind` is `route`, `upstream`, ...; `known` lists what does exist.
    case notFound(kind: String, name: String, known: [String])

    /// An object with that name already exists.
    case alreadyExists(kind: String, name: String, hint: String)

    /// The arguments are wrong in a way the parser cannot see (exit 2).
    case usage(String)

    /// There is no store file at the path and the command does not create one.
    case storeMissing(path: String)

    /// Rules files could not be read, parsed or decoded, or describe an invalid configuration (exit 3).
    case rulesFiles([RulesProblem])

    /// A configuration change would be invalid; each message already names its object and field (exit 3).
    case invalidConfiguration([String])

    /// Anything else, with a message a person can act on.
    case failed(String)
}
