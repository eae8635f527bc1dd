import ArgumentParser
import FicusCore
import FicusProxy
import FicusRuntime
import FicusStore
import Foundation
import Logging
import Prometheus
import ServiceLifecycle
import UnixSignals

/// `ficus serve`: run the proxy.
struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Run the proxy.",
        discussion: """
            With --upstream and --default, every request goes to the default upstream from an in-memory \
            configuration and no store file is read or created. Without --upstream, the rule store is opened \
            (created and migrated on first use) and every new revision committed to it, by any process, is served \
            within milliseconds.
            """
    )

    @Option(help: "Address to serve clients on (HOST:PORT).")
    var listen = "127.0.0.1:8080"

    @Option(help: "Admin listener for /healthz and /metrics (HOST:PORT); loopback by default.")
    var admin = "127.0.0.1:9901"

    @Option(help: "An upstream: NAME=HOST:PORT[,HOST:PORT...]. Repeatable.")
    var upstream: [String] = []

    @Option(name: .customLong("default"), help: "The upstream that serves every request (with --upstream).")
    var defaultUpstream: String?

    @Option(
        help: """
            The rule store, used without --upstream: an SQLite file or postgres://USER@HOST:PORT/DB?sslmode=… \
            Default: $FICUS_STORE or ./ficus.sqlite.
            """
    )
    var store: String?

    @ArgumentParser.Flag(
        name: .customLong("init"),
        help: "Create the store when it is missing (without it a missing store is an error)."
    )
    var initStore = false

    @Option(
        name: .customLong("config-cache"),
        help: """
            File keeping the last configuration served, read at start when the store cannot be (then served until \
            the store returns), or 'off'. Default: beside an SQLite store (STORE.served.json); \
            ./ficus-served-DB-HOST-PORT.json for PostgreSQL.
            """
    )
    var configCache: String?

    @Option(
        name: .customLong("telemetry-max-size"),
        help: "Largest size of the telemetry file beside an SQLite store (shadow records, metric windows): bytes or 1GiB."
    )
    var telemetryMaxSize = "1GiB"

    @Option(
        name: .customLong("stale-cache"),
        help: "Bytes of recent answers kept for routes with stale_if_error (the least recently used go first): 64MiB."
    )
    var staleCache = "64MiB"

    @Option(name: .customLong("poll-interval"), help: "How often the store is polled for new revisions, in milliseconds.")
    var pollInterval: Int = 5

    @Option(name: .customLong("heartbeat-interval"), help: "How often this proxy records itself in the store, in seconds.")
    var heartbeatInterval: Int = 3

    @Option(name: .customLong("window-interval"), help: "Seconds per stored metric window (traffic shares, gates).")
    var windowInterval: Int = 10

    @Option(
        name: .customLong("lease-ttl"),
        help: "Seconds a proxy's lease on a canary lasts unless renewed; another proxy takes over after it lapses."
    )
    var leaseTTL: Double = 15

    @Option(help: "Event-loop threads (default: the number of cores).")
    var threads: Int?

    @Option(
        name: .customLong("trusted-proxy"),
        help: """
            CIDR of a proxy in front of Ficus: its X-Forwarded-* fields are kept, and the client is the right-most \
            X-Forwarded-For address that is not a trusted proxy. Repeatable.
            """
    )
    var trustedProxy: [String] = []

    @Option(
        name: .customLong("untrusted-field"),
        help: """
            A request field removed when the peer is not a trusted proxy, beyond Forwarded, X-Real-IP, \
            True-Client-IP, X-Original-URL and X-Rewrite-URL. Repeatable.
            """
    )
    var untrustedField: [String] = []

    @Option(
        name: .customLong("max-connections"),
        help: "Client connections open at once; more are closed at once. Default: from the open-file limit."
    )
    var maxConnections: Int?

    @Option(
        name: .customLong("noise-floor"),
        help: "Shadowed safe requests of each endpoint that are always noise samples before --noise-percent applies."
    )
    var noiseFloor: Int = 20

    @Option(
        name: .customLong("shadow-memory"),
        help: "Bytes of captured bodies that shadow copies may hold at once (over it copies are dropped)."
    )
    var shadowMemory: Int = 256 * 1024 * 1024

    @Option(name: .customLong("log-format"), help: "Log format: text or json.")
    var logFormat = "text"

    @Option(name: .customLong("log-level"), help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel = "info"

    @Option(name: .customLong("access-log"), help: "One log line per request: on or off.")
    var accessLog = "on"

    @ArgumentParser.Flag(
        name: .customLong("log-redact-query"),
        help: "Leave query strings out of access log lines (path?REDACTED): they often carry personal data."
    )
    var logRedactQuery = false

    @Option(name: .customLong("max-body"), help: "Largest request body in bytes (413 above it).")
    var maxBody: Int64 = 10 * 1024 * 1024

    @Option(name: .customLong("drain-timeout"), help: "Seconds to let in-flight requests finish on SIGTERM/SIGINT.")
    var drainTimeout: Int = 30

    @Option(name: .customLong("connect-timeout"), help: "Upstream connect timeout in milliseconds (503 on expiry).")
    var connectTimeout: Int64 = 5000

    @Option(name: .customLong("response-timeout"), help: "Upstream response-head timeout in milliseconds (504).")
    var responseTimeout: Int64 = 30000

    @Option(name: .customLong("header-timeout"), help: "Client request-head deadline in milliseconds (408).")
    var headerTimeout: Int64 = 10000

    @Option(name: .customLong("idle-timeout"), help: "Client keep-alive idle timeout in milliseconds.")
    var idleTimeout: Int64 = 60000

    @Option(
        name: .customLong("tls-cert"),
        help: "Serve HTTPS with this certificate chain (PEM, leaf first); re-read on change and on SIGHUP."
    )
    var tlsCert: String?

    @Option(name: .customLong("tls-key"), help: "The private key of --tls-cert (PEM).")
    var tlsKey: String?

    @Option(
        name: .customLong("tls-client-ca"),
        help: "Demand client certificates issued by these CAs (PEM); rules see the subject as client_cert_subject."
    )
    var tlsClientCA: String?

    @Option(
        name: .customLong("http2"),
        help: "With --tls-cert: offer HTTP/2 to clients by ALPN (on or off); HTTP/1.1 is always offered."
    )
    var http2 = "on"

    @Option(
        name: .customLong("tunnel-idle-timeout"),
        help: "Seconds a WebSocket tunnel may carry no byte either way before it is closed."
    )
    var tunnelIdleTimeout: Int = 300

    @Option(name: .customLong("max-tunnels"), help: "WebSocket tunnels open at once; a handshake beyond it gets 503.")
    var maxTunnels: Int = 10_000

    func validate() throws {
        if (self.tlsCert == nil) != (self.tlsKey == nil) {
            throw ArgumentParser.ValidationError("--tls-cert and --tls-key go together: give both or neither")
        }
        if self.tlsClientCA != nil, self.tlsCert == nil {
            throw ArgumentParser.ValidationError(
                "--tls-client-ca needs --tls-cert and --tls-key: it verifies TLS clients"
            )
        }
        guard Endpoint(parsing: self.listen) != nil else {
            throw ArgumentParser.ValidationError("--listen '\(self.listen)': expected HOST:PORT")
        }
        guard Endpoint(parsing: self.admin) != nil else {
            throw ArgumentParser.ValidationError("--admin '\(self.admin)': expected HOST:PORT")
        }
        guard FicusLogHandler.Format(rawValue: self.logFormat) != nil else {
            throw ArgumentParser.ValidationError("--log-format '\(self.logFormat)': expected text or json")
        }
        guard Logger.Level(rawValue: self.logLevel) != nil else {
            throw ArgumentParser.ValidationError("--log-level '\(self.logLevel)': expected trace, debug, info, notice, warning, error or critical")
        }
        guard self.http2 == "on" || self.http2 == "off" else {
            throw ArgumentParser.ValidationError("--http2 '\(self.http2)': expected on or off")
        }
        guard self.accessLog == "on" || self.accessLog == "off" else {
            throw ArgumentParser.ValidationError("--access-log '\(self.accessLog)': expected on or off")
        }
        if !self.upstream.isEmpty && self.configCache != nil {
            throw ArgumentParser.ValidationError("--config-cache and --upstream exclude each other: --upstream serves from memory")
        }
        if let cache = self.configCache, cache.isEmpty {
            throw ArgumentParser.ValidationError("--config-cache '': give a file path or 'off'")
        }
        if !self.upstream.isEmpty && self.store != nil {
            throw ArgumentParser.ValidationError("--store and --upstream exclude each other: --upstream serves from memory")
        }
        guard self.pollInterval >= 1, self.heartbeatInterval >= 1, self.windowInterval >= 1 else {
            throw ArgumentParser.ValidationError(
                "--poll-interval, --heartbeat-interval and --window-interval must be at least 1"
            )
        }
        guard self.leaseTTL >= 1, self.leaseTTL <= 3600 else {
            throw ArgumentParser.ValidationError("--lease-ttl \(self.leaseTTL): expected 1 to 3600 seconds")
        }
        guard let telemetryBytes = ByteSize.parse(self.telemetryMaxSize), telemetryBytes > 0 else {
            throw ArgumentParser.ValidationError(
                "--telemetry-max-size '\(self.telemetryMaxSize)': expected bytes or a size such as 512MiB"
            )
        }
        guard let staleBytes = ByteSize.parse(self.staleCache), staleBytes >= 0, staleBytes <= (1 << 40) else {
            throw ArgumentParser.ValidationError(
                "--stale-cache '\(self.staleCache)': expected bytes or a size such as 64MiB (at most 1TiB)")
        }
        if let threads = self.threads, threads < 1 {
            throw ArgumentParser.ValidationError("--threads \(threads): must be at least 1")
        }
        try Self.check("--max-body", self.maxBody, 0...(1 << 40))
        try Self.check("--drain-timeout", Int64(self.drainTimeout), 0...86_400)
        for (name, value) in [
            ("--connect-timeout", self.connectTimeout), ("--response-timeout", self.responseTimeout),
            ("--header-timeout", self.headerTimeout), ("--idle-timeout", self.idleTimeout),
        ] {
            try Self.check(name, value, 1...86_400_000)
        }
        try Self.check("--tunnel-idle-timeout", Int64(self.tunnelIdleTimeout), 1...86_400)
        try Self.check("--max-tunnels", Int64(self.maxTunnels), 0...10_000_000)
        try Self.check("--poll-interval", Int64(self.pollInterval), 1...60_000)
        try Self.check("--heartbeat-interval", Int64(self.heartbeatInterval), 1...3600)
        try Self.check("--window-interval", Int64(self.windowInterval), 1...3600)
        if let maxConnections = self.maxConnections {
            try Self.check("--max-connections", Int64(maxConnections), 1...10_000_000)
        }
        try Self.check("--shadow-memory", Int64(self.shadowMemory), 0...(1 << 40))
        try Self.check("--noise-floor", Int64(self.noiseFloor), 0...1_000_000)
        for name in self.untrustedField where !ShadowText.isToken(name) {
            throw ArgumentParser.ValidationError("--untrusted-field '\(name)': not a field name")
        }
        for cidr in self.trustedProxy where CIDR(cidr) == nil {
            throw ArgumentParser.ValidationError("--trusted-proxy '\(cidr)': not a CIDR (e.g. 10.0.0.0/8 or ::1/128)")
        }
        if !self.upstream.isEmpty {
            _ = try self.inMemoryUpstreams()
            guard let name = self.defaultUpstream else {
                throw ArgumentParser.ValidationError("--upstream needs --default NAME: the upstream that serves every request")
            }
            guard try self.inMemoryUpstreams().contains(where: { $0.name == name }) else {
                throw ArgumentParser.ValidationError("--default '\(name)': no --upstream has that name")
            }
        }
    }

    /// Refuses a number outside `range`, before any arithmetic on it (a timeout in milliseconds is multiplied into
    /// nanoseconds, and `Int64.max` milliseconds would trap).
    private static func check(_ option: String, _ value: Int64, _ range: ClosedRange<Int64>) throws {
        guard range.contains(value) else {
            throw ArgumentParser.ValidationError(
                "\(option) \(value): expected \(range.lowerBound) to \(range.upperBound)"
            )
        }
    }

    /// The connection limit when `--max-connections` is not given: raises the open-file limit to what the process
    /// is allowed (as Go and Envoy do at start-up) and derives the limit from it.
    private static func defaultMaxConnections() -> Int {
        var limit = rlimit()
        guard getrlimit(Int32(RLIMIT_NOFILE.rawValue), &limit) == 0 else { return ProxyConfiguration().maxConnections }
        if limit.rlim_cur < limit.rlim_max {
            var raised = limit
            raised.rlim_cur = limit.rlim_max
            if setrlimit(Int32(RLIMIT_NOFILE.rawValue), &raised) == 0 { limit = raised }
        }
        let descriptors = limit.rlim_cur > UInt64(Int32.max) ? Int(Int32.max) : Int(limit.rlim_cur)
        return ProxyConfiguration.maxConnections(descriptors: descriptors)
    }

    /// Parses the repeated `--upstream NAME=HOST:PORT[,HOST:PORT...]` options.
    func inMemoryUpstreams() throws -> [Upstream] {
        var upstreams: [Upstream] = []
        for spec in self.upstream {
            let parts = spec.split(separator: "=", maxSplits: 1).map(String.init)
            guard parts.count == 2, !parts[0].isEmpty else {
                throw ArgumentParser.ValidationError("--upstream '\(spec)': expected NAME=HOST:PORT[,HOST:PORT...]")
            }
            var addresses: [Endpoint] = []
            for address in parts[1].split(separator: ",", omittingEmptySubsequences: false) {
                guard let endpoint = Endpoint(parsing: String(address)) else {
                    throw ArgumentParser.ValidationError("--upstream '\(spec)': '\(address)' is not HOST:PORT")
                }
                addresses.append(endpoint)
            }
            guard !upstreams.contains(where: { $0.name == parts[0] }) else {
                throw ArgumentParser.ValidationError("--upstream '\(spec)': upstream '\(parts[0])' is given twice")
            }
            upstreams.append(Upstream(name: parts[0], addresses: addresses))
        }
        return upstreams
    }

    func run() async throws {
        let format = FicusLogHandler.Format(rawValue: self.logFormat)!
        let level = Logger.Level(rawValue: self.logLevel)!
        LoggingSystem.bootstrap { label in FicusLogHandler(label: label, format: format, logLevel: level) }
        let logger = Logger(label: "ficus")

        let registry = PrometheusCollectorRegistry()
        LogWriter.standardError.countDrops(in: PrometheusMetricsFactory(registry: registry))
        // Lines still queued when serve returns (or fails) are written before the process exits.
        defer { LogWriter.standardError.flush() }
        let source: FicusNode.Source
        if self.upstream.isEmpty {
            let text = StoreOptions.text(option: self.store)
            // Like every other command, serve never creates a store unless asked: a mistyped --store would otherwise
            // serve an empty configuration (404 for everything) from a new file.
            var opened: (any StoreBackend)?
            try await ErrorReport.run {
                let limits = TelemetryLimits(maxBytes: ByteSize.parse(self.telemetryMaxSize) ?? (1 << 30))
                let creating = self.initStore
                do {
                    opened = try await StoreOptions.open(
                        text, creating: creating, telemetry: limits, keepConnections: Self.keptConnections)
                } catch where self.cache(for: text) != nil && Self.isUnavailable(error) {
                    // Started from the configuration cache (FicusNode reads it); the store is opened when it can be.
                    let location = try StoreLocation(parsing: text)
                    opened = DeferredStore(
                        location: location.description,
                        storesTelemetry: true,
                        failure: error
                    ) {
                        try await StoreOptions.open(
                            text, creating: creating, telemetry: limits, keepConnections: Self.keptConnections)
                    }
                }
            }
            source = .store(opened!)
        } else {
            source = .inMemory(
                Configuration.catchAll(upstreams: try self.inMemoryUpstreams(), defaultUpstream: self.defaultUpstream!)
            )
        }
        var configuration = self.nodeConfiguration()
        if self.upstream.isEmpty {
            configuration.storeFeed.cache = self.cache(for: StoreOptions.text(option: self.store))
        }
        var built: FicusNode?
        do {
            try await ErrorReport.run {
                built = try await FicusNode(
                    configuration: configuration, source: source, registry: registry, logger: logger)
            }
        } catch {
            await Self.close(source)
            throw error
        }
        let node = built!
        let serviceGroup = ServiceGroup(
            services: [node],
            gracefulShutdownSignals: [.sigterm, .sigint],
            logger: logger
        )
        // SIGHUP re-reads the TLS files at once, the listener's and the upstreams' (they are also checked every few
        // seconds); trapped with or without `--tls-cert`, since `https://` upstreams may name files of their own.
        let reloads = Task {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                node.reloadCertificates()
            }
        }
        defer { reloads.cancel() }
        do {
            try await serviceGroup.run()
        } catch {
            await Self.close(source)
            throw error
        }
        await Self.close(source)
    }

    /// Idle PostgreSQL connections a proxy keeps between its store operations (heartbeats, canary passes, telemetry
    /// batches), so that each does not start a connection and a server backend.
    static let keptConnections = 2

    /// Closes the store of `source` once the node has stopped: its kept connections must be closed before release.
    private static func close(_ source: FicusNode.Source) async {
        if case .store(let store) = source {
            await store.close()
        }
    }

    /// The configuration cache for the store `text` names: `--config-cache`, or its default; nil with `off`.
    func cache(for text: String) -> ServedConfigurationCache? {
        if let path = self.configCache {
            return path == "off" ? nil : ServedConfigurationCache(path: path)
        }
        guard let location = try? StoreLocation(parsing: text) else {
            return nil
        }
        return ServedConfigurationCache(path: ServedConfigurationCache.defaultPath(for: location))
    }

    /// Whether `error` says the store cannot be opened now (missing, unreadable, unreachable), as opposed to a
    /// mistake in `--store` or a schema this binary cannot serve.
    static func isUnavailable(_ error: any Error) -> Bool {
        switch error {
        case CLIError.storeMissing:
            return true
        case let error as StoreError:
            switch error {
            case .unreachable, .unreadable, .busy:
                return true
            default:
                return false
            }
        default:
            return false
        }
    }

    /// The node's configuration from the options (validated by `validate`).
    func nodeConfiguration() -> FicusNode.Configuration {
        var configuration = FicusNode.Configuration()
        let listen = Endpoint(parsing: self.listen)!
        configuration.proxy.listenHost = listen.host
        configuration.proxy.listenPort = listen.port
        if let certificate = self.tlsCert, let key = self.tlsKey {
            configuration.proxy.tls = ServerTLSConfiguration(
                certificatePath: certificate,
                keyPath: key,
                clientCAPath: self.tlsClientCA
            )
        }
        configuration.proxy.threads = self.threads ?? 0
        configuration.proxy.trustedProxies = self.trustedProxy.compactMap(CIDR.init)
        configuration.proxy.untrustedFields = self.untrustedField.map { $0.lowercased() }
        configuration.proxy.maxConnections = self.maxConnections ?? Self.defaultMaxConnections()
        configuration.proxy.shadow.maxMemoryBytes = self.shadowMemory
        configuration.proxy.staleAnswers.maxBytes = Int(ByteSize.parse(self.staleCache) ?? (64 << 20))
        configuration.proxy.shadow.noiseFloor = self.noiseFloor
        configuration.proxy.accessLog = self.accessLog == "on"
        configuration.proxy.accessLogSettings.format = self.logFormat == "json" ? .json : .text
        configuration.proxy.accessLogSettings.redactQuery = self.logRedactQuery
        // Access log lines are formatted on the event loops into bytes and written by the log writer's thread.
        configuration.accessLogSink = StandardErrorAccessLog()
        configuration.proxy.limits.maxBody = self.maxBody
        configuration.proxy.drainTimeout = .seconds(Int64(self.drainTimeout))
        configuration.proxy.timeouts.connect = .milliseconds(self.connectTimeout)
        configuration.proxy.timeouts.responseHead = .milliseconds(self.responseTimeout)
        configuration.proxy.timeouts.clientHeader = .milliseconds(self.headerTimeout)
        configuration.proxy.timeouts.clientIdle = .milliseconds(self.idleTimeout)
        configuration.proxy.tunnels.idleTimeout = .seconds(Int64(self.tunnelIdleTimeout))
        configuration.proxy.http2.enabled = self.http2 == "on"
        configuration.proxy.tunnels.maxActive = self.maxTunnels
        let admin = Endpoint(parsing: self.admin)!
        configuration.admin = FicusNode.Configuration.Admin(host: admin.host, port: admin.port)
        configuration.storeFeed.pollInterval = .milliseconds(self.pollInterval)
        configuration.storeFeed.heartbeatInterval = .seconds(self.heartbeatInterval)
        configuration.storeFeed.advertisedListen = self.listen
        configuration.windows.interval = .seconds(self.windowInterval)
        configuration.canary.leaseTTL = .seconds(self.leaseTTL)
        return configuration
    }
}
