import ArgumentParser
import FicusReport
import FicusStore
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `ficus report`: what shadowing found per endpoint, how far each route has moved, and a gate for CI.
///
/// The command only parses, opens the store and writes; `FicusReport` builds and renders, so the three formats show
/// the same numbers.
struct ReportCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report",
        abstract: "Report shadow differences per endpoint and migration progress per route (text, JSON or HTML).",
        discussion: """
            Verdicts per endpoint: 'ready' (enough requests compared, every difference is noise), 'regressions' \
            (a field differs more than noise explains), 'unconfirmed' (a field differs that the endpoint's noise \
            samples never showed, while it has fewer than --noise-floor of them), 'not enough traffic' (fewer than \
            --min-requests compared). With --fail-on-regression the exit status is 4 when any endpoint has \
            regressions and 5 when an endpoint is unconfirmed or no endpoint reached --min-requests (an empty store \
            never passes). See docs/REPORTS.md.
            """
    )

    enum Format: String, ExpressibleByArgument, CaseIterable {
        case text
        case json
        case html
    }

    @Option(help: ArgumentHelp("Only this route.", valueName: "route"))
    var route: String?

    @Option(help: ArgumentHelp("Only the last DURATION (30s, 15m, 1h, 2d, 1w).", valueName: "duration"))
    var since: String?

    @Option(help: ArgumentHelp("Start of the window, ISO 8601 (2025-06-01T12:00:00Z) or a date.", valueName: "time"))
    var from: String?

    @Option(help: ArgumentHelp("End of the window (exclusive), ISO 8601 or a date.", valueName: "time"))
    var to: String?

    @Option(help: "Output format.")
    var format: Format = .text

    @Option(help: ArgumentHelp("Write the report to FILE instead of standard output.", valueName: "file"))
    var out: String?

    @ArgumentParser.Flag(
        name: .customLong("fail-on-regression"),
        help: "Exit 4 when any endpoint has regressions, 5 when no endpoint has enough traffic.")
    var failOnRegression = false

    @Option(
        name: .customLong("min-requests"),
        help: ArgumentHelp("Compared requests an endpoint needs to be 'ready' ", valueName: "n"))
    var minRequests: Int = 30

    @Option(
        name: .customLong("noise-floor"),
        help: ArgumentHelp(
            "Noise samples an endpoint needs before a difference never seen in noise is a regression.", valueName: "n"))
    var noiseFloor: Int = 20

    @ArgumentParser.Flag(name: .customLong("no-color"), help: "Never colour the text report.")
    var noColor = false

    @OptionGroup var storeOptions: StoreOptions

    func run() async throws {
        try await ErrorReport.run {
            let (from, to) = try self.window(now: Date())
            guard self.minRequests >= 1 else {
                throw CLIError.usage("--min-requests must be at least 1, not \(self.minRequests)")
            }
            guard (0...1_000_000).contains(self.noiseFloor) else {
                throw CLIError.usage("--noise-floor must be 0 to 1000000, not \(self.noiseFloor)")
            }
            // Every backend is a `ShadowStore` (SQLite's telemetry file, PostgreSQL's telemetry tables).
            let store: any ConfigurationStore & ShadowStore = try await self.storeOptions.open()
            let options = ReportOptions(
                route: self.route, from: from, to: to, minRequests: self.minRequests, noiseFloor: self.noiseFloor)
            var canaries: [String: RouteCanary] = [:]
            if let rollouts = store as? any RolloutStore {
                canaries = try await Self.canaries(store: rollouts, now: Date())
            }
            let report = try await ReportBuilder(store: store, options: options, canaries: canaries).build()
            if let route = self.route, report.endpoints.isEmpty, !report.routes.contains(where: { $0.route == route }) {
                let known = try await store.latest()?.configuration.routes.map(\.name) ?? []
                throw CLIError.notFound(kind: "route", name: route, known: known)
            }
            let text = try self.render(report)
            if let out = self.out {
                do {
                    try text.write(toFile: out, atomically: true, encoding: .utf8)
                } catch {
                    throw CLIError.failed("cannot write '\(out)': \(error.localizedDescription)")
                }
                Console.err("wrote \(self.format.rawValue) report to \(out); gate: \(report.verdict.rawValue)")
            } else {
                FileHandle.standardOutput.write(Data(text.utf8))
            }
            if self.failOnRegression, report.verdict != .pass {
                let totals = report.totals
                switch report.verdict {
                case .regressions:
                    let names = report.endpoints.filter { $0.verdict == .regressions }.map(\.endpoint)
                    Console.err(
                        "gate failed: regressions in \(totals.regressions) endpoint(s): "
                            + names.joined(separator: ", "))
                case .notEnoughTraffic where totals.unconfirmed > 0:
                    let names = report.endpoints.filter { $0.verdict == .unconfirmed }.map(\.endpoint)
                    Console.err(
                        "gate held: \(totals.unconfirmed) endpoint(s) differ where too few noise samples were taken to "
                            + "tell noise from a regression: " + names.joined(separator: ", "))
                case .notEnoughTraffic, .pass:
                    Console.err(
                        "gate failed: no endpoint reached \(self.minRequests) compared requests "
                            + "(\(totals.compared) compared over \(totals.endpoints) endpoint(s))")
                }
                throw ExitCode(report.verdict.exitStatus)
            }
        }
    }

    func render(_ report: MigrationReport) throws -> String {
        switch self.format {
        case .text:
            let colour = self.out == nil && !self.noColor && isatty(1) == 1
                && ProcessInfo.processInfo.environment["NO_COLOR"] == nil
            return TextRenderer(colour: colour).render(report)
        case .json:
            return try JSONRenderer().render(report) + "\n"
        case .html:
            return HTMLRenderer().render(report)
        }
    }

    /// The window from `--since` or `--from`/`--to`; nil bounds are open.
    ///
    /// `--since` is relative to now and cannot be mixed with absolute bounds, which would leave one of them unused.
    func window(now: Date) throws -> (Date?, Date?) {
        if let since = self.since {
            guard self.from == nil, self.to == nil else {
                throw CLIError.usage("--since cannot be combined with --from or --to")
            }
            guard let seconds = Self.duration(since) else {
                throw CLIError.usage("--since '\(since)' is not a duration such as 30s, 15m, 1h, 2d or 1w")
            }
            return (now.addingTimeInterval(-seconds), nil)
        }
        let from = try self.from.map { try Self.time($0, option: "--from") }
        let to = try self.to.map { try Self.time($0, option: "--to") }
        if let from, let to, to <= from {
            throw CLIError.usage("--to must be later than --from")
        }
        return (from, to)
    }

    /// Seconds in "90s", "15m", "1h", "2d", "1w" (or a bare number of seconds); nil when malformed or not positive.
    static func duration(_ text: String) -> TimeInterval? {
        let units: [Character: Double] = ["s": 1, "m": 60, "h": 3_600, "d": 86_400, "w": 604_800]
        var number = Substring(text)
        var unit = 1.0
        if let last = text.last, let factor = units[last] {
            number = text.dropLast()
            unit = factor
        }
        guard let value = Double(number), value > 0, value.isFinite else {
            return nil
        }
        return value * unit
    }

    /// An ISO 8601 time (with or without fractional seconds) or a date (midnight UTC).
    static func time(_ text: String, option: String) throws -> Date {
        let formatter = ISO8601DateFormatter()
        for options: ISO8601DateFormatter.Options in [
            [.withInternetDateTime], [.withInternetDateTime, .withFractionalSeconds], [.withFullDate],
        ] {
            formatter.formatOptions = options
            if let date = formatter.date(from: text) {
                return date
            }
        }
        throw CLIError.usage("\(option) '\(text)' is not an ISO 8601 time such as 2025-06-01T12:00:00Z or 2025-06-01")
    }
}
