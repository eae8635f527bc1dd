import ArgumentParser
import FicusCore
import FicusProxy
import FicusRollout
import FicusRuntime
import FicusStore
import Foundation
import NIOPosix
import NIOSSL

/// `ficus bluegreen`: deploy to an upstream's idle slot, check it, and switch traffic to it in one revision.
///
/// The decisions are `BlueGreenStateMachine`'s; these commands read the store, feed it one event and write back.
struct BlueGreenCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bluegreen",
        abstract: "Deploy to an upstream's idle slot, check it, switch to it and back.",
        discussion: """
            An upstream with blue and green slots sends traffic to its active slot only. Deploy to the idle slot, \
            check it (every --path must answer 2xx on every address), then switch: one revision makes it active, \
            and the old slot's in-flight requests finish on their connections. A switch to a slot whose last check \
            failed is refused unless --force. Before a switch, requests in the upstream's preview segment, and \
            requests carrying 'X-Ficus-Preview: <idle slot>; token=<token>' with the token that 'preview --token' \
            printed, reach the idle slot.
            """,
        subcommands: [Deploy.self, Check.self, Preview.self, Switch.self, Status.self]
    )
}

extension BlueGreenCommand {
    /// `ficus bluegreen deploy UPSTREAM [--slot S] ADDR...`.
    struct Deploy: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "deploy",
            abstract: "Set the addresses of an upstream's idle slot (no traffic moves).",
            discussion: """
                On an upstream without slots, the first deploy creates them: its current addresses become the \
                active slot (blue when deploying to green, and the other way round).
                """
        )

        @Argument(help: "The upstream's name.")
        var upstream: String

        @Argument(help: ArgumentHelp("The slot's new addresses.", valueName: "host:port"))
        var addresses: [String] = []

        @Option(help: "The slot to deploy to (default: the idle one); never the active slot.")
        var slot: BlueGreenSlots.Slot?

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let addresses = try ArgumentText.endpoints(self.addresses, option: "ADDR")
                try await BlueGreenWiring.apply(
                    upstream: self.upstream,
                    storeOptions: self.storeOptions,
                    author: self.change.changeAuthor(action: "bluegreen.deploy"),
                    creatingSlotsFor: self.slot ?? .green
                ) { state in
                    .deployRequested(now: Date(), slot: self.slot ?? state.slots.active.other, addresses: addresses)
                }
            }
        }
    }

    /// `ficus bluegreen check UPSTREAM [--path P]...`.
    struct Check: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "check",
            abstract: "Probe the idle slot's addresses and record whether every path answered 2xx.",
            discussion: """
                Sends GET for each --path to each address of the idle slot over HTTP/1.1, one connection per probe, \
                with the Host the service expects (--host; by default the exact host of a route that sends traffic \
                to the upstream, else the address) and the user agent ficus/VERSION, and records the outcome, which \
                a later switch reads. Exits 1 when a probe failed (the failure is recorded too).
                """
        )

        @Argument(help: "The upstream's name.")
        var upstream: String

        @Option(name: .customLong("path"), help: ArgumentHelp("A path to probe (default /healthz). Repeatable."))
        var paths: [String] = []

        @Option(help: ArgumentHelp("Seconds each probe may take (default 5).", valueName: "seconds"))
        var timeout: Int = 5

        @Option(help: ArgumentHelp("The Host field the probes send.", valueName: "host"))
        var host: String?

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions
        @OptionGroup var output: OutputOptions

        /// What `--json` prints.
        struct Result: Encodable {
            var upstream: String
            var slot: String
            var passed: Bool
            var failure: String?
            var probes: [BlueGreenWiring.Probe]
        }

        func run() async throws {
            try await ErrorReport.run {
                let paths = self.paths.isEmpty ? ["/healthz"] : self.paths
                guard paths.allSatisfy({ $0.hasPrefix("/") && !$0.contains(where: \.isWhitespace) }),
                    (1...3600).contains(self.timeout)
                else {
                    throw CLIError.usage("--path must start with '/' (no spaces) and --timeout must be 1 to 3600")
                }
                if let host = self.host, host.isEmpty || host.contains(where: { $0.isWhitespace || $0 == "/" }) {
                    throw CLIError.usage("--host '\(host)': not a host name")
                }
                let store = try await self.storeOptions.open()
                let (_, state, _) = try await BlueGreenWiring.load(upstream: self.upstream, store: store, creating: nil)
                let configuration = try await store.latest()?.configuration ?? Configuration()
                let host = self.host ?? BlueGreenWiring.usualHost(of: self.upstream, in: configuration)
                let slot = state.slots.active.other
                let addresses = state.slots[slot]
                var probes: [BlueGreenWiring.Probe] = []
                var failure: String?
                if addresses.isEmpty {
                    failure = "slot '\(slot.rawValue)' has no addresses"
                } else {
                    // `https://` slots are checked with the upstream's TLS files, as the proxy's requests would be.
                    let upstream =
                        configuration.upstreams.first { $0.name == self.upstream }
                        ?? Upstream(name: self.upstream, addresses: [])
                    let tls = addresses.contains(where: \.tls)
                        ? Swift.Result { try UpstreamTLSClient.context(for: upstream) } : nil
                    probes = await BlueGreenWiring.probe(
                        addresses, paths: paths, host: host, timeout: .seconds(self.timeout), tls: tls)
                    failure = probes.first { !$0.passed }.map(\.summary)
                }
                try await BlueGreenWiring.apply(
                    upstream: self.upstream,
                    storeOptions: self.storeOptions,
                    author: self.change.changeAuthor(action: "bluegreen.check"),
                    creatingSlotsFor: nil,
                    quiet: self.output.json
                ) { _ in
                    if let failure {
                        return .checkFailed(now: Date(), slot: slot, addresses: addresses, reason: failure)
                    }
                    return .checkPassed(now: Date(), slot: slot, addresses: addresses)
                }
                if self.output.json {
                    try Console.json(
                        Result(
                            upstream: self.upstream, slot: slot.rawValue, passed: failure == nil, failure: failure,
                            probes: probes))
                }
                if failure != nil {
                    throw ExitCode(ExitStatus.error)
                }
            }
        }
    }

    /// `ficus bluegreen switch UPSTREAM [--back] [--force]`.
    struct Switch: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "switch",
            abstract: "Make the idle slot active (or, with --back, the slot active before the last switch).",
            discussion: "One revision. Refused for an empty slot, or a slot whose last check failed without --force."
        )

        @Argument(help: "The upstream's name.")
        var upstream: String

        @ArgumentParser.Flag(help: "Switch back to the slot that was active before the last switch.")
        var back = false

        @ArgumentParser.Flag(help: "Switch even though the slot's last check failed.")
        var force = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                try await BlueGreenWiring.apply(
                    upstream: self.upstream,
                    storeOptions: self.storeOptions,
                    author: self.change.changeAuthor(action: self.back ? "bluegreen.back" : "bluegreen.switch"),
                    creatingSlotsFor: nil
                ) { _ in
                    self.back
                        ? .switchBackRequested(now: Date(), force: self.force)
                        : .switchRequested(now: Date(), force: self.force)
                }
            }
        }
    }

    /// `ficus bluegreen preview UPSTREAM [--segment NAME | --off] [--token | --token-off]`.
    struct Preview: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "preview",
            abstract: "Let a segment, or clients with a secret token, reach an upstream's idle slot.",
            discussion: """
                One revision. The segment's requests reach whichever slot is idle, also after a switch; metrics \
                label them with the preview name (orders@green). --token makes a new preview token (retiring the \
                old one) and prints it once: clients that send 'X-Ficus-Preview: <idle slot>; token=<token>' reach \
                the idle slot. Only the token's SHA-256 digest is stored; without a token no header reaches the \
                idle slot, whichever address it comes from.
                """
        )

        @Argument(help: "The upstream's name.")
        var upstream: String

        @Option(help: ArgumentHelp("The segment whose requests preview the idle slot.", valueName: "name"))
        var segment: String?

        @ArgumentParser.Flag(help: "Stop sending a segment to the idle slot.")
        var off = false

        @ArgumentParser.Flag(help: "Make a new preview token (the old one stops working) and print it once.")
        var token = false

        @ArgumentParser.Flag(name: .customLong("token-off"), help: "Remove the preview token: no header previews.")
        var tokenOff = false

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func validate() throws {
            if self.segment != nil && self.off {
                throw ArgumentParser.ValidationError("give exactly one of --segment NAME and --off")
            }
            if self.token && self.tokenOff {
                throw ArgumentParser.ValidationError("give exactly one of --token and --token-off")
            }
            guard self.segment != nil || self.off || self.token || self.tokenOff else {
                throw ArgumentParser.ValidationError(
                    "give exactly one of --segment NAME and --off, or --token / --token-off"
                )
            }
        }

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let name = self.upstream
                let segmentChange: String?? = self.off ? .some(nil) : self.segment.map { .some($0) }
                let token = self.token ? PreviewToken.generate() : nil
                let digestChange: String?? = token.map { .some(PreviewToken.digest(of: $0)) }
                    ?? (self.tokenOff ? .some(nil) : nil)
                var idle = BlueGreenSlots.Slot.green
                try await store.commitPrinting(self.change.changeAuthor(action: "bluegreen.preview")) { configuration in
                    let index = try configuration.upstreamIndex(name)
                    guard configuration.upstreams[index].slots != nil else {
                        throw CLIError.failed(
                            "upstream '\(name)' has no blue and green slots; 'ficus bluegreen deploy' creates them"
                        )
                    }
                    if let segmentChange {
                        configuration.upstreams[index].slots?.previewSegment = segmentChange
                    }
                    if let digestChange {
                        configuration.upstreams[index].slots?.previewTokenSHA256 = digestChange
                    }
                }
                if let token {
                    let latest = try await store.requireLatest()
                    idle = latest.configuration.upstream(named: name)?.slots?.idle ?? idle
                    Console.err("preview token for '\(name)' (shown once; a new --token retires it):")
                    Console.out("token \(token)")
                    Console.err("clients send: X-Ficus-Preview: \(idle.rawValue); token=\(token)")
                }
            }
        }
    }

    /// `ficus bluegreen status UPSTREAM [--json]`.
    struct Status: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "status",
            abstract: "Show an upstream's slots, which is active, their last checks and the slot --back returns to."
        )

        @Argument(help: "The upstream's name.")
        var upstream: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (_, state, _) = try await BlueGreenWiring.load(upstream: self.upstream, store: store, creating: nil)
                if self.output.json {
                    var object: [String: Any] = [
                        "upstream": state.upstream,
                        "active": state.slots.active.rawValue,
                        "blue": state.slots.blue.map(\.description),
                        "green": state.slots.green.map(\.description),
                    ]
                    if let previous = state.previousActive {
                        object["previous"] = previous.rawValue
                    }
                    if let segment = state.slots.previewSegment {
                        object["previewSegment"] = segment
                    }
                    object["previewToken"] = state.slots.previewTokenSHA256 != nil
                    for slot in BlueGreenSlots.Slot.allCases {
                        if let check = state.currentCheck(of: slot) {
                            object["\(slot.rawValue)Check"] = check.failure.map { "failed: \($0)" } ?? "passed"
                        }
                    }
                    let data = try JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])
                    Console.out(String(decoding: data, as: UTF8.self))
                    return
                }
                Console.out("upstream \(state.upstream)")
                for slot in BlueGreenSlots.Slot.allCases {
                    let role = slot == state.slots.active ? "active" : "idle"
                    let check = state.currentCheck(of: slot).map { $0.failure.map { "failed: \($0)" } ?? "passed" }
                    Console.out(
                        "  \(slot.rawValue) (\(role)): \(UpstreamCommand.list(state.slots[slot]))"
                            + "  check: \(check ?? "none")"
                    )
                }
                Console.out("  back: \(state.previousActive?.rawValue ?? "-")")
                var previews: [String] = []
                if let segment = state.slots.previewSegment { previews.append("segment '\(segment)'") }
                if state.slots.previewTokenSHA256 != nil {
                    previews.append("token (X-Ficus-Preview: \(state.slots.idle.rawValue); token=...)")
                }
                Console.out("  preview: \(previews.isEmpty ? "none" : previews.joined(separator: ", "))")
            }
        }
    }
}

extension BlueGreenWiring {
    /// `apply(upstream:store:author:creatingSlotsFor:makeEvent:)` on the store of `storeOptions`, printed: the audit
    /// lines, then `revision N` when a revision was written (not when `quiet`: with --json, standard output holds the
    /// JSON document alone). A refusal throws and changes nothing.
    static func apply(
        upstream name: String,
        storeOptions: StoreOptions,
        author: ChangeAuthor,
        creatingSlotsFor idle: BlueGreenSlots.Slot?,
        quiet: Bool = false,
        makeEvent: (BlueGreenState) -> BlueGreenEvent
    ) async throws {
        let store = try await storeOptions.open()
        let outcome = try await Self.apply(
            upstream: name,
            store: store,
            author: author,
            creatingSlotsFor: idle,
            makeEvent: makeEvent
        )
        for line in outcome.lines {
            Console.err(line)
        }
        if let stored = outcome.revision, !quiet {
            Console.out("revision \(stored.number)")
        }
    }

    /// One probe of `bluegreen check`: a GET of one path on one address.
    struct Probe: Encodable, Sendable {
        var address: String
        var path: String
        var host: String
        var status: Int?
        var error: String?
        var milliseconds: Int
        var passed: Bool

        /// The probe in a few words, as the recorded failure reads.
        var summary: String {
            "GET \(self.path) on \(self.address): " + (self.status.map(String.init) ?? self.error ?? "no answer")
        }
    }

    /// The Host a service behind `upstream` expects: the exact host of the first route that sends it traffic (its
    /// legacy or default side, or a rule's target), or nil to send each address as its own Host.
    static func usualHost(of upstream: String, in configuration: Configuration) -> String? {
        for route in configuration.routes {
            let targets = [route.legacy, route.defaultUpstream] + route.rules.map(\.upstream)
            guard targets.contains(upstream), let host = route.host, !host.contains("*") else { continue }
            return host
        }
        return nil
    }

    /// GETs every path on every address, one connection per probe (so a slot that answers only its first request
    /// on a connection still fails), with `host` as the Host field (each address's own `host:port` when nil);
    /// `https://` addresses over TLS with `tls`, the upstream's client context (or why it cannot be made).
    static func probe(
        _ addresses: [Endpoint], paths: [String], host: String?, timeout: Duration,
        tls: Result<NIOSSLContext, any Error>? = nil
    ) async -> [Probe] {
        var probes: [Probe] = []
        for address in addresses {
            for path in paths {
                var client = DemoClient(
                    port: address.port,
                    group: MultiThreadedEventLoopGroup.singleton,
                    host: address.host
                )
                client.hostHeader = host ?? address.hostAndPort
                client.userAgent = "ficus/\(Ficus.version)"
                let started = ContinuousClock.now
                var probe = Probe(
                    address: address.description, path: path, host: client.hostHeader, milliseconds: 0, passed: false)
                do {
                    if address.tls, let tls {
                        client.tls = (try tls.get(), UpstreamTLSClient.serverHostname(address))
                    }
                    let response = try await client.get(path, timeout: timeout)
                    probe.status = response.status
                    probe.passed = (200..<300).contains(response.status)
                } catch {
                    probe.error = "\(error)"
                }
                let elapsed = ContinuousClock.now - started
                probe.milliseconds = Int(
                    elapsed.components.seconds * 1000 + elapsed.components.attoseconds / 1_000_000_000_000_000)
                probes.append(probe)
            }
        }
        return probes
    }
}
