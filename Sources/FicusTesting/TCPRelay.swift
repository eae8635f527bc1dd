import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A loopback TCP relay that a test can cut: a network between one process and a server it talks to (a proxy and
/// PostgreSQL), which the test breaks and mends without touching either side.
///
/// Each accepted connection is piped byte for byte to `target`. `cut()` closes every open connection and makes new
/// ones close as soon as they are accepted, as a dead link does to a client; `mend()` lets connections through again.
public final class TCPRelay: Sendable {
    private let channel: any Channel
    private let state = NIOLockedValueBox(State())

    private struct State {
        var isCut = false
        var open: [ObjectIdentifier: any Channel] = [:]
    }

    /// The port the relay listens on (127.0.0.1).
    public var port: Int { self.channel.localAddress?.port ?? 0 }

    private init(channel: any Channel) {
        self.channel = channel
    }

    /// Starts a relay on a free loopback port towards `host`:`port`.
    public static func start(to host: String, port: Int, group: any EventLoopGroup) async throws -> TCPRelay {
        let box = NIOLockedValueBox<TCPRelay?>(nil)
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { inbound in
                guard let relay = box.withLockedValue({ $0 }), relay.admit(inbound) else {
                    return inbound.close()
                }
                return ClientBootstrap(group: inbound.eventLoop)
                    .connect(host: host, port: port)
                    .flatMap { outbound in
                        guard relay.admit(outbound) else {
                            outbound.close(promise: nil)
                            return inbound.close()
                        }
                        let (toServer, toClient) = (Pipe(peer: outbound), Pipe(peer: inbound))
                        return inbound.pipeline.addHandler(toServer).flatMap {
                            outbound.pipeline.addHandler(toClient)
                        }
                    }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        let relay = TCPRelay(channel: channel)
        box.withLockedValue { $0 = relay }
        return relay
    }

    /// Closes every relayed connection and refuses new ones until `mend()`.
    public func cut() {
        let open = self.state.withLockedValue { state -> [any Channel] in
            state.isCut = true
            defer { state.open.removeAll() }
            return Array(state.open.values)
        }
        for channel in open {
            channel.close(promise: nil)
        }
    }

    /// Lets new connections through again.
    public func mend() {
        self.state.withLockedValue { $0.isCut = false }
    }

    /// Stops listening and closes every relayed connection.
    public func stop() async throws {
        self.cut()
        try await self.channel.close()
    }

    /// Records `channel` as open unless the relay is cut; forgets it when it closes.
    private func admit(_ channel: any Channel) -> Bool {
        let admitted = self.state.withLockedValue { state -> Bool in
            guard !state.isCut else { return false }
            state.open[ObjectIdentifier(channel)] = channel
            return true
        }
        if admitted {
            channel.closeFuture.whenComplete { _ in
                self.state.withLockedValue { _ = $0.open.removeValue(forKey: ObjectIdentifier(channel)) }
            }
        }
        return admitted
    }

    /// Writes what one side reads to the other, and closes the other when one side closes.
    private final class Pipe: ChannelInboundHandler, Sendable {
        typealias InboundIn = ByteBuffer
        let peer: any Channel

        init(peer: any Channel) {
            self.peer = peer
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.peer.writeAndFlush(self.unwrapInboundIn(data), promise: nil)
        }

        func channelInactive(context: ChannelHandlerContext) {
            self.peer.close(promise: nil)
            context.fireChannelInactive()
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
