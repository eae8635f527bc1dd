import ArgumentParser
import FicusCore
import FicusStore

/// `ficus upstream`: the named address pools that routes and rules send traffic to.
struct UpstreamCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "upstream",
        abstract: "Add, change, remove and list upstreams.",
        subcommands: [Add.self, Update.self, Remove.self, List.self, Show.self]
    )
}

extension UpstreamCommand {
    /// `ficus upstream add NAME ADDR [ADDR...]`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add an upstream: a plain pool of addresses, or blue and green slots.",
            discussion: "Either ADDR... or --blue/--green (with --active) for a blue-green upstream."
        )

        @Argument(help: "The upstream's name.")
        var name: String

        @Argument(help: ArgumentHelp("Its addresses (round robin).", valueName: "host:port"))
        var addresses: [String] = []

        @Option(parsing: .upToNextOption, help: ArgumentHelp("Addresses of the blue slot.", valueName: "host:port"))
        var blue: [String] = []

        @Option(parsing: .upToNextOption, help: ArgumentHelp("Addresses of the green slot.", valueName: "host:port"))
        var green: [String] = []

        @Option(help: "The slot that receives traffic (blue or green).")
        var active: BlueGreenSlots.Slot?

        @OptionGroup(title: "Balancing, outlier ejection and limits") var resilience: UpstreamResilienceOptions
        @OptionGroup var tls: UpstreamTLSOptions
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                var built = try UpstreamCommand.build(
                    name: self.name,
                    addresses: self.addresses,
                    blue: self.blue,
                    green: self.green,
                    active: self.active
                )
                try self.resilience.apply(to: &built)
                self.tls.apply(to: &built)
                let upstream = built
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "upstream.add")) { configuration in
                    guard configuration.upstream(named: upstream.name) == nil else {
                        throw CLIError.alreadyExists(
                            kind: "upstream",
                            name: upstream.name,
                            hint: "use 'ficus upstream set' to change its addresses"
                        )
                    }
                    configuration.upstreams.append(upstream)
                }
            }
        }
    }

    /// `ficus upstream set NAME ADDR [ADDR...]`.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Replace an upstream's addresses, slots, balancing, outlier ejection or limits.",
            discussion: """
                ADDR... replaces the addresses (of the active slot, for a blue-green upstream); 'HOST:PORT weight=N' \
                gives an address a weight. --blue, --green and --active change the slots and turn a plain upstream \
                into a blue-green one. --balance, --outlier... and --max-... change only what they name.
                """
        )

        @Argument(help: "The upstream's name.")
        var name: String

        @Argument(help: ArgumentHelp("Its new addresses.", valueName: "host:port"))
        var addresses: [String] = []

        @Option(parsing: .upToNextOption, help: ArgumentHelp("New addresses of the blue slot.", valueName: "host:port"))
        var blue: [String] = []

        @Option(
            parsing: .upToNextOption, help: ArgumentHelp("New addresses of the green slot.", valueName: "host:port"))
        var green: [String] = []

        @Option(help: "The slot that receives traffic (blue or green).")
        var active: BlueGreenSlots.Slot?

        @ArgumentParser.Flag(
            name: .customLong("no-slots"), help: "Drop the blue/green slots; the given addresses become the pool.")
        var noSlots = false

        @OptionGroup(title: "Balancing, outlier ejection and limits") var resilience: UpstreamResilienceOptions
        @OptionGroup var tls: UpstreamTLSOptions
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let addresses = try ArgumentText.endpoints(self.addresses, option: "ADDR")
                let blue = try ArgumentText.endpoints(self.blue, option: "--blue")
                let green = try ArgumentText.endpoints(self.green, option: "--green")
                let active = self.active
                let noSlots = self.noSlots
                let resilience = self.resilience
                let tls = self.tls
                guard
                    !addresses.isEmpty || !blue.isEmpty || !green.isEmpty || active != nil || !resilience.isEmpty
                        || !tls.isEmpty
                else {
                    throw CLIError.usage(
                        "nothing to set: give addresses, --blue, --green, --active, --balance, --outlier..., --max-..., "
                            + "--health-check..., --ca-file, --client-cert or --client-key")
                }
                if noSlots, addresses.isEmpty {
                    throw CLIError.usage("--no-slots needs the addresses of the plain pool")
                }
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "upstream.set")) { configuration in
                    let index = try configuration.upstreamIndex(name)
                    var upstream = configuration.upstreams[index]
                    if noSlots {
                        upstream.slots = nil
                        upstream.addresses = addresses
                    } else if !blue.isEmpty || !green.isEmpty || active != nil {
                        var slots =
                            upstream.slots
                            ?? BlueGreenSlots(blue: upstream.addresses, green: [], active: .blue)
                        if !blue.isEmpty {
                            slots.blue = blue
                        }
                        if !green.isEmpty {
                            slots.green = green
                        }
                        if let active {
                            slots.active = active
                        }
                        upstream.slots = slots
                        if !addresses.isEmpty {
                            upstream.addresses = addresses
                        }
                    } else if !addresses.isEmpty {
                        upstream.addresses = addresses
                    }
                    try resilience.apply(to: &upstream)
                    tls.apply(to: &upstream)
                    configuration.upstreams[index] = upstream
                }
            }
        }
    }

    /// `ficus upstream rm NAME`.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rm",
            abstract: "Remove an upstream that no route, rule or rewrite names."
        )

        @Argument(help: "The upstream's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "upstream.rm")) { configuration in
                    let index = try configuration.upstreamIndex(name)
                    let references = configuration.references(toUpstream: name)
                    guard references.isEmpty else {
                        throw CLIError.failed(
                            "upstream '\(name)' is still used by \(references.joined(separator: "; ")): "
                                + "change those first"
                        )
                    }
                    configuration.upstreams.remove(at: index)
                }
            }
        }
    }

    /// `ficus upstream list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the upstreams.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                if self.output.json {
                    try Console.json(configuration.upstreams)
                    return
                }
                var table = TextTable("NAME", "ADDRESSES", "SLOTS", "TLS")
                for upstream in configuration.upstreams {
                    var slots = "-"
                    if let value = upstream.slots {
                        slots =
                            "active \(value.active.rawValue); blue \(UpstreamCommand.list(value.blue)); "
                            + "green \(UpstreamCommand.list(value.green))"
                    }
                    table.append(
                        [upstream.name, UpstreamCommand.list(upstream.addresses), slots, UpstreamCommand.tls(upstream)]
                    )
                }
                Console.out(table.rendered)
            }
        }
    }

    /// An upstream from `add`'s arguments: plain when only addresses are given, blue-green otherwise.
    static func build(
        name: String,
        addresses: [String],
        blue: [String],
        green: [String],
        active: BlueGreenSlots.Slot?
    ) throws -> Upstream {
        let plain = try ArgumentText.endpoints(addresses, option: "ADDR")
        let blue = try ArgumentText.endpoints(blue, option: "--blue")
        let green = try ArgumentText.endpoints(green, option: "--green")
        if blue.isEmpty, green.isEmpty {
            guard !plain.isEmpty else {
                throw CLIError.usage("upstream '\(name)' needs addresses (HOST:PORT...) or --blue/--green slots")
            }
            guard active == nil else {
                throw CLIError.usage("--active needs --blue or --green")
            }
            return Upstream(name: name, addresses: plain)
        }
        guard plain.isEmpty else {
            throw CLIError.usage("give either addresses or --blue/--green, not both")
        }
        let activeSlot = active ?? (blue.isEmpty ? .green : .blue)
        return Upstream(name: name, slots: BlueGreenSlots(blue: blue, green: green, active: activeSlot))
    }

    /// The TLS files of an upstream as `upstream list` shows them: `ca=FILE cert=FILE key=FILE`, or `-`.
    static func tls(_ upstream: Upstream) -> String {
        let parts = [("ca", upstream.caFile), ("cert", upstream.clientCert), ("key", upstream.clientKey)]
            .compactMap { name, value in value.map { "\(name)=\($0)" } }
        return parts.isEmpty ? "-" : parts.joined(separator: " ")
    }

    static func list(_ endpoints: [Endpoint]) -> String {
        endpoints.isEmpty ? "-" : endpoints.map(\.description).joined(separator: ",")
    }
}

/// The TLS files of an upstream's `https://` addresses, for `upstream add` and `upstream set`.
struct UpstreamTLSOptions: ParsableArguments {
    @Option(
        name: .customLong("ca-file"),
        help: ArgumentHelp(
            "CA certificates (PEM) its https:// addresses must chain to; default: the system's roots.",
            valueName: "file"
        )
    )
    var caFile: String?

    @Option(
        name: .customLong("client-cert"),
        help: ArgumentHelp(
            "Client certificate (PEM) presented to its https:// addresses (mutual TLS).",
            valueName: "file"
        )
    )
    var clientCert: String?

    @Option(name: .customLong("client-key"), help: ArgumentHelp("The key (PEM) of --client-cert.", valueName: "file"))
    var clientKey: String?

    /// Whether no TLS option was given.
    var isEmpty: Bool { self.caFile == nil && self.clientCert == nil && self.clientKey == nil }

    /// Sets the given files on `upstream`; an empty value (`--ca-file ''`) removes the setting.
    func apply(to upstream: inout Upstream) {
        if let caFile = self.caFile { upstream.caFile = caFile.isEmpty ? nil : caFile }
        if let clientCert = self.clientCert { upstream.clientCert = clientCert.isEmpty ? nil : clientCert }
        if let clientKey = self.clientKey { upstream.clientKey = clientKey.isEmpty ? nil : clientKey }
    }
}
