import FicusCore
import FicusProxy
import FicusStore
import Foundation

extension FicusNode {
    /// Everything a node needs that does not change with a configuration revision, built once at start-up.
    ///
    /// Nested, with defaults equal to `ficus serve`'s, so that a caller sets only what it changes (as
    /// async-http-client's `HTTPClient.Configuration` does). Where the rules come from is not part of it: see
    /// `FicusNode.Source`.
    public struct Configuration: Sendable {
        /// The data path: listener, limits, timeouts, shadow bounds, drain. `threads` 0 means one event loop per
        /// core; `maxConnections` is `ProxyConfiguration`'s default, which `ficus serve` replaces with one derived
        /// from the open-file limit.
        public var proxy = ProxyConfiguration()
        /// The admin listener (`/healthz`, `/metrics`); nil runs no admin listener.
        public var admin: Admin? = Admin()
        /// How the store is followed (with a store only).
        public var storeFeed = StoreFeed()
        /// How shadow answers are compared and stored (with a store only: without one nothing is shadowed).
        public var shadow = Shadow()
        /// How often metric windows are stored (with a store only).
        public var windows = Windows()
        /// Whether, and how, this node drives the store's canaries (with a store only).
        public var canary = Canary()
        /// How often the TLS files are checked for a change: the listener's (with `proxy.tls`) and those the
        /// `https://` upstreams name (`ca_file`, `client_cert`, `client_key`); SIGHUP checks at once.
        public var certificateReloadInterval: Duration = .seconds(5)
        /// Where access log lines go as bytes (the executable's log writer); nil: through the logger, slower.
        public var accessLogSink: AccessLogSink?

        public init() {}

        /// The admin listener.
        public struct Admin: Sendable {
            /// Loopback by default: health and metrics are for the operator's own agents.
            public var host = "127.0.0.1"
            public var port = 9901

            public init() {}

            public init(host: String, port: Int) {
                self.host = host
                self.port = port
            }
        }

        /// How the store is followed and told that this node is alive.
        public struct StoreFeed: Sendable {
            /// How often the store is polled for new revisions; 5 ms shows a commit to traffic within milliseconds
            /// for ~0.3 ms of work per poll (DESIGN.md, "Measured on this machine").
            public var pollInterval: Duration = .milliseconds(5)
            /// How often this node records itself in the store (`ficus status` lists the nodes seen recently).
            public var heartbeatInterval: Duration = .seconds(3)
            /// The listen address the heartbeat names; nil names the proxy's configured `HOST:PORT`.
            public var advertisedListen: String?
            /// How recent a proxy's heartbeat must be for it to count as alive when rate limits are divided among
            /// the fleet; nil: three heartbeat intervals (one lost beat does not raise the others' shares).
            public var liveWithin: Duration?
            /// Where the node keeps the last configuration it served, written after every revision and read at start
            /// when the store cannot be (docs/FLEET.md, "Starting without the store"); nil keeps none.
            public var cache: ServedConfigurationCache?

            /// `liveWithin`, or its default.
            public var liveProxyWindow: Duration { self.liveWithin ?? self.heartbeatInterval * 3 }

            public init() {}
        }

        /// The shadow comparer, which compares the answers of shadowed requests off the event loops and stores the
        /// records; bounds on the copies themselves (memory, in flight, noise floor) are in `proxy.shadow`.
        public struct Shadow: Sendable {
            /// Observations waiting to be compared or stored; over it they are dropped and counted.
            public var queueLimit = 1000
            /// Records stored in one transaction.
            public var batchSize = 100
            /// How long the comparer gathers records before it stores a batch that is not full.
            public var gather: Duration = .milliseconds(100)

            public init() {}
        }

        /// Metric windows: the per route × upstream counts that reports and canary gates read.
        public struct Windows: Sendable {
            /// Length of a stored window; shortened to a quarter of the shortest interval of an active canary
            /// (`WindowPace`), so that every step has windows to judge.
            public var interval: Duration = .seconds(10)

            public init() {}
        }

        /// The canary controller.
        public struct Canary: Sendable {
            /// Whether this node takes part in the store's canaries: it competes for their leases and drives those it
            /// holds, and it writes its metric windows at the pace of the active ones (`WindowPace`).
            public var enabled = true
            /// How long a lease lasts unless renewed; another node takes a canary over once it lapses. Renewed every
            /// third of it.
            public var leaseTTL: Duration = .seconds(15)
            /// How often the controller looks at the active canaries when nothing tells it of changes (a node
            /// without a store feed, tests); a node with one waits for the store's changes and its own deadlines.
            public var pollInterval: Duration = .milliseconds(250)
            /// With the store's changes to wait on: the longest the controller goes without looking, as a safety net
            /// for a change it was not told of.
            public var safetyNet: Duration = .seconds(5)

            public init() {}
        }
    }

    /// Where the rules come from.
    public enum Source: Sendable {
        /// A store (SQLite or PostgreSQL, see `StoreFactory`): its newest revision is served and every new one
        /// followed; shadow records, metric windows and canaries live there too where the store keeps telemetry.
        case store(any StoreBackend)
        /// A fixed configuration held in memory (no store: nothing is followed, shadowed or stored).
        case inMemory(FicusCore.Configuration)
    }
}
