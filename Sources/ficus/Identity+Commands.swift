import ArgumentParser
import FicusCore
import FicusStore

/// `ficus identity`: what identifies a user store-wide, for every sticky rule, canary and shadow sample that names
/// no attribute of its own.
struct IdentityCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "identity",
        abstract: "Set what identifies a user for sticky rules, canaries and shadow sampling that name nothing.",
        discussion: """
            The default is the client address (behind --trusted-proxy, the right-most untrusted X-Forwarded-For \
            address). Behind a load balancer that Ficus does not trust every request has one address, so a canary \
            cannot split: set a header, cookie or query parameter that differs per user. One revision.
            """,
        subcommands: [SetIdentity.self, Clear.self, Show.self]
    )
}

extension IdentityCommand {
    /// `ficus identity set header:NAME|cookie:NAME|query:NAME|client_ip`.
    struct SetIdentity: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set", abstract: "Set the store-wide identity (one revision).")

        @Argument(help: ArgumentHelp("What identifies a user.", valueName: "header:NAME|cookie:NAME|query:NAME|client_ip"))
        var attribute: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let attribute = try ArgumentText.attribute(self.attribute, option: "identity")
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "identity.set")) { configuration in
                    configuration.identity = attribute
                }
            }
        }
    }

    /// `ficus identity clear`: back to the client address.
    struct Clear: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "clear", abstract: "Go back to the client address as the identity (one revision).")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "identity.clear")) { configuration in
                    configuration.identity = nil
                }
            }
        }
    }

    /// `ficus identity show`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show", abstract: "Print the store-wide identity.")

        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let configuration = try await store.latest()?.configuration ?? Configuration()
                Console.out(configuration.identity?.description ?? "client_ip (the default)")
            }
        }
    }
}
