import ArgumentParser
import Foundation
import FicusCore
import FicusStore

/// `ficus route`: the request matches, each with its legacy and default upstream and its rules.
struct RouteCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "route",
        abstract: "Add, change, remove, list and show routes.",
        subcommands: [Add.self, Update.self, Remove.self, List.self, Show.self]
    )
}

/// The options that describe a route's match and per-route settings, shared by `route add` and `route set`.
struct RouteShapeOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp("Match a path prefix on segment boundaries (/orders matches /orders/7).", valueName: "path"))
    var prefix: String?

    @Option(help: ArgumentHelp("Match a path template (/orders/{id}, /static/**).", valueName: "template"))
    var path: String?

    @Option(help: ArgumentHelp("Match only this host (exact, or *.example.com).", valueName: "host"))
    var host: String?

    @Option(help: ArgumentHelp("Match only these methods (comma-separated).", valueName: "GET,POST"))
    var methods: String?

    @Option(
        help: ArgumentHelp(
            "A path rewrite for requests sent to UPSTREAM; an empty replacement strips the prefix. Repeatable.",
            valueName: "upstream:prefix->replacement"
        )
    )
    var rewrite: [String] = []

    @Option(
        name: .customLong("connect-timeout"),
        help: ArgumentHelp("Upstream connect timeout for this route.", valueName: "ms"))
    var connectTimeout: Int?

    @Option(
        name: .customLong("response-timeout"),
        help: ArgumentHelp("Response-head timeout for this route.", valueName: "ms"))
    var responseTimeout: Int?

    @Option(
        help: ArgumentHelp(
            "Send a request whose upstream failed before answering to legacy (legacy, the default) or not (off).",
            valueName: "legacy|off"))
    var fallback: String?

    @Option(
        name: .customLong("fallback-on"),
        help: ArgumentHelp(
            "The upstream's answer statuses that fall back to legacy (comma-separated, 500-599; default 502,503,504).",
            valueName: "502,503,504"))
    var fallbackOn: String?

    @Option(
        name: .customLong("rate-limit"),
        help: ArgumentHelp(
            "Limit the route to REQUESTS per PERIOD fleet-wide (100/1s, 10/500ms, 1000/1m); answered 429 over it.",
            valueName: "requests/period"))
    var rateLimit: String?

    @Option(
        help: ArgumentHelp("The most requests at once after an idle period (default: the rate's requests).",
            valueName: "n"))
    var burst: Int?

    @Option(
        name: .customLong("rate-limit-key"),
        help: ArgumentHelp("What each bucket is kept per.", valueName: "none|client_ip|header:NAME|identity"))
    var rateLimitKey: String?

    @Option(
        name: .customLong("rate-limit-mode"),
        help: ArgumentHelp(
            "enforce (answer 429, the default) or observe (count what would be limited, let it through).",
            valueName: "enforce|observe"))
    var rateLimitMode: String?

    @Option(
        name: .customLong("stale-if-error"),
        help: ArgumentHelp(
            "Answer a failed GET with a recent copy of its 200 answer no older than this (60s, 5m).",
            valueName: "duration"))
    var staleIfError: String?

    @ArgumentParser.Flag(
        help: "Retry failed requests with the default policy (connect-failure, reset, 502, 503, 504; 1 attempt).")
    var retry = false

    @Option(
        name: .customLong("retry-on"),
        help: ArgumentHelp(
            "What is retried (comma-separated: connect-failure, reset, statuses 500-599).",
            valueName: "connect-failure,reset,503"))
    var retryOn: String?

    @Option(name: .customLong("retry-attempts"), help: ArgumentHelp("Retries after the first try (1-5).", valueName: "n"))
    var retryAttempts: Int?

    @Option(
        name: .customLong("per-try-timeout"),
        help: ArgumentHelp("The response timeout of each try (default: the route's).", valueName: "duration"))
    var perTryTimeout: String?

    @Option(
        name: .customLong("retry-backoff"),
        help: ArgumentHelp("The back-off's first and largest ceiling (default 25ms,250ms).", valueName: "base,max"))
    var retryBackoff: String?

    @Option(
        name: .customLong("retry-budget"),
        help: ArgumentHelp(
            "Retries in flight per upstream: at most PERCENT of active requests, or MIN (default 20,3).",
            valueName: "percent,min"))
    var retryBudget: String?

    /// Whether any retry option is given.
    var retryGiven: Bool {
        self.retry || self.retryOn != nil || self.retryAttempts != nil || self.perTryTimeout != nil
            || self.retryBackoff != nil || self.retryBudget != nil
    }

    /// The path from `--prefix` or `--path`, nil when neither is given.
    func pathPattern() throws -> String? {
        switch (self.prefix, self.path) {
        case (let prefix?, nil):
            return prefix
        case (nil, let path?):
            return path
        case (nil, nil):
            return nil
        case (.some, .some):
            throw CLIError.usage("give --prefix or --path, not both")
        }
    }

    /// Applies every given option to `route`, leaving the rest as it is.
    func apply(to route: inout Route) throws {
        if let path = try self.pathPattern() {
            route.path = path
        }
        if let host = self.host {
            route.host = host
        }
        if let methods = self.methods {
            route.methods = ArgumentText.methods(methods)
        }
        for text in self.rewrite {
            let (upstream, pathRewrite) = try ArgumentText.rewrite(text)
            var rewrite = route.rewrites[upstream] ?? RequestRewrite()
            rewrite.path = pathRewrite
            route.rewrites[upstream] = rewrite
        }
        if let connectTimeout = self.connectTimeout {
            route.timeouts.connectMilliseconds = connectTimeout
        }
        if let responseTimeout = self.responseTimeout {
            route.timeouts.responseHeaderMilliseconds = responseTimeout
        }
        if let fallback = self.fallback {
            guard fallback == "legacy" || fallback == "off" else {
                throw CLIError.usage("--fallback '\(fallback)': expected legacy or off")
            }
            route.fallback = fallback
        }
        if let fallbackOn = self.fallbackOn {
            var statuses: [Int] = []
            for part in fallbackOn.split(separator: ",", omittingEmptySubsequences: false) {
                let text = part.trimmingCharacters(in: .whitespaces)
                guard let status = Int(text), (500...599).contains(status) else {
                    throw CLIError.usage("--fallback-on '\(fallbackOn)': '\(text)' is not a status from 500 to 599")
                }
                statuses.append(status)
            }
            route.fallbackOn = statuses
        }
        try self.applyRateLimit(to: &route)
        try self.applyRetry(to: &route)
        if let stale = self.staleIfError {
            route.staleIfError = stale
        }
    }

    /// Sets or changes the route's retry policy: any retry option starts from the route's policy, or the defaults.
    /// Values are checked with the policy's own validation when the change is committed, which names the field.
    private func applyRetry(to route: inout Route) throws {
        guard self.retryGiven else { return }
        var policy = route.retry ?? RetryPolicy()
        if let text = self.retryOn {
            var conditions: [RetryPolicy.Condition] = []
            for part in text.split(separator: ",", omittingEmptySubsequences: false) {
                let item = part.trimmingCharacters(in: .whitespaces)
                guard let condition = RetryPolicy.Condition(item) else {
                    throw CLIError.usage(
                        "--retry-on '\(text)': '\(item)' is not connect-failure, reset or a status from 500 to 599")
                }
                conditions.append(condition)
            }
            policy.on = conditions
        }
        if let attempts = self.retryAttempts {
            policy.attempts = attempts
        }
        if let perTry = self.perTryTimeout {
            policy.perTryTimeout = perTry
        }
        if let text = self.retryBackoff {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2 else {
                throw CLIError.usage("--retry-backoff '\(text)': expected BASE,MAX such as 25ms,250ms")
            }
            policy.backoffBase = parts[0]
            policy.backoffMax = parts[1]
        }
        if let text = self.retryBudget {
            let parts = text.split(separator: ",", omittingEmptySubsequences: false).map {
                $0.trimmingCharacters(in: .whitespaces)
            }
            guard parts.count == 2, let percent = Int(parts[0].hasSuffix("%") ? String(parts[0].dropLast()) : parts[0]),
                let minimum = Int(parts[1])
            else {
                throw CLIError.usage("--retry-budget '\(text)': expected PERCENT,MIN such as 20,3")
            }
            policy.budgetPercent = percent
            policy.budgetMinConcurrent = minimum
        }
        route.retry = policy
    }

    /// Sets or changes the route's rate limit from `--rate-limit`, `--burst`, `--rate-limit-key` and
    /// `--rate-limit-mode`; the last three change an existing limit when `--rate-limit` is not given.
    private func applyRateLimit(to route: inout Route) throws {
        var limit = route.rateLimit
        if let text = self.rateLimit {
            let parts = text.split(separator: "/", omittingEmptySubsequences: false)
            guard parts.count == 2, let requests = Int(parts[0].trimmingCharacters(in: .whitespaces)),
                requests >= 1, requests <= RateLimit.maxRequests
            else {
                throw CLIError.usage(
                    "--rate-limit '\(text)': expected REQUESTS/PERIOD such as 100/1s, with 1 to "
                        + "\(RateLimit.maxRequests) requests")
            }
            let per = parts[1].trimmingCharacters(in: .whitespaces)
            guard DurationText.milliseconds(per) != nil else {
                throw CLIError.usage(
                    "--rate-limit '\(text)': '\(per)' is not a period from 1ms to 24h such as 500ms, 1s, 1m or 1h")
            }
            if limit == nil {
                limit = RateLimit(requests: requests, per: per)
            } else {
                limit?.requests = requests
                limit?.per = per
            }
        }
        let changes = [
            ("--burst", self.burst != nil), ("--rate-limit-key", self.rateLimitKey != nil),
            ("--rate-limit-mode", self.rateLimitMode != nil),
        ]
        guard var changed = limit else {
            if let (option, _) = changes.first(where: { $0.1 }) {
                throw CLIError.usage("\(option) needs a rate limit: give --rate-limit REQUESTS/PERIOD too")
            }
            return
        }
        if let burst = self.burst {
            guard burst >= 1, burst <= RateLimit.maxRequests else {
                throw CLIError.usage("--burst \(burst): expected 1 to \(RateLimit.maxRequests)")
            }
            changed.burst = burst
        }
        if let key = self.rateLimitKey {
            guard RateLimit.Key(key) != nil else {
                throw CLIError.usage("--rate-limit-key '\(key)': expected none, client_ip, header:NAME or identity")
            }
            changed.key = key
        }
        if let mode = self.rateLimitMode {
            guard mode == "enforce" || mode == "observe" else {
                throw CLIError.usage("--rate-limit-mode '\(mode)': expected enforce or observe")
            }
            changed.mode = mode
        }
        route.rateLimit = changed
    }
}

extension RouteCommand {
    /// `ficus route add NAME --prefix PATH --to UPSTREAM`.
    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "add",
            abstract: "Add a route; its legacy and default upstream are --to.",
            discussion: "The legacy upstream is where the route's traffic comes from; flips change only the default."
        )

        @Argument(help: "The route's name.")
        var name: String

        @Option(
            help: ArgumentHelp(
                "The upstream that serves the route now (its legacy and default).", valueName: "upstream"))
        var to: String

        @Option(help: ArgumentHelp("A different legacy upstream than --to.", valueName: "upstream"))
        var legacy: String?

        @OptionGroup var shape: RouteShapeOptions
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func validate() throws {
            guard self.shape.prefix != nil || self.shape.path != nil else {
                throw ArgumentParser.ValidationError("a route needs --prefix PATH or --path TEMPLATE")
            }
        }

        func run() async throws {
            try await ErrorReport.run {
                var route = Route(name: self.name, legacy: self.legacy ?? self.to, defaultUpstream: self.to)
                try self.shape.apply(to: &route)
                let newRoute = route
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "route.add")) { configuration in
                    guard configuration.routes.firstIndex(named: newRoute.name) == nil else {
                        throw CLIError.alreadyExists(kind: "route", name: newRoute.name, hint: "use 'ficus route set'")
                    }
                    try configuration.requireUpstream(newRoute.defaultUpstream)
                    try configuration.requireUpstream(newRoute.legacy)
                    configuration.routes.append(newRoute)
                }
            }
        }
    }

    /// `ficus route set NAME ...`.
    struct Update: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "set",
            abstract: "Change a route's match, upstreams, rewrites or timeouts; what is not given stays."
        )

        @Argument(help: "The route's name.")
        var name: String

        @Option(
            help: ArgumentHelp("Set the legacy upstream (where the route's traffic came from).", valueName: "upstream"))
        var legacy: String?

        @Option(
            name: .customLong("default"),
            help: ArgumentHelp("Set the default upstream (as 'ficus flip').", valueName: "upstream"))
        var defaultUpstream: String?

        @ArgumentParser.Flag(name: .customLong("any-host"), help: "Match every host.")
        var anyHost = false

        @ArgumentParser.Flag(name: .customLong("any-method"), help: "Match every method.")
        var anyMethod = false

        @Option(
            name: .customLong("no-rewrite"),
            help: ArgumentHelp("Remove the rewrite for UPSTREAM. Repeatable.", valueName: "upstream"))
        var noRewrite: [String] = []

        @ArgumentParser.Flag(name: .customLong("no-timeouts"), help: "Remove the route's timeout overrides.")
        var noTimeouts = false

        @ArgumentParser.Flag(name: .customLong("no-rate-limit"), help: "Remove the route's rate limit.")
        var noRateLimit = false

        @ArgumentParser.Flag(name: .customLong("no-retry"), help: "Remove the route's retry policy.")
        var noRetry = false

        @ArgumentParser.Flag(name: .customLong("no-stale-if-error"), help: "Stop answering failures with copies.")
        var noStaleIfError = false

        @OptionGroup var shape: RouteShapeOptions
        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let shape = self.shape
                let legacy = self.legacy
                let defaultUpstream = self.defaultUpstream
                let anyHost = self.anyHost
                let anyMethod = self.anyMethod
                let noRewrite = self.noRewrite
                let noTimeouts = self.noTimeouts
                let noRateLimit = self.noRateLimit
                if noRateLimit, shape.rateLimit != nil || shape.burst != nil || shape.rateLimitKey != nil
                    || shape.rateLimitMode != nil
                {
                    throw CLIError.usage("give --no-rate-limit or rate limit options, not both")
                }
                let noRetry = self.noRetry
                if noRetry, shape.retryGiven {
                    throw CLIError.usage("give --no-retry or retry options, not both")
                }
                let noStaleIfError = self.noStaleIfError
                if noStaleIfError, shape.staleIfError != nil {
                    throw CLIError.usage("give --no-stale-if-error or --stale-if-error, not both")
                }
                if anyHost, shape.host != nil {
                    throw CLIError.usage("give --host or --any-host, not both")
                }
                if anyMethod, shape.methods != nil {
                    throw CLIError.usage("give --methods or --any-method, not both")
                }
                _ = try shape.pathPattern()
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "route.set")) { configuration in
                    let index = try configuration.routeIndex(name)
                    var route = configuration.routes[index]
                    if noTimeouts {
                        route.timeouts = RouteTimeouts()
                    }
                    if noRateLimit {
                        route.rateLimit = nil
                    }
                    if noRetry {
                        route.retry = nil
                    }
                    if noStaleIfError {
                        route.staleIfError = nil
                    }
                    for upstream in noRewrite {
                        guard route.rewrites.removeValue(forKey: upstream) != nil else {
                            throw CLIError.notFound(
                                kind: "rewrite for upstream",
                                name: upstream,
                                known: Array(route.rewrites.keys)
                            )
                        }
                    }
                    try shape.apply(to: &route)
                    if anyHost {
                        route.host = nil
                    }
                    if anyMethod {
                        route.methods = []
                    }
                    if let legacy {
                        try configuration.requireUpstream(legacy)
                        route.legacy = legacy
                    }
                    if let defaultUpstream {
                        try configuration.requireUpstream(defaultUpstream)
                        route.defaultUpstream = defaultUpstream
                    }
                    configuration.routes[index] = route
                }
            }
        }
    }

    /// `ficus route rm NAME`.
    struct Remove: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "rm", abstract: "Remove a route and its rules.")

        @Argument(help: "The route's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var change: ChangeOptions

        func run() async throws {
            try await ErrorReport.run {
                let name = self.name
                let store = try await self.storeOptions.open()
                try await store.commitPrinting(self.change.changeAuthor(action: "route.rm")) { configuration in
                    configuration.routes.removeRoute(at: try configuration.routeIndex(name))
                }
            }
        }
    }

    /// `ficus route list`.
    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "list", abstract: "List the routes.")

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                if self.output.json {
                    try Console.json(configuration.routes)
                    return
                }
                var table = TextTable("NAME", "MATCH", "LEGACY", "DEFAULT", "RULES")
                for route in configuration.routes {
                    table.append([
                        route.name, route.matchSummary, route.legacy, route.defaultUpstream, "\(route.rules.count)",
                    ])
                }
                Console.out(table.rendered)
            }
        }
    }

    /// `ficus route show NAME`.
    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "show",
            abstract: "Show one route: match, upstreams, numbered rules, rewrites, timeouts and shadow policy."
        )

        @Argument(help: "The route's name.")
        var name: String

        @OptionGroup var storeOptions: StoreOptions
        @OptionGroup var output: OutputOptions

        func run() async throws {
            try await ErrorReport.run {
                let store = try await self.storeOptions.open()
                let (configuration, _) = try await store.latestConfiguration()
                let route = configuration.routes[try configuration.routeIndex(self.name)]
                if self.output.json {
                    try Console.json(route)
                    return
                }
                Console.out(RouteCommand.describe(route, killed: configuration.killed))
            }
        }
    }

    /// A route as readable lines: what `route show` prints.
    static func describe(_ route: Route, killed: Bool) -> String {
        var lines = [
            "route '\(route.name)'",
            "  match    \(route.matchSummary)",
            "  legacy   \(route.legacy)",
            "  default  \(route.defaultUpstream)"
                + (route.defaultUpstream == route.legacy ? " (not flipped)" : " (flipped)"),
        ]
        if killed {
            lines.append("  KILLED   the global kill switch is on: everything goes to \(route.legacy)")
        }
        if route.rules.isEmpty {
            lines.append("  rules    none")
        } else {
            lines.append("  rules")
            for (index, rule) in route.rules.enumerated() {
                lines.append("    \(index + 1). \(rule.oneLine)")
            }
        }
        for (upstream, rewrite) in route.rewrites.sorted(by: { $0.key < $1.key }) {
            lines.append("  rewrite  for \(upstream): \(rewrite.oneLine)")
        }
        if let connect = route.timeouts.connectMilliseconds {
            lines.append("  connect timeout  \(connect) ms")
        }
        if let response = route.timeouts.responseHeaderMilliseconds {
            lines.append("  response timeout  \(response) ms")
        }
        if route.fallsBackToLegacy {
            let statuses = route.fallbackStatuses.map(String.init).joined(separator: ", ")
            lines.append(
                "  fallback  to \(route.legacy) when another upstream fails before answering (connect failure, reset, "
                    + "timeout, status \(statuses))")
        } else {
            lines.append("  fallback  off")
        }
        if let retry = route.retry {
            lines.append("  retry    \(retry.oneLine)")
        } else {
            lines.append("  retry    none")
        }
        if let stale = route.staleIfError {
            lines.append("  stale if error  a failed GET gets a copy of its 200 answer up to \(stale) old")
        }
        if let limit = route.rateLimit {
            lines.append("  rate limit  \(limit.oneLine) (fleet-wide: each proxy enforces its share)")
        } else {
            lines.append("  rate limit  none")
        }
        if let shadow = route.shadow {
            lines.append("  shadow")
            lines += ShadowCommand.describe(shadow, route: route).map { "  " + $0 }
        } else {
            lines.append("  shadow   none")
        }
        return lines.joined(separator: "\n")
    }
}

extension Rule {
    /// The rule as one line: `'beta': segment 'beta' → users-v2 (sticky header:X-User-Id)`.
    var oneLine: String {
        var text = "'\(self.name)': \(self.condition) → \(self.upstream)"
        if let stickiness = self.stickiness {
            text += " (sticky \(stickiness))"
        }
        return text
    }
}

extension RequestRewrite {
    /// The rewrite as one line: `path /api/v1 -> /, set X-Migrated, remove Cookie`.
    var oneLine: String {
        var parts: [String] = []
        if let path = self.path {
            parts.append("path \(path.prefix) -> \(path.replacement.isEmpty ? "/" : path.replacement)")
        }
        if !self.setHeaders.isEmpty {
            parts.append("set " + self.setHeaders.map { "\($0.name): \($0.value)" }.joined(separator: ", "))
        }
        if !self.removeHeaders.isEmpty {
            parts.append("remove " + self.removeHeaders.joined(separator: ", "))
        }
        return parts.joined(separator: "; ")
    }
}
