import ArgumentParser
import FicusCore
import FicusRuntime
import FicusStore

/// `ficus flip ROUTE --to UPSTREAM`: cut a whole route over, or back, in one revision.
struct FlipCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "flip",
        abstract: "Cut a whole route over (or back): set its default upstream in one revision.",
        discussion: """
            The route's legacy upstream stays recorded, so 'ficus flip ROUTE --back' and 'ficus kill' can always \
            return to it. Without --to or --back, the route's default upstream must have blue/green slots and the \
            other slot becomes active.
            """
    )

    @Argument(help: "The route's name.")
    var route: String

    @Option(help: ArgumentHelp("The upstream that serves the route from now on.", valueName: "upstream"))
    var to: String?

    @ArgumentParser.Flag(help: "Flip back to the route's legacy upstream.")
    var back = false

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func run() async throws {
        try await ErrorReport.run {
            if self.back, self.to != nil {
                throw CLIError.usage("give --to or --back, not both")
            }
            let routeName = self.route
            let target = self.to
            let back = self.back
            let store = try await self.storeOptions.open()
            // A running canary on the route ends with this revision (its rule goes), so no controller fights the flip.
            try await store.commitPrinting(
                self.change.changeAuthor(action: "flip"),
                overriding: .flip(to: target ?? (back ? "legacy" : "the other slot")),
                routes: [routeName],
                removeRule: true
            ) { configuration in
                let index = try configuration.routeIndex(routeName)
                if back {
                    configuration.routes[index].defaultUpstream = configuration.routes[index].legacy
                } else if let target {
                    try configuration.requireUpstream(target)
                    configuration.routes[index].defaultUpstream = target
                } else {
                    let upstreamName = configuration.routes[index].defaultUpstream
                    let upstreamIndex = try configuration.upstreamIndex(upstreamName)
                    guard var slots = configuration.upstreams[upstreamIndex].slots else {
                        throw CLIError.usage(
                            "route '\(routeName)' goes to '\(upstreamName)', which has no blue/green slots: "
                                + "give --to UPSTREAM or --back"
                        )
                    }
                    slots.active = slots.active.other
                    configuration.upstreams[upstreamIndex].slots = slots
                }
            }
        }
    }
}

/// `ficus kill`: the panic button.
struct KillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "kill",
        abstract: "Send every route to its legacy upstream at once (the global kill switch).",
        discussion: """
            Nothing else changes: 'ficus unkill' restores exactly the configuration as it stands then, including \
            changes made while the switch was on.
            """
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func run() async throws {
        try await KillCommand.setKilled(true, store: self.storeOptions, change: self.change)
    }

    static func setKilled(_ killed: Bool, store: StoreOptions, change: ChangeOptions) async throws {
        try await ErrorReport.run {
            let opened = try await store.open()
            let author = change.changeAuthor(action: killed ? "kill" : "unkill")
            guard killed else {
                try await opened.commitPrinting(author) { configuration in
                    configuration.killed = killed
                }
                return
            }
            // Every running canary ends with the kill (its rule goes), so unkill does not bring back an undriven step.
            try await opened.commitPrinting(author, overriding: .kill, routes: nil, removeRule: true) { configuration in
                configuration.killed = killed
            }
        }
    }
}

/// `ficus unkill`: turn the global kill switch off.
struct UnkillCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "unkill",
        abstract: "Turn the global kill switch off: routes go where their configuration sends them."
    )

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func run() async throws {
        try await KillCommand.setKilled(false, store: self.storeOptions, change: self.change)
    }
}

/// `ficus rollback [--to REV] [--route R]`.
struct RollbackCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "rollback",
        abstract: "Restore an earlier revision, as a new revision (history is never rewritten).",
        discussion: """
            Without --route, the whole configuration becomes revision --to (default: the one before the newest). \
            With --route, only that route's definition is restored (added back, or removed if it did not exist \
            then); every other route stays as it is.
            """
    )

    @Option(help: ArgumentHelp("The revision to restore (default: the one before the newest).", valueName: "rev"))
    var to: Int?

    @Option(help: ArgumentHelp("Restore only this route's definition.", valueName: "route"))
    var route: String?

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var change: ChangeOptions

    func run() async throws {
        try await ErrorReport.run {
            let store = try await self.storeOptions.open()
            let latest = try await store.requireLatest()
            let target = self.to ?? latest.number - 1
            guard target >= 1 else {
                throw CLIError.failed(
                    "revision \(latest.number) is the first: there is nothing earlier to roll back to")
            }
            let old = try await store.revision(target)
            guard let routeName = self.route else {
                let author = self.change.changeAuthor(action: "rollback")
                // Running canaries end with the rollback, which restores revision `target` exactly.
                let hook = CanaryWiring.overrideHook(
                    routes: nil,
                    command: .rollback(toRevision: target),
                    removeRule: false
                )
                let revision = try await store.retryingWhenBusy {
                    try await store.rollback(to: target, author, overridingCanaries: hook)
                }
                if let revision {
                    Console.out("revision \(revision.number)")
                } else {
                    Console.err("nothing to change: the configuration already equals revision \(target)")
                    Console.out("revision \(latest.number)")
                }
                return
            }
            let oldRoute = old.configuration.routes.first { $0.name == routeName }
            // The route's rules come back as they were, so their retired names may too (with their users' buckets).
            try await store.commitPrinting(
                self.change.changeAuthor(action: "rollback.route"),
                allowingRuleNamesFrom: target,
                overriding: .rollback(toRevision: target),
                routes: [routeName],
                removeRule: false
            ) { configuration in
                let index = configuration.routes.firstIndex(named: routeName)
                switch (index, oldRoute) {
                case (let index?, let oldRoute?):
                    configuration.routes[index] = oldRoute
                case (nil, let oldRoute?):
                    configuration.routes.append(oldRoute)
                case (let index?, nil):
                    configuration.routes.removeRoute(at: index)
                case (nil, nil):
                    throw CLIError.notFound(kind: "route", name: routeName, known: configuration.routes.names)
                }
            }
        }
    }
}
