#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// Loopback endpoints that fail in ways `TestUpstream` cannot: nothing listening, a listener that never completes a
/// handshake, and a server that drops its keep-alive connections when they are reused.
///
/// Fault tests need these failures to be deterministic on one machine, without touching the network outside
/// 127.0.0.1.
enum DeadUpstream {
    #if canImport(Glibc)
    private static let streamType = Int32(SOCK_STREAM.rawValue)
    #else
    private static let streamType = SOCK_STREAM
    #endif

    static func loopback(port: Int = 0) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port)).bigEndian
        address.sin_addr.s_addr = in_addr_t(0x7F00_0001).bigEndian
        return address
    }

    static func bind(_ fd: Int32) throws {
        var address = Self.loopback()
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                systemBind(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard result == 0 else { throw SocketFailure("bind", errno) }
    }

    static func localPort(_ fd: Int32) throws -> Int {
        var address = sockaddr_in()
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let result = withUnsafeMutablePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        guard result == 0 else { throw SocketFailure("getsockname", errno) }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    static func makeSocket() throws -> Int32 {
        let fd = socket(AF_INET, Self.streamType, 0)
        guard fd >= 0 else { throw SocketFailure("socket", errno) }
        return fd
    }

    /// A loopback port held bound, without listening, until `close()`: a connect to it is refused (RST), the "upstream
    /// down" fault. Held rather than bound and closed at once, so that the port cannot be handed to another socket
    /// meanwhile (another test's listener, or an outgoing connection whose source port it becomes, which would then
    /// connect to itself and hang: how a refused-connect test once got a 504).
    final class RefusingPort: @unchecked Sendable {
        let port: Int
        private var fd: Int32

        init() throws {
            self.fd = try DeadUpstream.makeSocket()
            try DeadUpstream.bind(self.fd)
            self.port = try DeadUpstream.localPort(self.fd)
        }

        func close() {
            if self.fd >= 0 { _ = systemClose(self.fd) }
            self.fd = -1
        }

        deinit { self.close() }
    }

    struct SocketFailure: Error, CustomStringConvertible {
        var call: String
        var code: Int32
        init(_ call: String, _ code: Int32) {
            self.call = call
            self.code = code
        }
        var description: String { "\(self.call) failed: errno \(self.code)" }
    }
}

// The C calls under names that `DeadUpstream.bind` and `BlackholeListener.close` do not shadow.
#if canImport(Glibc)
private func systemBind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Glibc.bind(fd, address, length)
}
private func systemClose(_ fd: Int32) -> Int32 { Glibc.close(fd) }
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Glibc.connect(fd, address, length)
}
#else
private func systemBind(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Darwin.bind(fd, address, length)
}
private func systemClose(_ fd: Int32) -> Int32 { Darwin.close(fd) }
private func systemConnect(_ fd: Int32, _ address: UnsafePointer<sockaddr>, _ length: socklen_t) -> Int32 {
    Darwin.connect(fd, address, length)
}
#endif

/// A listening socket that never accepts and whose accept queue is full, so that the kernel drops further SYNs.
///
/// On Linux a full accept queue makes `tcp_conn_request` drop the SYN (no SYN-ACK, no RST); the connecting side
/// retransmits after 1 s, so any shorter connect timeout expires deterministically on loopback.
final class BlackholeListener {
    let port: Int
    private var fds: [Int32]

    private init(port: Int, fds: [Int32]) {
        self.port = port
        self.fds = fds
    }

    /// Listens with a backlog of 0 and connects fillers until one is left hanging in SYN-SENT.
    ///
    /// Throws when eight fillers all complete their handshake (the kernel does not drop SYNs here), so that a test
    /// reports "cannot be made deterministic" rather than timing out on something else.
    static func start() throws -> BlackholeListener {
        let listener = try DeadUpstream.makeSocket()
        var fds = [listener]
        do {
            try DeadUpstream.bind(listener)
            guard listen(listener, 0) == 0 else { throw DeadUpstream.SocketFailure("listen", errno) }
            let port = try DeadUpstream.localPort(listener)
            for _ in 0..<8 {
                let filler = try DeadUpstream.makeSocket()
                fds.append(filler)
                if try !Self.connects(filler, to: port, within: 100) {
                    return BlackholeListener(port: port, fds: fds)
                }
            }
            throw DeadUpstream.SocketFailure("fill accept queue (every SYN was answered)", 0)
        } catch {
            for fd in fds { _ = systemClose(fd) }
            throw error
        }
    }

    /// Starts a non-blocking connect and reports whether the handshake completes within `milliseconds`.
    private static func connects(_ fd: Int32, to port: Int, within milliseconds: Int32) throws -> Bool {
        _ = fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK)
        var address = DeadUpstream.loopback(port: port)
        let result = withUnsafePointer(to: &address) { pointer in
            pointer.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                systemConnect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        if result == 0 { return true }
        guard errno == EINPROGRESS else { throw DeadUpstream.SocketFailure("connect", errno) }
        var descriptor = pollfd(fd: fd, events: Int16(POLLOUT), revents: 0)
        let ready = poll(&descriptor, 1, milliseconds)
        guard ready > 0 else { return false }
        var error: Int32 = 0
        var length = socklen_t(MemoryLayout<Int32>.size)
        _ = getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &length)
        guard error == 0 else { throw DeadUpstream.SocketFailure("connect (SO_ERROR)", error) }
        return true
    }

    func close() {
        for fd in self.fds { _ = systemClose(fd) }
        self.fds = []
    }

    deinit {
        self.close()
    }
}

/// A keep-alive HTTP/1.1 server that answers the first request on each connection and silently closes the connection
/// when a second request arrives on it.
///
/// This is a pooled upstream connection that turns out to be dead only when it is reused: the one case where
/// docs/PROXY.md allows the proxy to re-send a request, and only an idempotent one with no body streamed.
final class FirstRequestOnlyUpstream: Sendable {
    struct Request: Sendable {
        var connection: Int
        var method: String
        var uri: String
        var answered: Bool
    }

    private struct State {
        var connections = 0
        var requests: [Request] = []
    }

    let port: Int
    private let channel: any Channel
    private let state: NIOLockedValueBox<State>

    private init(port: Int, channel: any Channel, state: NIOLockedValueBox<State>) {
        self.port = port
        self.channel = channel
        self.state = state
    }

    static func start(group: any EventLoopGroup) async throws -> FirstRequestOnlyUpstream {
        let state = NIOLockedValueBox(State())
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                let id = state.withLockedValue { state in
                    state.connections += 1
                    return state.connections
                }
                return channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(connection: id, state: state))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return FirstRequestOnlyUpstream(port: channel.localAddress!.port!, channel: channel, state: state)
    }

    var address: String { "127.0.0.1:\(self.port)" }

    var connectionsAccepted: Int { self.state.withLockedValue { $0.connections } }

    /// Every request head seen, answered or not, in arrival order.
    var requests: [Request] { self.state.withLockedValue { $0.requests } }

    func shutdown() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let connection: Int
        private let state: NIOLockedValueBox<State>
        private var buffer: [UInt8] = []
        private var bodyLeft = 0
        private var answered = false

        init(connection: Int, state: NIOLockedValueBox<State>) {
            self.connection = connection
            self.state = state
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            self.buffer += self.unwrapInboundIn(data).readableBytesView
            while true {
                if self.bodyLeft > 0 {
                    let taken = min(self.bodyLeft, self.buffer.count)
                    self.buffer.removeFirst(taken)
                    self.bodyLeft -= taken
                    if self.bodyLeft > 0 { return }
                    if !self.answered { self.answer(context) }
                    continue
                }
                guard let end = Self.endOfHead(self.buffer) else { return }
                let head = String(decoding: self.buffer[..<end], as: UTF8.self)
                self.buffer.removeFirst(end + 4)
                let lines = head.split(separator: "\r\n", omittingEmptySubsequences: false)
                let parts = lines.first?.split(separator: " ") ?? []
                let length = lines.dropFirst().compactMap { line -> Int? in
                    let field = line.split(separator: ":", maxSplits: 1)
                    guard field.count == 2, field[0].lowercased() == "content-length" else { return nil }
                    return Int(field[1].trimmingSpaces())
                }.first ?? 0
                let request = Request(
                    connection: self.connection,
                    method: parts.count > 0 ? String(parts[0]) : "",
                    uri: parts.count > 1 ? String(parts[1]) : "",
                    answered: !self.answered
                )
                self.state.withLockedValue { $0.requests.append(request) }
                if self.answered {
                    // The second request on this connection: drop it without a word.
                    self.buffer = []
                    context.close(promise: nil)
                    return
                }
                self.bodyLeft = length
                if length == 0 { self.answer(context) }
            }
        }

        private func answer(_ context: ChannelHandlerContext) {
            self.answered = true
            let body = "first on connection \(self.connection)"
            let response = "HTTP/1.1 200 OK\r\ncontent-length: \(body.utf8.count)\r\n\r\n\(body)"
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(string: response)), promise: nil)
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }

        private static func endOfHead(_ bytes: [UInt8]) -> Int? {
            guard bytes.count >= 4 else { return nil }
            for index in 0...(bytes.count - 4)
            where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
                return index
            }
            return nil
        }
    }
}

extension Substring {
    fileprivate func trimmingSpaces() -> Substring {
        var result = self
        while result.first == " " || result.first == "\t" { result = result.dropFirst() }
        while result.last == " " || result.last == "\t" { result = result.dropLast() }
        return result
    }
}

/// A server that answers the first request head on each connection with fixed bytes, then resets (RST) or closes
/// (FIN) the connection.
///
/// `TestUpstream.raw` keeps its connection open and `.resetMidBody` always declares a `content-length`; a body
/// delimited by the close of the connection needs the end of the connection to be chosen too.
final class ScriptedUpstream: Sendable {
    enum Ending: Sendable {
        case reset
        case close
    }

    let port: Int
    private let channel: any Channel

    private init(port: Int, channel: any Channel) {
        self.port = port
        self.channel = channel
    }

    static func start(
        _ bytes: [UInt8],
        then ending: Ending,
        group: any EventLoopGroup
    ) async throws -> ScriptedUpstream {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Handler(bytes: bytes, ending: ending))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return ScriptedUpstream(port: channel.localAddress!.port!, channel: channel)
    }

    var address: String { "127.0.0.1:\(self.port)" }

    func shutdown() async {
        try? await self.channel.close()
    }

    private final class Handler: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        typealias OutboundOut = ByteBuffer

        private let bytes: [UInt8]
        private let ending: Ending
        private var received: [UInt8] = []
        private var answered = false

        init(bytes: [UInt8], ending: Ending) {
            self.bytes = bytes
            self.ending = ending
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            guard !self.answered else { return }
            self.received += self.unwrapInboundIn(data).readableBytesView
            guard self.received.count >= 4,
                (0...(self.received.count - 4)).contains(where: {
                    self.received[$0..<($0 + 4)].elementsEqual([13, 10, 13, 10])
                })
            else { return }
            self.answered = true
            let channel = context.channel
            let ending = self.ending
            context.writeAndFlush(self.wrapOutboundOut(ByteBuffer(bytes: self.bytes))).whenComplete { _ in
                switch ending {
                case .close:
                    channel.close(promise: nil)
                case .reset:
                    guard let provider = channel as? any SocketOptionProvider else {
                        channel.close(promise: nil)
                        return
                    }
                    provider.setSoLinger(linger(l_onoff: 1, l_linger: 0)).whenComplete { _ in
                        channel.close(promise: nil)
                    }
                }
            }
        }

        func errorCaught(context: ChannelHandlerContext, error: any Error) {
            context.close(promise: nil)
        }
    }
}
