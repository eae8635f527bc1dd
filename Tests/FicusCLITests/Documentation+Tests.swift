import Foundation
import Testing

extension CLITests {
    /// docs/CLI.md documents only commands that exist.
    @Suite struct Documentation {
        /// The command paths of every synopsis line (an indented code line starting with `ficus`) of docs/CLI.md.
        ///
        /// The path is the words after `ficus` up to the first option, upper-case placeholder or punctuation:
        /// `ficus rule add ROUTE --to X` → `rule add`. Examples in the docs are fenced and start with `$`, so they
        /// are not synopses.
        static func documentedCommands() throws -> [[String]] {
            let text = try String(
                contentsOf: FicusProcess.repository.appendingPathComponent("docs/CLI.md"),
                encoding: .utf8
            )
            var commands: Set<[String]> = []
            var candidates: [Substring] = []
            for line in text.split(separator: "\n") where line.hasPrefix("    ") {
                candidates.append(line.drop(while: { $0 == " " }))
            }
            for candidate in candidates where candidate.hasPrefix("ficus ") || candidate == "ficus" {
                var path: [String] = []
                for word in candidate.split(separator: " ").dropFirst() {
                    guard word.allSatisfy({ $0.isLowercase || $0 == "-" }), !word.hasPrefix("-") else {
                        break
                    }
                    path.append(String(word))
                }
                commands.insert(path)
            }
            return commands.sorted { $0.joined(separator: " ") < $1.joined(separator: " ") }
        }

        @Test func everyDocumentedCommandExists() throws {
            let sandbox = try Sandbox()
            let commands = try Self.documentedCommands()
            #expect(commands.count >= 30, "found only \(commands)")
            for command in commands {
                let result = try sandbox.bare(command + ["--help"])
                #expect(result.status == 0, "ficus \(command.joined(separator: " ")) --help: \(result)")
                #expect(
                    result.stdout.contains("USAGE: ficus \(command.joined(separator: " "))"), "\(command): \(result)")
            }
        }

        @Test func everyCommandIsDocumented() throws {
            let documented = Set(try Self.documentedCommands().map { $0.joined(separator: " ") })
            let sandbox = try Sandbox()
            let help = try sandbox.bare(["--help"]).stdout
            let subcommands = help.split(separator: "\n")
                .drop(while: { !$0.hasPrefix("SUBCOMMANDS:") }).dropFirst()
                .prefix(while: { !$0.isEmpty })
                .filter { $0.hasPrefix("  ") && !$0.hasPrefix("   ") }
                .compactMap { $0.split(separator: " ").first.map(String.init) }
            #expect(subcommands.count >= 17)
            let documentedFirstWords = Set(documented.compactMap { $0.split(separator: " ").first.map(String.init) })
            for subcommand in subcommands where subcommand.first?.isLowercase == true {
                #expect(documentedFirstWords.contains(subcommand), "ficus \(subcommand) is not in docs/CLI.md")
            }
        }
    }
}
