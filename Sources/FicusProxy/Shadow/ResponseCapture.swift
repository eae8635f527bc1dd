import FicusDiff
import NIOCore

/// Captures one answer as it streams past: head fields, the body up to a bound, and the length and hash of all of it.
///
/// Hashing as the bytes go by is what lets a body longer than the bound still be compared (by length and hash)
/// without ever being held whole.
final class ResponseCapture {
    private let limit: Int
    /// When the request went to the upstream: latency is measured from there (`markSent`), for both sides alike.
    private var started: NIODeadline
    /// The head as received: its fields are turned into strings only when the message is built, off the path
    /// that forwards the answer.
    private var received: HTTPHead?
    private var body: [UInt8] = []
    private var length = 0
    private var hasher = FNV1a64()
    private var finished: NIODeadline?
    /// Where the captured bytes are reserved; nil captures without a budget.
    private let memory: ShadowMemory?
    /// Bytes of `memory` this capture holds.
    private(set) var reserved = 0
    /// Whether the budget refused bytes this capture needed: the capture is then incomplete and must not be compared.
    private(set) var overBudget = false

    init(limit: Int, started: NIODeadline, memory: ShadowMemory? = nil) {
        self.limit = limit
        self.started = started
        self.memory = memory
    }

    /// The request's head was written to its upstream now: the answer's latency counts from here, so that time
    /// spent inside Ficus (waiting for a pooled connection or for the shadow loop) is never blamed on an upstream.
    func markSent(at now: NIODeadline = .now()) {
        self.started = now
    }

    func head(_ head: HTTPHead) {
        self.received = head
    }

    func body(_ buffer: ByteBuffer) {
        self.length += buffer.readableBytes
        buffer.withUnsafeReadableBytes { raw in
            self.hasher.combine(raw)
            let room = self.limit - self.body.count
            guard room > 0, !self.overBudget else { return }
            let take = min(room, raw.count)
            if let memory = self.memory {
                guard memory.reserve(take) else {
                    self.overBudget = true
                    return
                }
                self.reserved += take
            }
            self.body.append(contentsOf: raw.prefix(take))
        }
    }

    /// The answer is complete. Called once it has been flushed to the client: only then is the head copied out of
    /// the buffer its connection read into (see `HTTPHead.detached()`), so the copy is not in the client's latency.
    func end() {
        self.finished = .now()
        self.received = self.received?.detached()
    }

    /// What was captured, as a value that can cross to another thread before it is turned into a message.
    var snapshot: CapturedResponse {
        CapturedResponse(
            head: self.received,
            body: self.body,
            length: self.length,
            hash: self.hasher.value,
            latencyNanoseconds: ((self.finished ?? .now()) - self.started).nanoseconds
        )
    }

    var message: CapturedMessage {
        self.snapshot.message
    }
}

/// A captured answer before its header fields are turned into strings.
///
/// The client's loop hands this over; the shadow loop builds the `CapturedMessage`.
struct CapturedResponse: Sendable {
    var head: HTTPHead?
    var body: [UInt8]
    var length: Int
    var hash: UInt64
    var latencyNanoseconds: Int64

    var message: CapturedMessage {
        CapturedMessage(
            status: self.head?.status ?? 0,
            headers: self.head?.fieldPairs ?? [],
            body: self.body,
            bodyLength: self.length,
            truncated: self.length > self.body.count,
            bodyHash: self.hash,
            latencyMicroseconds: Int(self.latencyNanoseconds / 1000)
        )
    }
}
