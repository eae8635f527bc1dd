import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

/// A loopback HTTP/1.1 server that records exactly what it received and answers with a chosen `Behavior`.
///
/// Integration tests prove what the proxy forwarded by reading the recording, and inject upstream faults (resets,
/// hangs, bad framing) without a real service; requests are parsed by NIO's own decoder, independently of the
/// proxy's parser.
public final class TestUpstream: Sendable {
    /// The port the server listens on, chosen by the kernel.
    ///
    /// Read it after `start` to point the proxy's configuration at this upstream.
    public let port: Int

    private let serverChannel: any Channel
    private let recorder: UpstreamRecorder

    private init(serverChannel: any Channel, port: Int, recorder: UpstreamRecorder) {
        self.serverChannel = serverChannel
        self.port = port
        self.recorder = recorder
    }

    /// Starts a server on 127.0.0.1 with an ephemeral port, or on `port` (an upstream that comes back where it was).
    ///
    /// Port 0 lets many tests run side by side without clashing. With `tls`, the server speaks HTTPS (an upstream
    /// behind `https://` addresses), presenting that context's certificate.
    public static func start(
        _ behavior: Behavior,
        group: any EventLoopGroup,
        port: Int = 0,
        tls: NIOSSLContext? = nil
    ) async throws -> TestUpstream {
        let recorder = UpstreamRecorder(behavior: behavior)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .serverChannelOption(.backlog, value: 256)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                guard let id = recorder.connectionAccepted(channel) else {
                    return channel.close()
                }
                channel.closeFuture.whenComplete { _ in
                    recorder.connectionClosed(id)
                }
                return channel.eventLoop.makeCompletedFuture {
                    let operations = channel.pipeline.syncOperations
                    if let tls {
                        try operations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    let decoder = HTTPRequestDecoder(leftOverBytesStrategy: .dropBytes)
                    try operations.addHandler(ByteToMessageHandler(decoder))
                    try operations.addHandler(UpstreamConnectionHandler(recorder: recorder, connectionID: id))
                }
            }
            .bind(host: "127.0.0.1", port: port)
            .get()
        guard let port = channel.localAddress?.port else {
            try await channel.close()
            throw FicusTestingError(.shutDown, "the test upstream has no local port")
        }
        return TestUpstream(serverChannel: channel, port: port, recorder: recorder)
    }

    /// `127.0.0.1:PORT`, as an upstream address in a proxy configuration.
    ///
    /// Upstream pools are configured with addresses, not ports.
    public var address: String {
        "127.0.0.1:\(self.port)"
    }

    /// Every complete request in arrival order.
    ///
    /// A `.resetBeforeHead` request is recorded when its head arrives, since its body is never read.
    public var received: [RecordedRequest] {
        self.recorder.received
    }

    /// How many connections the server has accepted.
    ///
    /// Proves that the proxy reuses pooled connections, or opens a new one after a discarded connection.
    public var connectionsAccepted: Int {
        self.recorder.connectionsAccepted
    }

    /// How many accepted connections are still open.
    ///
    /// Proves that the proxy closes connections it must discard (bad framing, reset, timeout).
    public var openConnections: Int {
        self.recorder.openConnections
    }

    /// The behaviour used for the next answers.
    ///
    /// Changing it does not affect answers already under way, so a switch never produces a half-and-half answer.
    public var behavior: Behavior {
        self.recorder.behavior
    }

    /// Switches the behaviour for every answer that starts from now on.
    ///
    /// Lets one test make a healthy upstream fail (or recover) without restarting it and changing its port.
    public func setBehavior(_ behavior: Behavior) {
        self.recorder.behavior = behavior
    }

    /// Waits until at least `n` requests have been recorded and returns all of them.
    ///
    /// Requests reach the upstream asynchronously (shadow copies especially), so tests wait instead of sleeping.
    public func waitForRequests(_ n: Int, timeout: TimeAmount) async throws -> [RecordedRequest] {
        try await self.recorder.waitForRequests(n, timeout: timeout, on: self.serverChannel.eventLoop)
    }

    /// Stops listening and closes every open connection; pending waits fail with `.shutDown`.
    ///
    /// Tests share one event-loop group, so every upstream must release its sockets before the test ends.
    public func shutdown() async throws {
        let channels = self.recorder.shutDown()
        try? await self.serverChannel.close()
        for channel in channels {
            try? await channel.close()
        }
    }
}
