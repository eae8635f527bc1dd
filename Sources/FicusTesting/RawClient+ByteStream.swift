import NIOConcurrencyHelpers
import NIOCore
import NIOTLS
import NIOPosix

/// The bytes a raw client has received and not yet consumed, with the tasks waiting for more.
///
/// The channel appends on its event loop while the test consumes from its own task; waiting is a promise per
/// waiter, completed outside the lock whenever the stream changes.
final class RawByteStream: Sendable {
    struct Snapshot {
        var version: Int
        var closed: Bool
    }

    private struct State {
        var bytes: [UInt8] = []
        var version = 0
        var closed = false
        var reset = false
        var waiters: [Int: EventLoopPromise<Void>] = [:]
        var nextWaiterID = 0
    }

    private let state = NIOLockedValueBox(State())

    var wasReset: Bool {
        self.state.withLockedValue { $0.reset }
    }

    func append(_ buffer: ByteBuffer) {
        self.changed { $0.bytes.append(contentsOf: buffer.readableBytesView) }
    }

    func markClosed(reset: Bool) {
        self.changed { state in
            state.closed = true
            state.reset = state.reset || reset
        }
    }

    private func changed(_ update: (inout State) -> Void) {
        let waiters = self.state.withLockedValue { state in
            update(&state)
            state.version += 1
            let waiters = Array(state.waiters.values)
            state.waiters.removeAll()
            return waiters
        }
        for waiter in waiters {
            waiter.succeed()
        }
    }

    /// Runs `body` on the unconsumed bytes under the lock; it returns how many bytes to consume and a result.
    ///
    /// Parsing in place avoids copying a large body on every read event.
    func inspect<Result>(_ body: (ArraySlice<UInt8>, Bool) -> (consumed: Int, result: Result)) -> (Result, Snapshot) {
        self.state.withLockedValue { state in
            let (consumed, result) = body(state.bytes[...], state.closed)
            if consumed > 0 {
                state.bytes.removeFirst(consumed)
            }
            return (result, Snapshot(version: state.version, closed: state.closed))
        }
    }

    /// Waits until the stream changes after `version`; returns false when `deadline` passes first.
    ///
    /// Waiting on a promise rather than polling keeps tests fast and the event loops idle.
    func waitForChange(after version: Int, deadline: NIODeadline, on eventLoop: any EventLoop) async -> Bool {
        let registered: (Int, EventLoopFuture<Void>)? = self.state.withLockedValue { state in
            guard state.version == version else {
                return nil
            }
            state.nextWaiterID += 1
            let promise = eventLoop.makePromise(of: Void.self)
            state.waiters[state.nextWaiterID] = promise
            return (state.nextWaiterID, promise.futureResult)
        }
        guard let (id, future) = registered else {
            return true
        }
        let timer = eventLoop.scheduleTask(deadline: deadline) {
            let expired = self.state.withLockedValue { $0.waiters.removeValue(forKey: id) }
            expired?.fail(FicusTestingError(.timedOut, "no bytes before the deadline"))
        }
        defer { timer.cancel() }
        do {
            try await future.get()
            return true
        } catch {
            return false
        }
    }
}

/// Feeds every received byte and the end of the connection into a `RawByteStream`.
///
/// The handler does nothing else, so that the client sees the connection exactly as the peer left it.
final class RawClientHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer

    private let stream: RawByteStream
    private var sawReset = false
    /// Whether the connection runs TLS, so that `handshake` must complete.
    private let tls: Bool
    private var handshakePromise: EventLoopPromise<Void>?
    /// Completed when the TLS handshake is done, failed when it fails; nil without TLS.
    private(set) var handshake: EventLoopFuture<Void>?

    init(stream: RawByteStream, tls: Bool = false) {
        self.stream = stream
        self.tls = tls
    }

    func handlerAdded(context: ChannelHandlerContext) {
        guard self.tls else { return }
        let promise = context.eventLoop.makePromise(of: Void.self)
        self.handshakePromise = promise
        self.handshake = promise.futureResult
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        // A connect that failed never made the channel active: the handshake will not come.
        self.handshakePromise?.fail(ChannelError.eof)
        self.handshakePromise = nil
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if let event = event as? TLSUserEvent, case .handshakeCompleted = event {
            self.handshakePromise?.succeed()
            self.handshakePromise = nil
        }
        context.fireUserInboundEventTriggered(event)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        self.stream.append(self.unwrapInboundIn(data))
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        if let error = error as? IOError, error.errnoCode == ECONNRESET {
            self.sawReset = true
        }
        self.handshakePromise?.fail(error)
        self.handshakePromise = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        self.handshakePromise?.fail(ChannelError.eof)
        self.handshakePromise = nil
        self.stream.markClosed(reset: self.sawReset)
        context.fireChannelInactive()
    }
}
