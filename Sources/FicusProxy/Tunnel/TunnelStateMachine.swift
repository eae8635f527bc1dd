import NIOCore

/// What a WebSocket tunnel does next, as a pure function of bytes moved, closes and the time: its idle deadline and
/// its end.
///
/// A tunnel has almost no protocol left (the bytes are the two peers' business), so the machine keeps only what the
/// shell must decide: when the idle deadline really passed (one timer per tunnel, moved only when it fires, rather
/// than re-armed on every read), which side ended the tunnel and why, and the counts for the access log. Time is
/// passed in; nothing here touches a channel.
struct TunnelStateMachine {
    /// One of the two connections.
    enum Side: Equatable {
        case client
        case upstream
    }

    /// Why a tunnel ended, as the access log and the log name it.
    enum EndReason: String, Equatable {
        case clientClosed = "client_closed"
        case upstreamClosed = "upstream_closed"
        case idle = "idle_timeout"
        case drain
    }

    /// Something for the shell to do.
    enum Action: Equatable {
        case none
        /// Arm the idle timer to fire after this long.
        case armTimer(TimeAmount)
        /// Close both connections, account for the tunnel and write its access log line.
        case end(EndReason)
    }

    /// How long the tunnel may carry no byte before it ends.
    let idleTimeout: TimeAmount
    /// When the tunnel started.
    let started: NIODeadline
    /// When a byte last moved, either way.
    private(set) var lastActivity: NIODeadline
    /// Bytes read from the client (and written to the upstream), and the other way.
    private(set) var bytesFromClient: Int64 = 0
    private(set) var bytesFromUpstream: Int64 = 0
    /// Set once: the tunnel has ended, and why.
    private(set) var ended: EndReason?
    /// Graceful shutdown has begun: a close from now on is the drain's.
    private(set) var draining = false

    /// A tunnel starting `now`.
    init(idleTimeout: TimeAmount, now: NIODeadline) {
        self.idleTimeout = idleTimeout
        self.started = now
        self.lastActivity = now
    }

    /// The tunnel starts: its idle timer is armed.
    func start() -> Action {
        .armTimer(self.idleTimeout)
    }

    /// `count` bytes were read from `side` at `now`: activity, which pushes the idle deadline back.
    mutating func bytesRead(_ count: Int, from side: Side, now: NIODeadline) {
        switch side {
        case .client: self.bytesFromClient += Int64(count)
        case .upstream: self.bytesFromUpstream += Int64(count)
        }
        self.lastActivity = now
    }

    /// The idle timer fired at `now`: the tunnel ends if nothing moved for `idleTimeout`, else the timer is moved to
    /// the new deadline.
    mutating func timerFired(now: NIODeadline) -> Action {
        guard self.ended == nil else { return .none }
        let quiet = now - self.lastActivity
        if quiet >= self.idleTimeout {
            self.ended = .idle
            return .end(.idle)
        }
        return .armTimer(self.idleTimeout - quiet)
    }

    /// Graceful shutdown began: the tunnel is left open (the server closes what is left after its drain timeout),
    /// and an end from now on is counted as the drain's.
    mutating func drainStarted() {
        self.draining = true
    }

    /// `side` closed (or closed its sending half, or failed): the tunnel ends, once.
    mutating func closed(_ side: Side) -> Action {
        guard self.ended == nil else { return .none }
        let reason: EndReason = self.draining ? .drain : (side == .client ? .clientClosed : .upstreamClosed)
        self.ended = reason
        return .end(reason)
    }
}
