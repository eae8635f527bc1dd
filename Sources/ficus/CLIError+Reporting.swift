import ArgumentParser
import FicusCore
import FicusRules
import FicusRuntime
import FicusStore

extension CLIError: CustomStringConvertible {
    var description: String {
        switch self {
        case .notFound(let kind, let name, let known):
            return NotFound(kind: kind, name: name, known: known).description
        case .alreadyExists(let kind, let name, let hint):
            return "\(kind) '\(name)' already exists" + (hint.isEmpty ? "" : "; \(hint)")
        case .usage(let message):
            return message
        case .storeMissing(let path):
            return "no store at '\(path)': run 'ficus init --store \(path)' first, or pass --store / set FICUS_STORE"
        case .rulesFiles(let problems):
            return problems.map(\.description).joined(separator: "\n")
        case .invalidConfiguration(let messages):
            let headline =
                "invalid configuration (\(messages.count) error\(messages.count == 1 ? "" : "s")), nothing changed"
            return ([headline] + messages.map { "  - \($0)" }).joined(separator: "\n")
        case .failed(let message):
            return message
        }
    }
}

/// The exit codes of every command.
///
/// Scripts branch on these, so they are part of the interface documented in docs/CLI.md.
enum ExitStatus {
    static let ok: Int32 = 0
    static let error: Int32 = 1
    static let usage: Int32 = 2
    static let invalid: Int32 = 3
}

/// Maps any error a command throws to the message printed on standard error and the exit code.
///
/// The one place that knows how errors look to a person; commands only throw.
enum ErrorReport {
    static func describe(_ error: any Error) -> (message: String, status: Int32) {
        switch error {
        case let error as CLIError:
            switch error {
            case .usage:
                return ("error: \(error)", ExitStatus.usage)
            case .rulesFiles(let problems):
                let count = "\(problems.count) problem\(problems.count == 1 ? "" : "s")"
                return ("\(error)\nerror: \(count) in the rules files; nothing changed", ExitStatus.invalid)
            case .invalidConfiguration:
                return ("error: \(error)", ExitStatus.invalid)
            case .notFound, .alreadyExists, .storeMissing, .failed:
                return ("error: \(error)", ExitStatus.error)
            }
        case let error as RulesFilesError:
            // The loader's own error reads exactly as the command's: the same lines, count and exit code.
            return Self.describe(CLIError.rulesFiles(error.problems))
        case let error as ConfigurationInvalid:
            let messages = error.errors.map(\.description)
            return ("error: \(CLIError.invalidConfiguration(messages))", ExitStatus.invalid)
        case let error as StoreLocationError:
            // A --store or FICUS_STORE that names no store is a usage error; the text shown has no password.
            return ("error: \(error)", ExitStatus.usage)
        case let error as StoreError:
            if case .ruleNameRetired = error {
                return ("error: \(error)", ExitStatus.invalid)
            }
            return ("error: \(error)", ExitStatus.error)
        default:
            return ("error: \(error)", ExitStatus.error)
        }
    }

    /// Runs a command body, printing any error and turning it into the matching exit code.
    ///
    /// Every command's `run()` goes through here; `ExitCode` and argument-parser's own errors pass through untouched.
    static func run(_ body: () async throws -> Void) async throws {
        do {
            try await body()
        } catch let error as ExitCode {
            throw error
        } catch let error as CleanExit {
            throw error
        } catch {
            let (message, status) = ErrorReport.describe(error)
            Console.err(message)
            throw ExitCode(status)
        }
    }
}
