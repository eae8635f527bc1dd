import FicusCore
import NIOCore

/// Everything the data path needs that does not change with a configuration revision.
///
/// Built once at start-up by the CLI (the only place that reads argv and the environment); defaults are the ones
/// The defaults are anchored on Envoy, HAProxy and nginx (docs/PROXY.md says which).
public struct ProxyConfiguration: Sendable {
    /// Address the proxy listens on.
    public var listenHost = "127.0.0.1"
    public var listenPort = 8080
    /// TLS on the listener (`--tls-cert`, `--tls-key`, `--tls-client-ca`); nil (the default) serves plain HTTP.
    public var tls: ServerTLSConfiguration?
    /// Event-loop threads (0: one per core).
    public var threads = 0
    public var limits = HTTPLimits()
    public var timeouts = Timeouts()
    public var pool = PoolLimits()
    /// HTTP/2 from clients (over TLS, by ALPN): whether it is offered, and its limits.
    public var http2 = HTTP2Limits()
    /// WebSocket tunnels: idle timeout and how many may be open.
    public var tunnels = TunnelLimits()
    /// Peers that are proxies of the operator's: their `X-Forwarded-*` fields are kept and extended, and the client
    /// behind them is the right-most untrusted `X-Forwarded-For` address (`ClientAddress`).
    public var trustedProxies: [CIDR] = []
    /// Fields (lower-cased) removed from requests of untrusted peers on top of the fixed set (`Forwarded`,
    /// `X-Real-IP`, `True-Client-IP`, `X-Original-URL`, `X-Rewrite-URL`): what an upstream would believe about the
    /// client or the URL if a client could set it.
    public var untrustedFields: [String] = []
    /// The pseudonym used in Via.
    public var viaName = "ficus"
    /// Whether one access-log line is written per request.
    public var accessLog = true
    /// How access log lines are written when they go to an `AccessLogSink` (format, query redaction).
    public var accessLogSettings = AccessLogSettings()
    /// Bounds on shadow traffic.
    public var shadow = ShadowLimits()
    /// Bounds on the recent answers kept for routes with `stale_if_error`.
    public var staleAnswers = StaleAnswerLimits()
    /// How long a graceful shutdown waits for in-flight requests.
    public var drainTimeout: TimeAmount = .seconds(30)
    /// Client connections open at once; a connection accepted beyond it is closed at once and counted
    /// (`ficus_connections_rejected_total{reason="max_connections"}`), as Envoy's overload manager does, so that
    /// running out of file descriptors never stops the proxy from serving the connections it has.
    public var maxConnections = 10_000

    public init() {}

    /// The default connection limit for a process allowed `descriptors` open files: half of what is left after 256
    /// for listeners, the store and logs, since each client connection may hold an upstream connection too.
    public static func maxConnections(descriptors: Int) -> Int {
        max(64, (descriptors - 256) / 2)
    }

    /// How much a proxy keeps of recent answers for `stale_if_error` (docs/PROXY.md, Stale answers).
    public struct StaleAnswerLimits: Sendable {
        /// All kept answers together; the least recently used go first. 64 MiB by default.
        public var maxBytes = 64 * 1024 * 1024
        /// One answer's body; a longer answer is not kept. 1 MiB by default.
        public var maxEntryBytes = 1024 * 1024

        public init() {}
    }

    public struct Timeouts: Sendable {
        /// Upstream TCP connect (and wait for a pooled connection); on expiry: 503.
        public var connect: TimeAmount = .seconds(5)
        /// From the request being sent to the upstream's response head; on expiry: 504.
        public var responseHead: TimeAmount = .seconds(30)
        /// From the first byte of a request to the end of its head (slowloris); on expiry: 408.
        public var clientHeader: TimeAmount = .seconds(10)
        /// Client keep-alive connection with no request in progress.
        public var clientIdle: TimeAmount = .seconds(60)
        /// Pooled upstream connection with no request in progress.
        public var upstreamIdle: TimeAmount = .seconds(60)

        public init() {}
    }

    /// HTTP/2 from clients (docs/PROXY.md, HTTP/2): offered by ALPN on a TLS listener, each stream served like an
    /// HTTP/1.1 request and sent to upstreams over the HTTP/1.1 pools.
    public struct HTTP2Limits: Sendable {
        /// Whether ALPN offers `h2` (with `tls` only; plain-text h2c is never served).
        public var enabled = true
        /// Streams a client may have open at once (`SETTINGS_MAX_CONCURRENT_STREAMS`).
        public var maxConcurrentStreams = 100
        /// The largest decoded header list a client may send (`SETTINGS_MAX_HEADER_LIST_SIZE`), in bytes.
        public var maxHeaderListSize = 16 * 1024
        /// Streams a client may reset within `resetWindow` before the connection is closed (the 2023 "rapid reset"
        /// attack, CVE-2023-44487, opens and cancels streams faster than a server can serve them).
        public var maxResets = 200
        public var resetWindow: TimeAmount = .seconds(30)

        public init() {}
    }

    /// Bounds on WebSocket tunnels (docs/PROXY.md, WebSocket).
    public struct TunnelLimits: Sendable {
        /// A tunnel in which no byte moved either way for this long is closed (`--tunnel-idle-timeout`). Longer
        /// than the client idle timeout: WebSocket applications ping every 20–60 s, and nginx users raise its 60 s
        /// `proxy_read_timeout` for them.
        public var idleTimeout: TimeAmount = .seconds(300)
        /// Tunnels open at once (`--max-tunnels`); a handshake beyond it is answered 503 before reaching an
        /// upstream. Checked when the handshake arrives, so racing handshakes may pass it by a few.
        public var maxActive = 10_000

        public init() {}
    }

    public struct PoolLimits: Sendable {
        /// Open connections per upstream; each event loop's pool gets an equal share, rounded up.
        public var maxConnectionsPerUpstream = 1024
        /// Requests waiting for a connection per upstream, shared out like `maxConnectionsPerUpstream`; overflow: 503.
        public var maxPendingPerUpstream = 1024

        public init() {}
    }
}
