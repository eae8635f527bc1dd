import ArgumentParser
import FicusCore
import FicusRollout
import FicusRuntime
import FicusStore
import Foundation

/// `ficus canary`: move a route to a new upstream step by step, gated on errors, latency and shadow diffs.
struct CanaryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "canary",
        abstract: "Move a route to a new upstream step by step, gated on errors, latency and shadow diffs.",
        discussion: """
            'ficus serve' drives the canary (one proxy per canary, by lease); these commands start it, show it and \
            steer it. Every command applies its event to the stored canary at once, as a compare-and-swap, so it \
            works whether or not a proxy is running.
            """,
        subcommands: [Start.self, Status.self, Pause.self, Resume.self, Promote.self, Abort.self]
    )

    /// `ficus canary start ROUTE --to UPSTREAM ...`.
    struct Start: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Start a canary: the first step's weight is set at once, in one revision.",
            discussion: """
                Rates are percentages ('1%', '0.5%'; a bare number is a percentage too). Durations are '90s', '2m', \
                '1h' or '1m30s' (at least 1s). On a route with a shadow policy the noise-filtered diff rate is gated \
                at 1% unless --max-diff-rate says otherwise ('off' turns it off); without one there is no diff gate. \
                The canary's rule is a sticky percentage rule placed after the route's other rules. Every gate in \
                effect is printed with its threshold.
                """
        )

        @Argument(help: "The route's name.")
        var route: String

        @Option(help: ArgumentHelp("The upstream that takes over the route.", valueName: "upstream"))
        var to: String

        @Option(help: ArgumentHelp("The new side's weight at each step, in percent, ending at 100.", valueName: "list"))
        var steps = "1,5,25,50,100"

        @Option(help: ArgumentHelp("How long each step runs before it is judged.", valueName: "duration"))
        var interval = "2m"

        @Option(name: .customLong("max-error-rate"), help: ArgumentHelp("Highest 5xx rate of the new side.", valueName: "rate"))
        var maxErrorRate = "1%"

        @Option(
            name: .customLong("max-p99-ratio"),
            help: ArgumentHelp("Highest new p99 ÷ legacy p99.", valueName: "ratio"))
        var maxP99Ratio = 1.5

        @Option(
            name: .customLong("max-diff-rate"),
            help: ArgumentHelp(
                "Highest noise-filtered shadow diff rate, or 'off' (default: 1% on a route with a shadow policy).",
                valueName: "rate"))
        var maxDiffRate: String?

        @Option(
            name: .customLong("on-fail"),
            help: ArgumentHelp("What a failed gate does: abort (back to 0% new) or pause at the weight.", valueName: "abort|pause"))
        var onFail = "abort"

        @Option(
            name: .customLong("max-hold"),
            help: ArgumentHelp("Intervals a step may hold without a judgement before the canary pauses.", valueName: "n"))
        var maxHold = 5

        @Option(
            name: .customLong("min-requests"),
            help: ArgumentHelp("Fewest new-side requests a step needs before it is judged.", valueName: "n"))
        var minRequests = 100

        @Option(help: ArgumentHelp("What identifies a user for the buckets (default: client_ip).", valueName: "header:NAME|cookie:NAME|query:NAME|client_ip"))
        var sticky: String?

        @ArgumentParser.Flag(name: .customLong("reverse-shadow"), help: "On promotion, shadow to legacy from then on.")
        var reverseShadow = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                guard let onFail = CanaryFailureAction(rawValue: self.onFail) else {
                    throw CLIError.usage("--on-fail '\(self.onFail)': expected abort or pause")
                }
                let store = try await self.storeOptions.open()
                let latest = try await store.requireLatest()
                let shadowed = latest.configuration.routes.first { $0.name == self.route }?.shadow != nil
                let maxDiffRate: Double?
                switch self.maxDiffRate {
                case "off"?: maxDiffRate = nil
                case let text?: maxDiffRate = try CanaryArguments.rate(text, option: "--max-diff-rate")
                case nil: maxDiffRate = shadowed ? 0.01 : nil
                }
                let spec = CanarySpec(
                    route: self.route,
                    target: self.to,
                    steps: try Self.steps(self.steps),
                    interval: try CanaryArguments.duration(self.interval, option: "--interval"),
                    gates: CanaryGates(
                        maxErrorRate: try CanaryArguments.rate(self.maxErrorRate, option: "--max-error-rate"),
                        maxP99Ratio: self.maxP99Ratio,
                        maxDiffRate: maxDiffRate,
                        minRequests: self.minRequests
                    ),
                    reverseShadowOnPromote: self.reverseShadow,
                    onFail: onFail,
                    maxHold: self.maxHold
                )
                let stickiness = try self.sticky.map { try ArgumentText.attribute($0, option: "--sticky") }
                let errors = spec.validate(in: latest.configuration)
                guard errors.isEmpty else {
                    throw CLIError.invalidConfiguration(errors.map(\.description))
                }
                var machine = try CanaryStateMachine(spec: spec)
                let actions = machine.handle(.started(now: Date()))
                let used = try await store.ruleNamesEverUsed()
                var ruleName = "canary-\(self.route)-\(latest.number)"
                var suffix = 1
                while used.contains(ruleName) {
                    suffix += 1
                    ruleName = "canary-\(self.route)-\(latest.number)-\(suffix)"
                }
                let row = CanaryRow(
                    route: self.route,
                    stateJSON: Data(),
                    active: true,
                    ruleName: ruleName,
                    stickiness: stickiness,
                    version: 0,
                    updatedAt: Date()
                )
                let author = self.change.changeAuthor(action: "canary.start")
                let wiring = CanaryWiring(store: store, author: author.author)
                let outcome = try await wiring.write(
                    row: row,
                    before: nil,
                    after: machine.state,
                    actions: actions,
                    action: "canary.start",
                    expectVersion: nil
                )
                try CanaryArguments.report(outcome)
                Console.err("gates: " + Self.gates(spec, shadowed: shadowed))
            }
        }

        /// Every gate in effect with its threshold, in one line: what the canary will be judged on.
        static func gates(_ spec: CanarySpec, shadowed: Bool) -> String {
            let gates = spec.gates
            var parts = [
                "at least \(gates.minRequests) new-side requests per step",
                "error rate ≤ \(RolloutFormat.percent(gates.maxErrorRate))",
                "p99 ratio ≤ \(RolloutFormat.number(gates.maxP99Ratio))",
            ]
            if let diff = gates.maxDiffRate {
                parts.append("diff rate ≤ \(RolloutFormat.percent(diff)) (noise-filtered)")
            } else {
                parts.append(shadowed ? "no diff gate (--max-diff-rate off)" : "no diff gate (the route is not shadowed)")
            }
            parts.append("on fail: \(spec.onFail.rawValue)")
            parts.append("pause after \(spec.maxHold) intervals without a judgement")
            return parts.joined(separator: "; ")
        }

        /// Parses `1,5,25,50,100`.
        ///
        /// Range and order are checked by `CanarySpec.validate()`, which names every bad step.
        static func steps(_ text: String) throws -> [Int] {
            try text.split(separator: ",").map { part in
                guard let value = Int(part.trimmingCharacters(in: .whitespaces)) else {
                    throw CLIError.usage("--steps '\(text)': expected whole percentages like 1,5,25,50,100")
                }
                return value
            }
        }
    }

    /// `ficus canary status ROUTE [--watch] [--json]`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Show a canary: phase, step, weight, gate values against thresholds, time to the next step."
        )

        @Argument(help: "The route's name.")
        var route: String

        @ArgumentParser.Flag(help: "Print the status again every second until the canary finishes.")
        var watch = false

        @OptionGroup var output: OutputOptions
        @OptionGroup var storeOptions: StoreOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                while true {
                    guard let row = try await store.canary(route: self.route) else {
                        throw CLIError.failed("route '\(self.route)' has no canary: start one with 'ficus canary start'")
                    }
                    let state = try CanaryState(jsonData: row.stateJSON)
                    let now = Date()
                    var status = CanaryStatus(state: state, now: now)
                    status.driver = try await store.canaryDriver(route: self.route, now: now)
                    if self.output.json {
                        try Console.json(status)
                    } else {
                        Console.out(status.description)
                    }
                    guard self.watch, !state.isFinished else {
                        return
                    }
                    try await Task.sleep(for: .seconds(1))
                    if !self.output.json {
                        Console.out()
                    }
                }
            }
        }
    }

    /// `ficus canary pause ROUTE`.
    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Freeze a canary at its weight: time stops counting.")

        @Argument(help: "The route's name.")
        var route: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await CanaryArguments.apply(self.route, "canary.pause", self.storeOptions, self.change) {
                .paused(now: $0)
            }
        }
    }

    /// `ficus canary resume ROUTE`.
    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Continue a paused canary where it stopped.")

        @Argument(help: "The route's name.")
        var route: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await CanaryArguments.apply(self.route, "canary.resume", self.storeOptions, self.change) {
                .resumed(now: $0)
            }
        }
    }

    /// `ficus canary promote ROUTE`.
    struct Promote: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Skip the remaining steps: the new upstream becomes the route's default, in one revision."
        )

        @Argument(help: "The route's name.")
        var route: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await CanaryArguments.apply(self.route, "canary.promote", self.storeOptions, self.change) {
                .promoteRequested(now: $0)
            }
        }
    }

    /// `ficus canary abort ROUTE [--reason TEXT]`.
    struct Abort: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send the route back to 0% new in one revision, with the reason recorded."
        )

        @Argument(help: "The route's name.")
        var route: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            let reason = self.change.reason.isEmpty ? "no reason given" : self.change.reason
            try await CanaryArguments.apply(self.route, "canary.abort", self.storeOptions, self.change) {
                .abortRequested(now: $0, reason: reason)
            }
        }
    }
}

/// Parsing and applying shared by the canary commands.
///
/// Kept apart so that every command reads rates and durations the same way.
enum CanaryArguments {
    /// Applies an operator's event to the stored canary and prints the outcome.
    ///
    /// Refusals exit 1 with the state machine's message.
    static func apply(
        _ route: String,
        _ action: String,
        _ storeOptions: StoreOptions,
        _ change: ChangeOptions,
        _ event: @escaping @Sendable (Date) -> CanaryEvent
    ) async throws {
        try await ErrorReport.run {
            let store = try await storeOptions.open()
            let wiring = CanaryWiring(store: store, author: change.changeAuthor(action: action).author)
            try self.report(try await wiring.apply(route: route, action: action, event))
        }
    }

    /// Prints the audit lines and the revision written, or fails with the refusal.
    ///
    /// `revision N` on stdout, like every other command that writes one.
    static func report(_ outcome: CanaryWiring.Outcome) throws {
        switch outcome {
        case .refused(let message):
            throw CLIError.failed(message)
        case .evaluate:
            throw CLIError.failed("internal error: an operator command asked for an evaluation")
        case .applied(_, let actions, let revision):
            for case .record(let line) in actions {
                Console.err(line)
            }
            if let revision {
                Console.out("revision \(revision)")
            }
        }
    }

    /// Parses `1%`, `0.5%` or `1` (a percentage either way) into a fraction.
    ///
    /// Operators think in percent; the spec stores fractions.
    static func rate(_ text: String, option: String) throws -> Double {
        let number = text.hasSuffix("%") ? String(text.dropLast()) : text
        guard let value = Double(number.trimmingCharacters(in: .whitespaces)), value.isFinite else {
            throw CLIError.usage("\(option) '\(text)': expected a percentage like 1% or 0.5%")
        }
        return value / 100
    }

    /// Parses `90s`, `2m`, `1h`, `1m30s` or a bare number of seconds.
    ///
    /// The same units `ficus canary status` prints.
    static func duration(_ text: String, option: String) throws -> TimeInterval {
        if let seconds = Double(text) {
            return seconds
        }
        var total: TimeInterval = 0
        var digits = ""
        var sawUnit = false
        for character in text {
            if character.isNumber || character == "." {
                digits.append(character)
                continue
            }
            let scale: TimeInterval
            switch character {
            case "h": scale = 3600
            case "m": scale = 60
            case "s": scale = 1
            default: throw CLIError.usage("\(option) '\(text)': expected a duration like 90s, 2m or 1m30s")
            }
            guard let value = Double(digits) else {
                throw CLIError.usage("\(option) '\(text)': expected a duration like 90s, 2m or 1m30s")
            }
            total += value * scale
            digits = ""
            sawUnit = true
        }
        guard sawUnit, digits.isEmpty else {
            throw CLIError.usage("\(option) '\(text)': expected a duration like 90s, 2m or 1m30s")
        }
        return total
    }
}
