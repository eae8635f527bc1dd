import FicusCore
import Logging
import NIOCore
import NIOEmbedded

/// The real `ProxyConnectionHandler` and `UpstreamConnection` on `EmbeddedChannel`s, driven by bytes alone.
///
/// Fuzzing and tests need whole exchanges (a request in, a request forwarded, an answer back) without sockets, timers
/// or threads, so that one input always behaves the same way and thousands run per second; the upstream pool is handed
/// a connector that opens embedded channels instead of sockets, and everything else is the production code path.
public final class EmbeddedProxyHarness: Sendable {
    /// What one run saw on each side.
    public struct Outcome: Sendable {
        /// Every byte the proxy wrote to the client, in order.
        public var clientReceived: [UInt8]
        /// Every byte the proxy wrote to each upstream connection, one list per connection in the order opened.
        public var upstreamReceived: [[UInt8]]
        /// How many upstream connections the proxy opened.
        public var upstreamConnections: Int { self.upstreamReceived.count }
        /// Whether the proxy closed the client connection by the end of the run.
        public var clientClosed: Bool
    }

    /// The routing of every request: by default one catch-all route to the upstream `upstream` at 127.0.0.1:8080.
    public let routing: Configuration

    /// The proxy's settings (limits, trusted proxies); the access log is off.
    public let proxy: ProxyConfiguration

    /// What every run's connection shares, built once: a fuzzer runs thousands of exchanges per second.
    private let shared: ProxyContext
    private let clientAddress: SocketAddress

    /// A harness with the given settings (by default the shipped limits) and routing (by default a catch-all).
    ///
    /// The defaults are the shipped ones, so that what a fuzzer finds here is what a deployment would do; throws when
    /// `routing` does not compile into a routing table.
    public init(proxy: ProxyConfiguration = ProxyConfiguration(), routing: Configuration? = nil) throws {
        self.routing =
            routing
            ?? .catchAll(
                upstreams: [Upstream(name: "upstream", addresses: [Endpoint(host: "127.0.0.1", port: 8080)])],
                defaultUpstream: "upstream"
            )
        var proxy = proxy
        proxy.accessLog = false
        self.proxy = proxy
        self.shared = ProxyContext(
            configuration: proxy,
            routing: RoutingState(try RoutingTable(configuration: self.routing, revision: 1)),
            metrics: nil,
            logger: Logger(label: "ficus.harness", factory: { _ in SwiftLogNoOpLogHandler() }),
            // The same bytes in, the same bytes out: request ids are numbered, not random, and retries do not wait.
            requestIDPrefix: "0000000000000000",
            retryJitter: { 0 }
        )
        self.clientAddress = try SocketAddress(ipAddress: "192.0.2.10", port: 40000)
    }

    /// Sends `client` (in pieces of the given sizes, the rest in one) to the proxy, then answers every upstream
    /// connection it opens with `upstream` (in pieces of the same sizes), closes the upstream side, and returns what
    /// each side received.
    ///
    /// The upstream answer goes to the first connection only; later ones see their peer close at once, as a server
    /// that accepts and hangs up would do. Each run has its own event loop, pool and channels.
    public func run(client: [UInt8], upstream: [UInt8], pieces: [Int] = []) throws -> Outcome {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let shared = self.shared
        // Every run starts without answers kept from the last one (`stale_if_error`).
        shared.staleAnswers.removeAll()
        let upstreams = UpstreamChannels()
        let resources = LoopResources(
            eventLoop: loop,
            configuration: self.proxy,
            loops: 1,
            metrics: nil,
            transport: .connector { request in upstreams.open(request, loop: loop) }
        )
        // Connected before the handler is added, as the server's child initializer sees an accepted socket: the
        // handler reads the client's address when it is added.
        let clientChannel = EmbeddedChannel(loop: loop)
        try clientChannel.connect(to: self.clientAddress).wait()
        let handler = ProxyConnectionHandler(shared: shared, resources: resources)
        try clientChannel.pipeline.syncOperations.addHandler(handler)

        var received: [UInt8] = []
        var forwarded: [[UInt8]] = []
        func drain() throws {
            loop.run()
            while let part = try clientChannel.readOutbound(as: ByteBuffer.self) {
                received += part.readableBytesView
            }
            for (index, channel) in upstreams.channels.enumerated() {
                if index == forwarded.count {
                    forwarded.append([])
                }
                while let part = try channel.readOutbound(as: ByteBuffer.self) {
                    forwarded[index] += part.readableBytesView
                }
            }
        }

        for piece in Self.split(client, pieces) where clientChannel.isActive {
            try clientChannel.writeInbound(ByteBuffer(bytes: piece))
            try drain()
        }
        if let first = upstreams.channels.first {
            for piece in Self.split(upstream, pieces) where first.isActive {
                try first.writeInbound(ByteBuffer(bytes: piece))
                try drain()
            }
        }
        // Connections opened while answering, and the first once it has said everything: the peer closes.
        var closed = 0
        while closed < upstreams.channels.count {
            let channel = upstreams.channels[closed]
            if channel.isActive {
                _ = try? channel.finish(acceptAlreadyClosed: true)
            }
            closed += 1
            try drain()
        }
        let clientClosed = !clientChannel.isActive
        _ = try? clientChannel.finish(acceptAlreadyClosed: true)
        try drain()
        // The pool holds this connector, the connector the upstream channels, and their connections the pool: a cycle
        // that sockets never make (a server's pools live as long as it does), but a harness makes one pool per run.
        // Emptying both ends lets the run's objects go (about 6 KB a run otherwise, which ends a long fuzzing run).
        resources.pool.closeIdle()
        upstreams.channels.removeAll()
        return Outcome(
            clientReceived: received,
            upstreamReceived: forwarded,
            clientClosed: clientClosed
        )
    }

    /// `bytes` cut at the given piece sizes (each at least one byte), the remainder as the last piece.
    public static func split(_ bytes: [UInt8], _ pieces: [Int]) -> [ArraySlice<UInt8>] {
        var slices: [ArraySlice<UInt8>] = []
        var start = 0
        for size in pieces where start < bytes.count {
            let end = min(bytes.count, start + max(1, size))
            slices.append(bytes[start..<end])
            start = end
        }
        if start < bytes.count || slices.isEmpty {
            slices.append(bytes[start...])
        }
        return slices
    }
}

/// The embedded channels the harness's connector opened, in order.
private final class UpstreamChannels {
    var channels: [EmbeddedChannel] = []

    func open(_ request: UpstreamTransport.ConnectRequest, loop: EmbeddedEventLoop) -> EventLoopFuture<Channel> {
        let channel = EmbeddedChannel(loop: loop)
        do {
            try channel.pipeline.syncOperations.addHandler(request.connection)
            self.channels.append(channel)
            let address =
                try request.socketAddress ?? SocketAddress(ipAddress: "127.0.0.1", port: request.endpoint.port)
            return channel.connect(to: address).map { channel as Channel }
        } catch {
            return loop.makeFailedFuture(error)
        }
    }
}
