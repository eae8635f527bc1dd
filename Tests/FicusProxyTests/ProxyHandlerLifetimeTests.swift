import FicusCore
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import FicusProxy

/// A client connection's handler is freed when its connection closes.
///
/// Found by the proxy-exchange fuzzer, whose memory grew by kilobytes per exchange: the handler kept its channel
/// context after removal, and the context keeps its handler, so every connection leaked both (and what they hold).
@Suite struct ProxyHandlerLifetimeTests {
    @Test func theHandlerIsFreedWhenItsConnectionCloses() throws {
        let loop = EmbeddedEventLoop()
        defer { try? loop.syncShutdownGracefully() }
        let configuration = Configuration.catchAll(
            upstreams: [Upstream(name: "b", addresses: [Endpoint(host: "127.0.0.1", port: 1)])],
            defaultUpstream: "b"
        )
        var proxy = ProxyConfiguration()
        proxy.accessLog = false
        let shared = ProxyContext(
            configuration: proxy,
            routing: RoutingState(try RoutingTable(configuration: configuration, revision: 1)),
            metrics: nil,
            logger: Logger(label: "test")
        )
        let resources = LoopResources(eventLoop: loop, configuration: proxy, loops: 1, metrics: nil)
        weak var weakHandler: ProxyConnectionHandler?
        do {
            let channel = EmbeddedChannel(loop: loop)
            try channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
            let handler = ProxyConnectionHandler(shared: shared, resources: resources)
            weakHandler = handler
            try channel.pipeline.syncOperations.addHandler(handler)
            // A refused request: answered and closed by the handler itself.
            try channel.writeInbound(ByteBuffer(string: "GET / HTTP/1.1\r\n\r\n"))
            loop.run()
            #expect(!channel.isActive)
            _ = try channel.finish(acceptAlreadyClosed: true)
            loop.run()
        }
        #expect(weakHandler == nil, "the handler outlived its connection")
    }
}
