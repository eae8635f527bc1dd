import ArgumentParser
import FicusCore
import FicusStore

/// `ficus flag`: named switches; a flag that is off disables every rule that names it.
struct FlagCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flag",
        abstract: "Turn flags on and off, and list them.",
        subcommands: [On.self, Off.self, Remove.self, List.self]
    )

    /// Sets flag `name` to `enabled`, creating it when it does not exist.
    ///
    /// Creating on first use lets an operator prepare a kill switch before the rules that name it.
    static func set(_ name: String, enabled: Bool, store: StoreOptions, change: ChangeOptions) async throws {
        try await ErrorReport.run {
            let opened = try await store.open()
            let action = enabled ? "flag.on" : "flag.off"
            try await opened.commitPrinting(change.changeAuthor(action: action)) { configuration in
                if let index = configuration.flags.firstIndex(where: { $0.name == name }) {
                    configuration.flags[index].enabled = enabled
                } else {
                    configuration.flags.append(FicusCore.Flag(name: name, enabled: enabled))
                }
            }
        }
    }
}

extension FlagCommand {
    /// `ficus flag on NAME`.
    struct On: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "on",
            abstract: "Turn a flag on (creating it if needed): rules that name it take effect."
        )

        @Argument(help: "The flag's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await FlagCommand.set(self.name, enabled: true, store: self.storeOptions, change: self.change)
        }
    }

    /// `ficus flag off NAME`.
    struct Off: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "off",
            abstract: "Turn a flag off (creating it if needed): every rule that names it stops matching."
        )

        @Argument(help: "The flag's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await FlagCommand.set(self.name, enabled: false, store: self.storeOptions, change: self.change)
        }
    }

    /// `ficus flag rm NAME`.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm", abstract: "Remove a flag that no rule names.")

        @Argument(help: "The flag's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "flag.rm")) { configuration in
                    configuration.flags.remove(at: try configuration.flagIndex(name))
                }
            }
        }
    }

    /// `ficus flag list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the flags.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                if self.output.json {
                    try Console.json(configuration.flags)
                    return
                }
                var table = TextTable("NAME", "STATE", "RULES")
                for flag in configuration.flags {
                    let rules = configuration.routes.flatMap { route in
                        route.rules.filter { $0.condition.flagNames.contains(flag.name) }.map(\.name)
                    }
                    table.append([
                        flag.name, flag.enabled ? "on" : "off", rules.isEmpty ? "-" : rules.joined(separator: ","),
                    ])
                }
                Console.out(table.rendered)
            }
        }
    }
}
