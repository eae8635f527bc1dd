import ArgumentParser
import FicusCore
import FicusProxy
import FicusStore
import Foundation
import NIOPosix

/// `ficus status`: where traffic goes now, at a glance.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the current revision, where each route's traffic goes now, and the proxies seen recently."
    )

    @Option(
        name: .customLong("seen-within"),
        help: ArgumentHelp("Proxies seen within this many seconds.", valueName: "seconds"))
    var seenWithin: Double = 30

    @Option(
        name: .customLong("admin"),
        help: ArgumentHelp(
            "A running proxy's admin listener: show each upstream address's state (in rotation, or ejected until "
                + "when). Repeatable.",
            valueName: "host:port"))
    var admins: [String] = []

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    /// One route's state, for `--json`.
    struct RouteState: Encodable {
        var name: String
        var match: String
        var legacy: String
        var defaultUpstream: String
        var rules: [String]
        var now: String
        /// The route's rate limit on one line (`100/1s burst 200 key client_ip enforce`), or nil.
        var rateLimit: String?
    }

    /// The whole status, for `--json`.
    struct Status: Encodable {
        var revision: Int
        var author: String?
        var reason: String?
        var time: Date?
        var killed: Bool
        var routes: [RouteState]
        var proxies: [ProxyState]
        /// Address states read from `--admin` listeners, by listener.
        var addresses: [String: [UpstreamAddressState]]?
    }

    /// One proxy's heartbeat, for `--json`.
    struct ProxyState: Encodable {
        var id: String
        var listen: String
        var revision: Int
        var startedAt: Date
        var lastSeen: Date
        var current: Bool
    }

    func run() async throws {
        try await ErrorReport.run {
            let store = try await self.storeOptions.open()
            let latest = try await store.latest()
            let configuration = latest?.configuration ?? Configuration()
            let revision = latest?.number ?? 0
            let routes = configuration.routes.map { route in
                RouteState(
                    name: route.name,
                    match: route.matchSummary,
                    legacy: route.legacy,
                    defaultUpstream: route.defaultUpstream,
                    rules: route.rules.map(\.oneLine),
                    now: StatusCommand.now(route, configuration: configuration),
                    rateLimit: route.rateLimit?.oneLine
                )
            }
            let proxies = try await store.proxies(seenWithin: self.seenWithin).map {
                ProxyState(
                    id: $0.id,
                    listen: $0.listen,
                    revision: $0.revision,
                    startedAt: $0.startedAt,
                    lastSeen: $0.lastSeen,
                    current: $0.revision == revision
                )
            }
            var addresses: [String: [UpstreamAddressState]] = [:]
            for admin in self.admins {
                addresses[admin] = try await StatusCommand.addressStates(admin)
            }
            let status = Status(
                revision: revision,
                author: latest?.author,
                reason: latest?.reason,
                time: latest?.createdAt,
                killed: configuration.killed,
                routes: routes,
                proxies: proxies,
                addresses: self.admins.isEmpty ? nil : addresses
            )
            if self.output.json {
                try Console.json(status)
                return
            }
            var lines: [String] = []
            if let latest {
                let time = ISO8601DateFormatter().string(from: latest.createdAt)
                let reason = latest.reason.isEmpty ? "" : ": \(latest.reason)"
                lines.append("revision \(latest.number) by \(latest.author) at \(time)\(reason)")
            } else {
                lines.append("revision 0: the store is empty (add upstreams and routes, or 'ficus apply rules/')")
            }
            if configuration.killed {
                lines.append(
                    "KILLED: the global kill switch is on; every route goes to its legacy upstream ('ficus unkill')")
            }
            lines.append("")
            var table = TextTable("ROUTE", "MATCH", "LEGACY", "DEFAULT", "TRAFFIC NOW")
            for route in routes {
                table.append([route.name, route.match, route.legacy, route.defaultUpstream, route.now])
            }
            lines.append(table.rendered)
            lines.append("")
            let limited = routes.filter { $0.rateLimit != nil }
            if !limited.isEmpty {
                var limits = TextTable("ROUTE", "RATE LIMIT (fleet-wide: each live proxy enforces its share)")
                for route in limited {
                    limits.append([route.name, route.rateLimit ?? ""])
                }
                lines.append(limits.rendered)
                lines.append("")
            }
            if proxies.isEmpty {
                lines.append("no proxy seen in the last \(Int(self.seenWithin)) s")
            } else {
                var proxyTable = TextTable("PROXY", "LISTEN", "REVISION", "LAST SEEN")
                for proxy in proxies {
                    let age = max(0, Int(Date().timeIntervalSince(proxy.lastSeen)))
                    let revisionText = proxy.current ? "\(proxy.revision)" : "\(proxy.revision) (behind)"
                    proxyTable.append([proxy.id, proxy.listen, revisionText, "\(age) s ago"])
                }
                lines.append(proxyTable.rendered)
            }
            for admin in self.admins {
                lines.append("")
                lines.append("upstream addresses seen by the proxy at \(admin):")
                var table = TextTable("UPSTREAM", "ADDRESS", "WEIGHT", "STATE")
                for state in addresses[admin] ?? [] {
                    table.append([state.upstream, state.address, "\(state.weight)", StatusCommand.describe(state)])
                }
                lines.append(table.rendered)
            }
            Console.out(lines.joined(separator: "\n"))
        }
    }

    /// The address states a proxy's admin listener at `admin` (`HOST:PORT`) reports on `/upstreams`.
    static func addressStates(_ admin: String) async throws -> [UpstreamAddressState] {
        guard let endpoint = Endpoint(parsing: admin), endpoint.weight == nil else {
            throw CLIError.usage("--admin '\(admin)': expected HOST:PORT of a proxy's admin listener")
        }
        let client = AdminClient(host: endpoint.host, port: endpoint.port, group: MultiThreadedEventLoopGroup.singleton)
        let (status, body) = try await client.get("/upstreams")
        guard status == 200 else {
            throw CLIError.failed("--admin \(admin): /upstreams answered \(status) (a proxy older than this CLI?)")
        }
        struct Body: Decodable { var addresses: [UpstreamAddressState] }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(Body.self, from: Data(body)).addresses
    }

    /// `in rotation`, `ejected until 12:00:31Z (28 s, 2nd time)` or `in rotation (no outlier ejection)`.
    static func describe(_ state: UpstreamAddressState) -> String {
        if state.healthCheck == "unhealthy" {
            return "unhealthy (failing its health check" + (state.healthCheckFailure.map { ": " + $0 } ?? "") + ")"
                + (state.ejectedUntil.map { ", and ejected until " + ISO8601DateFormatter().string(from: $0) } ?? "")
        }
        guard let until = state.ejectedUntil else {
            return state.outlierDetection
                ? "in rotation" + (state.consecutive5xx > 0 ? " (\(state.consecutive5xx) 5xx in a row)" : "")
                : "in rotation (no outlier ejection)"
        }
        let left = max(0, Int(until.timeIntervalSinceNow.rounded(.up)))
        let time = ISO8601DateFormatter().string(from: until)
        return "ejected until \(time) (\(left) s left, ejected \(state.timesEjected)×)"
    }

    /// Where a route's traffic goes now, in words: `legacy (killed)`, `segment 'beta' → orders-v2; rest → legacy`.
    ///
    /// Operators read `status` under pressure; the rules in order and the default say it without a lookup.
    static func now(_ route: Route, configuration: Configuration) -> String {
        if configuration.killed {
            return "\(route.legacy) (killed)"
        }
        let offFlags = Set(configuration.flags.filter { !$0.enabled }.map(\.name))
        var parts: [String] = []
        for rule in route.rules {
            if let flag = rule.condition.flagNames.first(where: offFlags.contains) {
                parts.append("rule '\(rule.name)' off (flag '\(flag)')")
                continue
            }
            parts.append("\(rule.condition) → \(rule.upstream)")
        }
        parts.append((parts.isEmpty ? "all → " : "rest → ") + route.defaultUpstream)
        return parts.joined(separator: "; ")
    }
}

/// `ficus history [--route R] [--limit N]`.
struct HistoryCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "history",
        abstract: "List revisions, newest first, with author, reason, time and what changed."
    )

    @Option(help: ArgumentHelp("Only revisions that changed this route.", valueName: "route"))
    var route: String?

    @Option(help: ArgumentHelp("At most this many revisions.", valueName: "n"))
    var limit: Int?

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    /// One revision, for `--json`.
    struct Entry: Encodable {
        var revision: Int
        var author: String
        var reason: String
        var time: Date
        var summary: String
        var routesChanged: [String]
    }

    func run() async throws {
        try await ErrorReport.run {
            if let limit = self.limit, limit < 1 {
                throw CLIError.usage("--limit \(limit): must be at least 1")
            }
            let store = try await self.storeOptions.open()
            let entries = try await store.history(limit: self.limit, route: self.route).map {
                Entry(
                    revision: $0.number,
                    author: $0.author,
                    reason: $0.reason,
                    time: $0.createdAt,
                    summary: $0.summary,
                    routesChanged: $0.routesChanged
                )
            }
            if self.output.json {
                try Console.json(entries)
                return
            }
            let formatter = ISO8601DateFormatter()
            var table = TextTable("REV", "TIME", "AUTHOR", "CHANGE", "REASON")
            for entry in entries {
                table.append([
                    "\(entry.revision)", formatter.string(from: entry.time), entry.author, entry.summary,
                    entry.reason.isEmpty ? "-" : entry.reason,
                ])
            }
            Console.out(table.rendered)
        }
    }
}

/// `ficus diff REV1 REV2`.
struct DiffCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "diff",
        abstract: "Show what changed from one revision to another (+ added, ~ changed, - removed)."
    )

    @Argument(help: "The earlier revision.")
    var from: Int

    @Argument(help: "The later revision.")
    var to: Int

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    func run() async throws {
        try await ErrorReport.run {
            let store = try await self.storeOptions.open()
            let old = try await store.revision(self.from)
            let new = try await store.revision(self.to)
            let changes = RevisionDiff(from: old.configuration, to: new.configuration)
            if self.output.json {
                try Console.json(changes.entries)
                return
            }
            guard !changes.isEmpty else {
                Console.out("revisions \(self.from) and \(self.to) are identical")
                return
            }
            Console.out("revision \(self.from) → \(self.to):")
            for line in changes.lines {
                Console.out("  " + line)
            }
        }
    }
}

/// `ficus explain METHOD URL [-H 'K: V']... [--cookie K=V] [--ip ADDR]`.
struct ExplainCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "explain",
        abstract: "Show which route, rule, bucket, upstream and shadow a request would get, and why.",
        discussion: "URL is a path (/orders/7?x=1) or an absolute URL (https://api.example.com/orders/7)."
    )

    @Argument(help: "The request method.")
    var method: String

    @Argument(help: "The request URL or path.")
    var url: String

    @Option(
        name: [.customShort("H"), .customLong("header")],
        help: ArgumentHelp("A request header. Repeatable.", valueName: "'name: value'"))
    var headers: [String] = []

    @Option(help: ArgumentHelp("A cookie. Repeatable.", valueName: "name=value"))
    var cookie: [String] = []

    @Option(help: ArgumentHelp("The client address.", valueName: "addr"))
    var ip: String?

    @Option(
        name: .customLong("client-cert-subject"),
        help: ArgumentHelp(
            "The subject of a verified client certificate (client_cert_subject).", valueName: "'CN=...,O=...'")
    )
    var clientCertSubject: String?

    @Option(help: ArgumentHelp("Explain against this revision (default: the newest).", valueName: "n"))
    var revision: Int?

    @OptionGroup var storeOptions: StoreOptions
    @OptionGroup var output: OutputOptions

    /// The explanation, for `--json`.
    struct Result: Encodable {
        var revision: Int
        var request: String
        var route: String?
        var rule: String?
        var bucket: Int?
        var upstream: String?
        var shadow: String?
        var preview: String?
        var reason: String
        var rewrite: String?
        /// The upstream a failed request would go to instead, and on which of its statuses.
        var fallback: String?
        var fallbackOn: [Int]?
        /// The matched route's rate limit with its defaults filled in, or nil.
        var rateLimit: RateLimit?
        /// The matched route's retry policy with its defaults written out, or nil.
        var retry: RetryPolicy?
        /// The matched route's `stale_if_error`, or nil.
        var staleIfError: String?
        /// How the chosen upstream picks an address, ejects failing ones and limits what is in flight (defaults
        /// filled in; `outlier` absent: no ejection).
        var balance: String?
        var outlier: OutlierPolicy?
        var limits: UpstreamLimits?
        /// The chosen upstream's active health check with its defaults filled in, or nil.
        var healthCheck: HealthCheckPolicy?
        var steps: [String]
    }

    func run() async throws {
        try await ErrorReport.run {
            var headers: [(String, String)] = []
            for text in self.headers {
                headers.append(try ArgumentText.pair(text, option: "-H", separators: [":"]))
            }
            if !self.cookie.isEmpty {
                for text in self.cookie {
                    _ = try ArgumentText.pair(text, option: "--cookie")
                }
                headers.append(("Cookie", self.cookie.joined(separator: "; ")))
            }
            var address: IPAddress?
            if let ip = self.ip {
                guard let parsed = IPAddress(ip) else {
                    throw CLIError.usage("--ip '\(ip)': not an IPv4 or IPv6 address")
                }
                address = parsed
            }
            let store = try await self.storeOptions.open()
            let stored: StoredRevision
            if let number = self.revision {
                stored = try await store.revision(number)
            } else {
                stored = try await store.requireLatest()
            }
            let table = try RoutingTable(configuration: stored.configuration, revision: stored.number)
            var facts = RequestFacts(
                method: self.method.uppercased(), target: self.url, headers: headers, clientAddress: address)
            facts.clientCertificateSubject = self.clientCertSubject
            let explanation = table.explain(facts)
            let chosen = stored.configuration.upstream(named: explanation.decision.upstream)
            if self.output.json {
                let decision = explanation.decision
                try Console.json(
                    Result(
                        revision: stored.number,
                        request: explanation.request,
                        route: decision.route,
                        rule: decision.rule,
                        bucket: decision.bucket,
                        upstream: decision.upstream.isEmpty ? nil : decision.upstream,
                        shadow: decision.shadow,
                        preview: decision.preview?.rawValue,
                        reason: decision.reason.rawValue,
                        rewrite: decision.rewrite?.oneLine,
                        fallback: decision.fallback,
                        fallbackOn: decision.fallback == nil ? nil : decision.fallbackStatuses,
                        rateLimit: Self.rateLimit(of: decision.route, in: stored.configuration),
                        retry: Self.retry(of: decision.route, in: stored.configuration),
                        staleIfError: Self.route(decision.route, in: stored.configuration)?.staleIfError,
                        balance: chosen?.effectiveBalance.rawValue,
                        outlier: chosen?.outlier.flatMap { $0.isEnabled ? $0.resolved : nil },
                        limits: chosen.map { ($0.limits ?? UpstreamLimits()).resolved(poolConnections: 1024, poolPending: 1024) },
                        healthCheck: chosen?.healthCheck?.resolved,
                        steps: explanation.description.split(separator: "\n").map(String.init)
                    )
                )
                return
            }
            Console.out("revision \(stored.number)")
            Console.out(explanation.description)
            Console.out("shadow: \(explanation.decision.shadow ?? "none")")
            if let fallback = explanation.decision.fallback {
                let statuses = explanation.decision.fallbackStatuses.map(String.init).joined(separator: ", ")
                Console.out(
                    "fallback: \(fallback) if \(explanation.decision.upstream) fails before answering (connect failure, "
                        + "reset, timeout, status \(statuses))")
            } else {
                Console.out("fallback: none")
            }
            if let stale = Self.route(explanation.decision.route, in: stored.configuration)?.staleIfError {
                Console.out("stale if error: a failed GET gets a copy of its 200 answer up to \(stale) old")
            }
            if let retry = Self.retry(of: explanation.decision.route, in: stored.configuration) {
                Console.out("retry: \(retry.oneLine)")
            } else {
                Console.out("retry: none")
            }
            if let limit = Self.rateLimit(of: explanation.decision.route, in: stored.configuration) {
                Console.out("rate limit: \(limit.oneLine) (fleet-wide: each proxy enforces its share)")
            } else {
                Console.out("rate limit: none")
            }
            if let chosen {
                Console.out("upstream \(chosen.name):")
                for line in UpstreamCommand.resilienceLines(chosen) {
                    Console.out("  " + line)
                }
            }
        }
    }

    /// `route`'s retry policy, or nil.
    static func retry(of route: String?, in configuration: Configuration) -> RetryPolicy? {
        self.route(route, in: configuration)?.retry
    }

    /// The route named `name`, or nil.
    static func route(_ name: String?, in configuration: Configuration) -> Route? {
        guard let name else { return nil }
        return configuration.routes.first(where: { $0.name == name })
    }

    /// `route`'s rate limit with its defaults written out (burst, key, mode), or nil.
    static func rateLimit(of route: String?, in configuration: Configuration) -> RateLimit? {
        guard let route, var limit = configuration.routes.first(where: { $0.name == route })?.rateLimit else {
            return nil
        }
        limit.burst = limit.effectiveBurst
        limit.key = limit.key ?? "none"
        limit.mode = limit.mode ?? "enforce"
        return limit
    }
}
