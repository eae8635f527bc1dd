import Crypto
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL

/// A WebSocket frame as tests write and read them (RFC 6455 5.2), without extensions.
public struct WebSocketFrame: Sendable, Equatable {
    /// Opcodes tests use.
    public static let continuation: UInt8 = 0x0
    public static let text: UInt8 = 0x1
    public static let binary: UInt8 = 0x2
    public static let close: UInt8 = 0x8

    /// The last frame of its message.
    public var fin: Bool
    /// The frame's opcode (`text`, `binary`, `continuation`, `close`, ...).
    public var opcode: UInt8
    /// The unmasked payload.
    public var payload: [UInt8]

    /// A frame; a whole message by default.
    public init(fin: Bool = true, opcode: UInt8, payload: [UInt8]) {
        self.fin = fin
        self.opcode = opcode
        self.payload = payload
    }

    /// The frame on the wire; clients mask (with a fixed key: tests need no secrecy), servers do not.
    public func encoded(masked: Bool) -> [UInt8] {
        var out: [UInt8] = [(self.fin ? 0x80 : 0) | self.opcode]
        let mask: UInt8 = masked ? 0x80 : 0
        let count = self.payload.count
        if count < 126 {
            out.append(mask | UInt8(count))
        } else if count <= 0xFFFF {
            out.append(mask | 126)
            out += [UInt8(count >> 8), UInt8(count & 0xFF)]
        } else {
            out.append(mask | 127)
            for shift in stride(from: 56, through: 0, by: -8) {
                out.append(UInt8((UInt64(count) >> UInt64(shift)) & 0xFF))
            }
        }
        guard masked else { return out + self.payload }
        let key: [UInt8] = [0x12, 0x34, 0x56, 0x78]
        out += key
        out += self.payload.enumerated().map { $0.element ^ key[$0.offset % 4] }
        return out
    }

    /// Decodes one frame from the front of `bytes`: the frame and the bytes it took, or nil when incomplete.
    public static func decode(_ bytes: ArraySlice<UInt8>) -> (WebSocketFrame, Int)? {
        guard bytes.count >= 2 else { return nil }
        let start = bytes.startIndex
        let first = bytes[start]
        let second = bytes[start + 1]
        var length = Int(second & 0x7F)
        var offset = 2
        if length == 126 {
            guard bytes.count >= 4 else { return nil }
            length = Int(bytes[start + 2]) << 8 | Int(bytes[start + 3])
            offset = 4
        } else if length == 127 {
            guard bytes.count >= 10 else { return nil }
            length = 0
            for index in 2..<10 { length = length << 8 | Int(bytes[start + index]) }
            offset = 10
        }
        let masked = second & 0x80 != 0
        var key: [UInt8] = []
        if masked {
            guard bytes.count >= offset + 4 else { return nil }
            key = Array(bytes[(start + offset)..<(start + offset + 4)])
            offset += 4
        }
        guard bytes.count >= offset + length else { return nil }
        var payload = Array(bytes[(start + offset)..<(start + offset + length)])
        if masked {
            for index in payload.indices { payload[index] ^= key[index % 4] }
        }
        return (WebSocketFrame(fin: first & 0x80 != 0, opcode: first & 0x0F, payload: payload), offset + length)
    }

    /// A WebSocket handshake request for `path` (a fixed key: its accept value is `acceptValue(for:)`).
    public static func handshake(path: String, host: String = "localhost", extraHeaders: String = "") -> String {
        "GET \(path) HTTP/1.1\r\nHost: \(host)\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            + "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\(extraHeaders)\r\n"
    }

    /// `Sec-WebSocket-Accept` for `key` (RFC 6455 4.2.2).
    public static func acceptValue(for key: String) -> String {
        let digest = Insecure.SHA1.hash(data: Data((key + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11").utf8))
        return Data(digest).base64EncodedString()
    }
}

/// A loopback WebSocket server: answers handshakes (or refuses them) and echoes frames, or floods a slow reader.
///
/// Written on raw bytes, independently of the proxy, so that what a test sees is what went through the tunnel.
public final class TestWebSocketServer: Sendable {
    /// What the server does with a handshake.
    public enum Behavior: Sendable {
        /// Answers 101 and echoes every frame as it came (fragments stay fragments), unmasked; a close frame is echoed
        /// and the connection closed.
        case echo
        /// Answers 101 with a text frame `greeting` in the same write, then echoes.
        case greet(String)
        /// Answers the handshake with `status` and `body` (an upgrade refused).
        case refuse(status: Int, body: String)
        /// Answers 101, then, once the client's first frame arrives (so that a test can stop reading before anything
        /// flows), writes `bytes` as raw tunnel data as fast as they are taken: 64 KiB chunks whose byte `i` is
        /// `firehoseByte(at:)`, one buffer written again and again (cheap, so that the test measures the proxy).
        case firehose(bytes: Int)
    }

    /// What the server has seen and done, shared with its connections.
    final class State: Sendable {
        struct Values {
            var handshakes: [[(String, String)]] = []
            var open = 0
            var written = 0
            var blocked: [CheckedContinuation<Int, Never>] = []
            var blockedAt: Int?
        }

        let values = NIOLockedValueBox(Values())
    }

    /// The port the server listens on.
    public let port: Int
    private let channel: any Channel
    private let state: State

    private init(channel: any Channel, port: Int, state: State) {
        self.channel = channel
        self.port = port
        self.state = state
    }

    /// Starts a server on 127.0.0.1 with an ephemeral port; with `tls`, over TLS (`wss` behind `https://`).
    public static func start(
        _ behavior: Behavior,
        group: any EventLoopGroup,
        tls: NIOSSLContext? = nil
    ) async throws -> TestWebSocketServer {
        let state = State()
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                state.values.withLockedValue { $0.open += 1 }
                channel.closeFuture.whenComplete { _ in state.values.withLockedValue { $0.open -= 1 } }
                return channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls))
                    }
                    try channel.pipeline.syncOperations.addHandler(
                        WebSocketServerHandler(behavior: behavior, state: state)
                    )
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        guard let port = channel.localAddress?.port else {
            throw FicusTestingError(.shutDown, "the WebSocket server has no local port")
        }
        return TestWebSocketServer(channel: channel, port: port, state: state)
    }

    /// `127.0.0.1:PORT`, for a proxy configuration.
    public var address: String { "127.0.0.1:\(self.port)" }

    /// The header fields of every handshake received, in order (a request without `Upgrade: websocket` is answered
    /// 200 `plain` and not recorded).
    public var handshakes: [[(String, String)]] { self.state.values.withLockedValue { $0.handshakes } }

    /// Connections open now.
    public var openConnections: Int { self.state.values.withLockedValue { $0.open } }

    /// The value of `name` (case-insensitive) in handshake `index`.
    public func handshakeField(_ index: Int, _ name: String) -> String? {
        let all = self.handshakes
        guard index < all.count else { return nil }
        return all[index].first { $0.0.lowercased() == name.lowercased() }?.1
    }

    /// Waits until a firehose's writes block (its channel stops being writable), and returns the bytes the kernel had
    /// taken by then.
    public func firehoseBlocked() async -> Int {
        await withCheckedContinuation { continuation in
            let done = self.state.values.withLockedValue { values -> Int? in
                if let at = values.blockedAt { return at }
                values.blocked.append(continuation)
                return nil
            }
            if let done { continuation.resume(returning: done) }
        }
    }

    /// Byte `index` of a firehose's stream.
    public static func firehoseByte(at index: Int) -> UInt8 {
        UInt8(truncatingIfNeeded: (index % 65_536) % 251)
    }

    /// The bytes a firehose has written once they stop growing for `quiet` (or when `timeout` passes).
    ///
    /// A measurement, not a synchronisation: a reader that stopped reading must stop the firehose at what the
    /// buffers on the way hold; an unbounded buffer in between would let it run to the end.
    public func writtenWhenSettled(quiet: Duration, timeout: Duration) async -> Int {
        let deadline = ContinuousClock.now + timeout
        var last = self.state.values.withLockedValue { $0.written }
        while ContinuousClock.now < deadline {
            try? await Task.sleep(for: quiet)
            let now = self.state.values.withLockedValue { $0.written }
            if now == last { return now }
            last = now
        }
        return last
    }

    /// Closes the listener and every connection.
    public func shutdown() async throws {
        try await self.channel.close()
    }
}

/// One connection of `TestWebSocketServer`.
final class WebSocketServerHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let behavior: TestWebSocketServer.Behavior
    private let state: TestWebSocketServer.State
    private var buffer: [UInt8] = []
    private var upgraded = false
    private var remaining = 0
    private var written = 0
    /// The client's first frame has arrived: the firehose writes.
    private var firehoseStarted = false
    private lazy var chunk = ByteBuffer(bytes: (0..<65_536).map { TestWebSocketServer.firehoseByte(at: $0) })

    init(behavior: TestWebSocketServer.Behavior, state: TestWebSocketServer.State) {
        self.behavior = behavior
        self.state = state
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var bytes = self.unwrapInboundIn(data)
        self.buffer += bytes.readBytes(length: bytes.readableBytes) ?? []
        if !self.upgraded {
            guard let end = self.headEnd() else { return }
            let head = String(decoding: self.buffer[..<end], as: UTF8.self)
            self.buffer.removeFirst(end + 4)
            self.handshake(head, context: context)
        }
        self.echoFrames(context: context)
    }

    private func headEnd() -> Int? {
        guard self.buffer.count >= 4 else { return nil }
        for index in 0...(self.buffer.count - 4)
        where self.buffer[index] == 13 && self.buffer[index + 1] == 10 && self.buffer[index + 2] == 13
            && self.buffer[index + 3] == 10
        {
            return index
        }
        return nil
    }

    private func handshake(_ head: String, context: ChannelHandlerContext) {
        let lines = head.components(separatedBy: "\r\n").dropFirst()
        let fields = lines.compactMap { line -> (String, String)? in
            guard let colon = line.firstIndex(of: ":") else { return nil }
            return (String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces))
        }
        guard fields.contains(where: { $0.0.lowercased() == "upgrade" && $0.1.lowercased() == "websocket" }) else {
            // Not a handshake: a plain answer, and the connection stays HTTP.
            let plain = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nContent-Type: text/plain\r\n\r\nplain"
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: plain)), promise: nil)
            return
        }
        self.state.values.withLockedValue { $0.handshakes.append(fields) }
        let key = fields.first { $0.0.lowercased() == "sec-websocket-key" }?.1 ?? ""
        var answer = Array(
            ("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                + "Sec-WebSocket-Accept: \(WebSocketFrame.acceptValue(for: key))\r\n\r\n").utf8
        )
        switch self.behavior {
        case .refuse(let status, let body):
            let refusal = "HTTP/1.1 \(status) Refused\r\nContent-Length: \(body.utf8.count)\r\n"
                + "Content-Type: text/plain\r\n\r\n\(body)"
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: refusal)), promise: nil)
            return
        case .greet(let greeting):
            let frame = WebSocketFrame(opcode: WebSocketFrame.text, payload: Array(greeting.utf8))
            answer += frame.encoded(masked: false)
        case .echo, .firehose:
            break
        }
        self.upgraded = true
        context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: answer)), promise: nil)
        if case .firehose(let bytes) = self.behavior {
            self.remaining = bytes
        }
    }

    private func echoFrames(context: ChannelHandlerContext) {
        guard self.upgraded, case .firehose = self.behavior else {
            while self.upgraded, let (frame, used) = WebSocketFrame.decode(self.buffer[...]) {
                self.buffer.removeFirst(used)
                context.writeAndFlush(
                    self.wrapOutboundOut(ByteBuffer(bytes: frame.encoded(masked: false))), promise: nil)
                if frame.opcode == WebSocketFrame.close {
                    context.close(promise: nil)
                    return
                }
            }
            return
        }
        // The firehose starts at the client's first frame, and whatever the client sends is dropped.
        if !self.firehoseStarted, WebSocketFrame.decode(self.buffer[...]) != nil {
            self.firehoseStarted = true
            self.pump(context: context)
        }
        self.buffer.removeAll()
    }

    /// Writes pattern bytes while the channel takes them; records when it first stops taking them.
    private func pump(context: ChannelHandlerContext) {
        while self.remaining > 0, context.channel.isWritable {
            let count = min(self.remaining, 64 * 1024)
            let bytes = self.chunk.getSlice(at: self.chunk.readerIndex, length: count) ?? self.chunk
            self.written += count
            self.remaining -= count
            let written = self.written
            self.state.values.withLockedValue { $0.written = written }
            context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
        }
        if self.remaining > 0 {
            let written = self.written
            let waiters = self.state.values.withLockedValue { values -> [CheckedContinuation<Int, Never>] in
                guard values.blockedAt == nil else { return [] }
                values.blockedAt = written
                defer { values.blocked.removeAll() }
                return values.blocked
            }
            for waiter in waiters { waiter.resume(returning: written) }
        }
    }

    func channelWritabilityChanged(context: ChannelHandlerContext) {
        if context.channel.isWritable, self.remaining > 0 { self.pump(context: context) }
        context.fireChannelWritabilityChanged()
    }

    func errorCaught(context: ChannelHandlerContext, error: Error) {
        context.close(promise: nil)
    }
}
