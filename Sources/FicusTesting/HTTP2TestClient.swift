import NIOConcurrencyHelpers
import NIOCore
import NIOHPACK
import NIOHTTP2
import NIOPosix
import NIOSSL

/// An HTTP/2 client over TLS for tests: one connection, many streams, and the misbehaviour (resets) a test needs.
public final class HTTP2TestClient: Sendable {
    /// One answer on a stream.
    public struct Response: Sendable {
        /// The `:status`.
        public var status: Int
        /// The other fields, in order.
        public var headers: [(String, String)]
        /// The DATA frames' bytes.
        public var body: [UInt8]

        /// The first value of `name`.
        public func header(_ name: String) -> String? {
            self.headers.first { $0.0 == name.lowercased() }?.1
        }

        /// The body as UTF-8 text.
        public var bodyString: String { String(decoding: self.body, as: UTF8.self) }
    }

    private let channel: any Channel
    private let multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>

    private init(channel: any Channel, multiplexer: NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>) {
        self.channel = channel
        self.multiplexer = multiplexer
    }

    /// Connects with TLS (trusting `authorityPEM`, ALPN `h2` only) and completes the HTTP/2 preface.
    public static func connect(
        port: Int,
        group: any EventLoopGroup,
        trusting authorityPEM: String,
        serverHostname: String = "localhost"
    ) async throws -> HTTP2TestClient {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(authorityPEM.utf8)))
        configuration.applicationProtocols = ["h2"]
        let context = try NIOSSLContext(configuration: configuration)
        // The HTTP/2 handler must be in place before the handshake ends: the server's SETTINGS may come right after.
        let made = NIOLockedValueBox<NIOLoopBound<NIOHTTP2Handler.StreamMultiplexer>?>(nil)
        let channel = try await ClientBootstrap(group: group)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        NIOSSLClientHandler(context: context, serverHostname: serverHostname)
                    )
                    let multiplexer = try channel.pipeline.syncOperations.configureHTTP2Pipeline(
                        mode: .client,
                        connectionConfiguration: .init(),
                        streamConfiguration: .init()
                    ) { stream in
                        stream.eventLoop.makeSucceededVoidFuture()
                    }
                    made.withLockedValue { $0 = NIOLoopBound(multiplexer, eventLoop: channel.eventLoop) }
                }
            }
            .connect(host: "127.0.0.1", port: port)
            .get()
        guard let multiplexer = made.withLockedValue({ $0 }) else {
            throw FicusTestingError(.shutDown, "the HTTP/2 client pipeline was not set up")
        }
        return HTTP2TestClient(channel: channel, multiplexer: multiplexer)
    }

    /// Sends a request on a new stream and waits for its whole answer.
    public func request(
        method: String = "GET",
        path: String,
        authority: String = "localhost",
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: TimeAmount = .seconds(10)
    ) async throws -> Response {
        let channel = self.channel
        let multiplexer = self.multiplexer
        let promise = channel.eventLoop.makePromise(of: Response.self)
        let stream = try await channel.eventLoop.flatSubmit {
            multiplexer.value.createStreamChannel { stream in
                stream.eventLoop.makeCompletedFuture {
                    try stream.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
        }.get()
        var fields = HPACKHeaders([
            (":method", method), (":path", path), (":scheme", "https"), (":authority", authority),
        ])
        for (name, value) in headers { fields.add(name: name.lowercased(), value: value) }
        let head = HTTP2Frame.FramePayload.headers(.init(headers: fields, endStream: body == nil))
        stream.write(head, promise: nil)
        if let body {
            let data = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: body)), endStream: true))
            stream.write(data, promise: nil)
        }
        stream.flush()
        let timer = channel.eventLoop.scheduleTask(in: timeout) {
            promise.fail(FicusTestingError(.timedOut, "no answer to \(method) \(path) in time"))
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    /// Opens a stream, sends a head and part of a body, then resets the stream (RST_STREAM CANCEL).
    public func startAndReset(path: String, bodyPart: [UInt8], authority: String = "localhost") async throws {
        let channel = self.channel
        let multiplexer = self.multiplexer
        let stream = try await channel.eventLoop.flatSubmit {
            multiplexer.value.createStreamChannel { stream in stream.eventLoop.makeSucceededVoidFuture() }
        }.get()
        let fields = HPACKHeaders([
            (":method", "POST"), (":path", path), (":scheme", "https"), (":authority", authority),
        ])
        stream.write(HTTP2Frame.FramePayload.headers(.init(headers: fields)), promise: nil)
        let part = HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(bytes: bodyPart))))
        stream.write(part, promise: nil)
        stream.flush()
        try await stream.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.cancel))
    }

    /// Opens `count` streams and resets each at once (the 2023 rapid-reset attack); returns when all were written or
    /// the connection was closed.
    public func rapidReset(count: Int, path: String) async {
        for _ in 0..<count {
            do {
                let channel = self.channel
                let multiplexer = self.multiplexer
                let stream = try await channel.eventLoop.flatSubmit {
                    multiplexer.value.createStreamChannel { stream in stream.eventLoop.makeSucceededVoidFuture() }
                }.get()
                let fields = HPACKHeaders([
                    (":method", "GET"), (":path", path), (":scheme", "https"), (":authority", "localhost"),
                ])
                stream.write(HTTP2Frame.FramePayload.headers(.init(headers: fields, endStream: true)), promise: nil)
                try await stream.writeAndFlush(HTTP2Frame.FramePayload.rstStream(.cancel))
            } catch {
                return
            }
        }
    }

    /// Whether the server closes the connection within `timeout`.
    public func isClosed(within timeout: TimeAmount) async -> Bool {
        let channel = self.channel
        let closed = channel.eventLoop.makePromise(of: Bool.self)
        channel.closeFuture.whenComplete { _ in closed.succeed(true) }
        let timer = channel.eventLoop.scheduleTask(in: timeout) { closed.succeed(false) }
        let result = (try? await closed.futureResult.get()) ?? false
        timer.cancel()
        return result
    }

    /// Closes the connection.
    public func close() {
        self.channel.close(promise: nil)
    }
}

/// Gathers one stream's answer.
final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTP2Frame.FramePayload

    private let promise: EventLoopPromise<HTTP2TestClient.Response>
    private var response = HTTP2TestClient.Response(status: 0, headers: [], body: [])
    private var done = false

    init(promise: EventLoopPromise<HTTP2TestClient.Response>) {
        self.promise = promise
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            for (name, value, _) in headers.headers {
                if name == ":status" {
                    self.response.status = Int(value) ?? 0
                } else {
                    self.response.headers.append((name, value))
                }
            }
            if headers.endStream { self.finish() }
        case .data(let data):
            if case .byteBuffer(var buffer) = data.data {
                self.response.body += buffer.readBytes(length: buffer.readableBytes) ?? []
            }
            if data.endStream { self.finish() }
        case .rstStream(let code):
            self.fail(FicusTestingError(.closedMidResponse, "stream reset: \(code)"))
        default:
            break
        }
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.fail(FicusTestingError(.closedMidResponse, "stream closed before its answer ended"))
        context.fireChannelInactive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.fail(FicusTestingError(.closedMidResponse, "stream gone"))
    }

    private func finish() {
        guard !self.done else { return }
        self.done = true
        self.promise.succeed(self.response)
    }

    private func fail(_ error: Error) {
        guard !self.done else { return }
        self.done = true
        self.promise.fail(error)
    }
}
