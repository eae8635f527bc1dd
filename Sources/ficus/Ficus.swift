import ArgumentParser
import Foundation

@main
struct Ficus: AsyncParsableCommand {
    /// The release, for `--version` and the `ficus/VERSION` user agent of the probes Ficus sends itself.
    static let version = "0.15.0"

    static let configuration = CommandConfiguration(
        commandName: "ficus",
        abstract:
            "A strangler-fig migration proxy: route, shadow and cut over between a legacy monolith and new services.",
        discussion: "Exit status: 0 ok, 1 error, 2 usage, 3 validation failed.",
        version: Ficus.version,
        subcommands: [
            Serve.self,
            InitCommand.self,
            StatusCommand.self,
            UpstreamCommand.self,
            RouteCommand.self,
            RuleCommand.self,
            SegmentCommand.self,
            FlagCommand.self,
            IdentityCommand.self,
            ShadowCommand.self,
            FlipCommand.self,
            CanaryCommand.self,
            BlueGreenCommand.self,
            KillCommand.self,
            UnkillCommand.self,
            RollbackCommand.self,
            HistoryCommand.self,
            DiffCommand.self,
            ExplainCommand.self,
            ApplyCommand.self,
            ExportCommand.self,
            ValidateCommand.self,
            Demo.self,
            ReportCommand.self,
            StoreCommand.self,
        ]
    )

    /// Parses and runs a command, mapping argument-parser's usage errors to exit status 2.
    ///
    /// argument-parser exits 64 (EX_USAGE) on bad arguments; docs/CLI.md promises 2, as most Unix tools use.
    static func main() async {
        do {
            var command = try Self.parseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            let code = Self.exitCode(for: error)
            if code.rawValue == 64 {
                FileHandle.standardError.write(Data((Self.fullMessage(for: error) + "\n").utf8))
                Foundation.exit(ExitStatus.usage)
            }
            Self.exit(withError: error)
        }
    }
}
