import ArgumentParser
import FicusCore
import FicusStore

/// The options of `ficus upstream add` and `set` that change how an upstream is protected and balanced: outlier
/// ejection, load balancing and circuit breakers (docs/PROXY.md).
struct UpstreamResilienceOptions: ParsableArguments {
    /// `--outlier on|off`.
    @Option(help: ArgumentHelp("Outlier ejection on or off (on: Envoy's defaults for what is not given).", valueName: "on|off"))
    var outlier: String?

    /// `--outlier-consecutive-5xx`.
    @Option(
        name: .customLong("outlier-consecutive-5xx"),
        help: ArgumentHelp("5xx answers in a row that eject an address (default 5; 0: not this trigger).", valueName: "n"))
    var consecutive5xx: Int?

    /// `--outlier-consecutive-gateway-failure`.
    @Option(
        name: .customLong("outlier-consecutive-gateway-failure"),
        help: ArgumentHelp(
            "Gateway failures (502, 503, 504, connect failures) in a row that eject an address (default 5).",
            valueName: "n"))
    var consecutiveGatewayFailure: Int?

    /// `--outlier-base-ejection-time`, as text (`30s`).
    @Option(
        name: .customLong("outlier-base-ejection-time"),
        help: ArgumentHelp("First ejection's length; each next one is this times the ejections (default 30s).", valueName: "time"))
    var baseEjectionTime: String?

    /// `--outlier-max-ejection-time`, as text.
    @Option(
        name: .customLong("outlier-max-ejection-time"),
        help: ArgumentHelp("Longest ejection (default 300s).", valueName: "time"))
    var maxEjectionTime: String?

    /// `--outlier-max-ejection-percent`.
    @Option(
        name: .customLong("outlier-max-ejection-percent"),
        help: ArgumentHelp("Most addresses out at once, in percent; one may always go (default 10).", valueName: "n"))
    var maxEjectionPercent: Int?

    /// `--balance`.
    @Option(help: ArgumentHelp("How requests pick an address.", valueName: "round_robin|least_request"))
    var balance: String?

    /// `--max-connections`.
    @Option(
        name: .customLong("max-connections"),
        help: ArgumentHelp("Connections open to the upstream (default: the proxy's --pool limit, 1024).", valueName: "n"))
    var maxConnections: Int?

    /// `--max-pending`.
    @Option(
        name: .customLong("max-pending"),
        help: ArgumentHelp("Requests waiting for a connection; over it: 503 or fallback (default 1024).", valueName: "n"))
    var maxPending: Int?

    /// `--max-requests`.
    @Option(
        name: .customLong("max-requests"),
        help: ArgumentHelp("Requests in flight; over it: 503 or fallback (default 1024).", valueName: "n"))
    var maxRequests: Int?

    /// `--max-retries`.
    @Option(
        name: .customLong("max-retries"),
        help: ArgumentHelp("Re-sends, fallbacks and retries in flight to the upstream (default 3).", valueName: "n"))
    var maxRetries: Int?

    /// `--health-check PATH`: active health checks with the defaults for what is not given.
    @Option(
        name: .customLong("health-check"),
        help: ArgumentHelp("Check each address with GET PATH (every 10s by default); failing ones leave rotation.",
            valueName: "path"))
    var healthCheck: String?

    /// `--health-check-interval`.
    @Option(
        name: .customLong("health-check-interval"),
        help: ArgumentHelp("Time between two checks of an address (default 10s).", valueName: "time"))
    var healthCheckInterval: String?

    /// `--health-check-timeout`.
    @Option(
        name: .customLong("health-check-timeout"),
        help: ArgumentHelp("How long one check may take, connect included (default 1s).", valueName: "time"))
    var healthCheckTimeout: String?

    /// `--healthy`.
    @Option(help: ArgumentHelp("Good checks in a row that bring an address back (default 2).", valueName: "n"))
    var healthy: Int?

    /// `--unhealthy`.
    @Option(help: ArgumentHelp("Failed checks in a row that take an address out (default 3).", valueName: "n"))
    var unhealthy: Int?

    /// `--health-check-expect`.
    @Option(
        name: .customLong("health-check-expect"),
        help: ArgumentHelp("Statuses that count as good (default 200-399).", valueName: "200-399"))
    var healthCheckExpect: String?

    /// `--no-health-check`.
    @ArgumentParser.Flag(name: .customLong("no-health-check"), help: "Stop checking the upstream's addresses.")
    var noHealthCheck = false

    /// `--default-limits`.
    @ArgumentParser.Flag(
        name: .customLong("default-limits"), help: "Drop the upstream's own limits: the defaults apply again.")
    var defaultLimits = false

    /// Whether any option was given (`set` with none of them and nothing else has nothing to do).
    var isEmpty: Bool {
        self.outlier == nil && self.consecutive5xx == nil && self.consecutiveGatewayFailure == nil
            && self.baseEjectionTime == nil && self.maxEjectionTime == nil && self.maxEjectionPercent == nil
            && self.balance == nil && self.maxConnections == nil && self.maxPending == nil && self.maxRequests == nil
            && self.maxRetries == nil && !self.defaultLimits && !self.healthCheckGiven && !self.noHealthCheck
    }

    /// Whether any health check option was given.
    var healthCheckGiven: Bool {
        self.healthCheck != nil || self.healthCheckInterval != nil || self.healthCheckTimeout != nil
            || self.healthy != nil || self.unhealthy != nil || self.healthCheckExpect != nil
    }

    /// Applies the options to `upstream`: given values replace, others stay; an outlier number turns ejection on
    /// unless `--outlier off` is given with it. Range checks are validation's (one set of messages for the CLI and
    /// rules files).
    func apply(to upstream: inout Upstream) throws {
        let outlierNumbersGiven =
            self.consecutive5xx != nil || self.consecutiveGatewayFailure != nil || self.baseEjectionTime != nil
            || self.maxEjectionTime != nil || self.maxEjectionPercent != nil
        if self.outlier != nil || outlierNumbersGiven {
            var policy = upstream.outlier ?? OutlierPolicy()
            switch self.outlier {
            case nil: break
            case "on": policy.enabled = nil
            case "off": policy.enabled = false
            case let other?: throw CLIError.usage("--outlier '\(other)': expected on or off")
            }
            if let value = self.consecutive5xx { policy.consecutive5xx = value }
            if let value = self.consecutiveGatewayFailure { policy.consecutiveGatewayFailure = value }
            if let text = self.baseEjectionTime {
                policy.baseEjectionTime = try Self.time(text, option: "--outlier-base-ejection-time")
            }
            if let text = self.maxEjectionTime {
                policy.maxEjectionTime = try Self.time(text, option: "--outlier-max-ejection-time")
            }
            if let value = self.maxEjectionPercent { policy.maxEjectionPercent = value }
            upstream.outlier = policy
        }
        if let text = self.balance {
            guard let balance = BalancePolicy(rawValue: text) else {
                throw CLIError.usage("--balance '\(text)': expected round_robin or least_request")
            }
            upstream.balance = balance == .roundRobin ? nil : balance
        }
        var limits = self.defaultLimits ? UpstreamLimits() : (upstream.limits ?? UpstreamLimits())
        if let value = self.maxConnections { limits.maxConnections = value }
        if let value = self.maxPending { limits.maxPending = value }
        if let value = self.maxRequests { limits.maxRequests = value }
        if let value = self.maxRetries { limits.maxRetries = value }
        upstream.limits = limits.isEmpty ? nil : limits
        try self.applyHealthCheck(to: &upstream)
    }

    /// Sets, changes or removes the upstream's active health check; the numbers change an existing check, or need
    /// `--health-check PATH`.
    private func applyHealthCheck(to upstream: inout Upstream) throws {
        if self.noHealthCheck {
            guard !self.healthCheckGiven else {
                throw CLIError.usage("give --no-health-check or health check options, not both")
            }
            upstream.healthCheck = nil
            return
        }
        guard self.healthCheckGiven else { return }
        guard var check = self.healthCheck.map({ HealthCheckPolicy(path: $0) }) ?? upstream.healthCheck else {
            throw CLIError.usage("health check options need a check: give --health-check PATH too")
        }
        if let path = self.healthCheck, upstream.healthCheck != nil {
            check = upstream.healthCheck!
            check.path = path
        }
        if let text = self.healthCheckInterval {
            check.interval = try Self.time(text, option: "--health-check-interval")
        }
        if let text = self.healthCheckTimeout {
            check.timeout = try Self.time(text, option: "--health-check-timeout")
        }
        if let value = self.healthy { check.healthy = value }
        if let value = self.unhealthy { check.unhealthy = value }
        if let text = self.healthCheckExpect { check.expect = text }
        upstream.healthCheck = check
    }

    /// `text` as a time span, or a usage error naming `option`.
    private static func time(_ text: String, option: String) throws -> TimeSpan {
        guard let span = TimeSpan(parsing: text) else {
            throw CLIError.usage("\(option) '\(text)': expected a time such as 500ms, 30s or 5m")
        }
        return span
    }
}

extension UpstreamCommand {
    /// `ficus upstream show NAME`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one upstream: addresses and weights, slots, balancing, outlier ejection and limits."
        )

        /// The upstream to show.
        @Argument(help: "The upstream's name.")
        var name: String

        /// Where the store is.
        @OptionGroup var storeOptions: StoreOptions
        /// `--json`.
        @OptionGroup var output: OutputOptions

        /// Prints the upstream from the newest revision.
        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                let upstream = configuration.upstreams[try configuration.upstreamIndex(self.name)]
                if self.output.json {
                    try Console.json(upstream)
                    return
                }
                Console.out(UpstreamCommand.describe(upstream))
            }
        }
    }

    /// An upstream as readable lines, with every default filled in: what `upstream show` prints.
    static func describe(_ upstream: Upstream) -> String {
        var lines = ["upstream '\(upstream.name)'"]
        if let slots = upstream.slots {
            lines.append("  slots      active \(slots.active.rawValue); blue \(Self.list(slots.blue)); green \(Self.list(slots.green))")
        } else {
            lines.append("  addresses  \(Self.list(upstream.addresses))")
        }
        lines.append("  " + Self.resilienceLines(upstream).joined(separator: "\n  "))
        return lines.joined(separator: "\n")
    }

    /// Balancing, outlier ejection and limits of `upstream` as lines (`balance    round_robin`, ...), for `show` and
    /// `explain`.
    static func resilienceLines(_ upstream: Upstream) -> [String] {
        let weighted = upstream.addresses.contains { $0.weight != nil } ? " (weighted)" : ""
        return [
            "balance    \(upstream.effectiveBalance.rawValue)\(weighted)",
            "outlier    " + (upstream.outlier.map { $0.oneLine } ?? "off (no outlier ejection)"),
            "limits     " + (upstream.limits ?? UpstreamLimits()).oneLine(poolConnections: 1024, poolPending: 1024),
            "health     " + (upstream.healthCheck.map { $0.oneLine } ?? "no active checks"),
        ]
    }
}
