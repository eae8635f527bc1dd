import NIOCore
import NIOPosix
import NIOSSL

/// A plain TCP client that sends exact bytes and reads responses with its own strict parser.
///
/// Framing and smuggling tests must send what no HTTP client library would (conflicting lengths, bare LF, pipelined
/// garbage) and see exactly what came back, including a connection closed or reset mid-response.
public final class RawClient: Sendable {
    private let channel: any Channel
    private let stream: RawByteStream

    private init(channel: any Channel, stream: RawByteStream) {
        self.channel = channel
        self.stream = stream
    }

    /// Connects to `host:port` (loopback by default) with Nagle disabled.
    ///
    /// Nagle would merge or delay small writes and hide how the peer handles bytes that arrive in pieces.
    ///
    /// With `tls`, the bytes go through a TLS session (`serverHostname` is sent as SNI and checked against the
    /// server's certificate); `connect` returns once the handshake is done, and throws if it fails.
    public static func connect(
        host: String = "127.0.0.1",
        port: Int,
        group: any EventLoopGroup,
        tls: NIOSSLContext? = nil,
        serverHostname: String? = nil
    ) async throws -> RawClient {
        let stream = RawByteStream()
        let channel = try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connectTimeout(.seconds(5))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls, serverHostname: serverHostname)
                        )
                    }
                    try channel.pipeline.syncOperations.addHandler(RawClientHandler(stream: stream, tls: tls != nil))
                }
            }
            .connect(host: host, port: port)
            .get()
        let client = RawClient(channel: channel, stream: stream)
        if tls != nil {
            do {
                try await client.handshakeDone()
            } catch {
                try? await channel.close()
                throw error
            }
        }
        return client
    }

    /// Waits for the TLS handshake of a connection made with `tls`.
    private func handshakeDone() async throws {
        let channel = self.channel
        let handshake = try await channel.eventLoop.submit {
            try channel.pipeline.syncOperations.handler(type: RawClientHandler.self).handshake
        }.get()
        try await handshake?.get()
    }

    /// The local port of the connection, as the peer sees it in its address.
    ///
    /// Lets a test find its own connection in the proxy's logs or forwarded headers.
    public var localPort: Int? {
        self.channel.localAddress?.port
    }

    /// Whether the connection ended with a reset (ECONNRESET) rather than an orderly close.
    ///
    /// Some faults must reach the client as a reset and others as a clean close; tests tell them apart here.
    public var wasReset: Bool {
        self.stream.wasReset
    }

    /// Writes these bytes verbatim and flushes them.
    ///
    /// Nothing is added or repaired: byte-exact framing tests depend on it.
    public func send(_ bytes: [UInt8]) async throws {
        try await self.channel.writeAndFlush(ByteBuffer(bytes: bytes)).get()
    }

    /// Writes the UTF-8 bytes of this string verbatim.
    ///
    /// Line endings are not converted, so that bare LF and other malformed requests can be written as text.
    public func send(_ string: String) async throws {
        try await self.send(Array(string.utf8))
    }

    /// Reads one response from the connection.
    ///
    /// Returns `nil` when the peer closed before sending any byte of it; throws `.closedMidResponse` when it closed
    /// part way (a truncated response must never pass as complete), `.timedOut` or `.malformedResponse`. Call it
    /// repeatedly to read pipelined responses; pass `forHEAD: true` for the answer to a HEAD request.
    public func readResponse(forHEAD: Bool = false, timeout: TimeAmount = .seconds(5)) async throws -> RawResponse? {
        let deadline = NIODeadline.now() + timeout
        while true {
            let (outcome, snapshot) = self.stream.inspect { bytes, closed in
                let outcome = RawResponseParser.parse(bytes, forHEAD: forHEAD, peerClosed: closed)
                switch outcome {
                case .complete(_, let consumed):
                    return (consumed, (outcome, [UInt8]()))
                case .needMore, .invalid:
                    return (0, (outcome, Array(bytes)))
                }
            }
            switch outcome.0 {
            case .complete(let response, _):
                return response
            case .invalid(let message):
                throw FicusTestingError(.malformedResponse, message, partial: outcome.1)
            case .needMore:
                if snapshot.closed {
                    guard !outcome.1.isEmpty else {
                        return nil
                    }
                    let how = self.wasReset ? "reset" : "closed"
                    throw FicusTestingError(.closedMidResponse, "peer \(how) mid-response", partial: outcome.1)
                }
                let changed = await self.stream.waitForChange(
                    after: snapshot.version,
                    deadline: deadline,
                    on: self.channel.eventLoop
                )
                if !changed {
                    throw FicusTestingError(.timedOut, "no complete response in time", partial: outcome.1)
                }
            }
        }
    }

    /// Reads every byte until the peer closes or the timeout passes, and returns them.
    ///
    /// For answers that are not a well-formed response, or to prove nothing follows a response.
    public func readAll(timeout: TimeAmount = .seconds(5)) async throws -> [UInt8] {
        let deadline = NIODeadline.now() + timeout
        var collected: [UInt8] = []
        while true {
            let (bytes, snapshot) = self.stream.inspect { bytes, _ in (bytes.count, Array(bytes)) }
            collected += bytes
            if snapshot.closed {
                return collected
            }
            let changed = await self.stream.waitForChange(
                after: snapshot.version,
                deadline: deadline,
                on: self.channel.eventLoop
            )
            if !changed {
                return collected
            }
        }
    }

    /// Reads exactly `count` bytes, waiting up to `timeout` in all; throws when the peer closes first or time runs
    /// out.
    ///
    /// For tunnels, whose bytes are not HTTP: the test decodes them itself.
    public func read(exactly count: Int, timeout: TimeAmount = .seconds(5)) async throws -> [UInt8] {
        let deadline = NIODeadline.now() + timeout
        var collected: [UInt8] = []
        collected.reserveCapacity(count)
        while true {
            let (taken, snapshot) = self.stream.inspect { bytes, _ in
                let take = min(bytes.count, count - collected.count)
                return (take, Array(bytes.prefix(take)))
            }
            collected += taken
            if collected.count == count { return collected }
            if snapshot.closed {
                throw FicusTestingError(.closedMidResponse, "peer closed after \(collected.count) of \(count) bytes")
            }
            let changed = await self.stream.waitForChange(
                after: snapshot.version,
                deadline: deadline,
                on: self.channel.eventLoop
            )
            if !changed {
                throw FicusTestingError(.timedOut, "\(collected.count) of \(count) bytes within the time allowed")
            }
        }
    }

    /// Stops (false) or resumes (true) reading from the socket: a client that stops reading makes the kernel's
    /// buffers fill up, which is how tests play a slow reader.
    public func setReading(_ reading: Bool) async throws {
        try await self.channel.setOption(.autoRead, value: reading).get()
        if reading { self.channel.read() }
    }

    /// Whether the peer closes the connection within `timeout`; bytes received meanwhile stay unread.
    ///
    /// Refusals must close the connection, and that is what these tests assert.
    public func isClosed(within timeout: TimeAmount) async -> Bool {
        let deadline = NIODeadline.now() + timeout
        while true {
            let ((), snapshot) = self.stream.inspect { _, _ in (0, ()) }
            if snapshot.closed {
                return true
            }
            let changed = await self.stream.waitForChange(
                after: snapshot.version,
                deadline: deadline,
                on: self.channel.eventLoop
            )
            if !changed {
                return false
            }
        }
    }

    /// Shuts down the sending side only (FIN), keeping the connection open for reading.
    ///
    /// Tests how the peer handles a client that has finished sending but still waits for an answer.
    public func closeWrite() async throws {
        try await self.channel.close(mode: .output)
    }

    /// Closes the connection without waiting.
    ///
    /// Synchronous so that it can run from `defer` blocks in tests.
    public func close() {
        self.channel.close(promise: nil)
    }
}
