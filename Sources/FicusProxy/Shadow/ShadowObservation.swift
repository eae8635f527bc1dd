import FicusDiff
import NIOCore

/// Everything the proxy saw of one shadowed request: the request and both answers, each bounded.
///
/// The proxy only captures; comparing, learning noise and storing happen behind a `ShadowSink`, off the event loop,
/// so that a shadow can never slow down the answer a client is waiting for.
public struct ShadowObservation: Sendable {
    /// Wall-clock time the request arrived, in microseconds since 1970.
    public var timestamp: Int64
    /// The request's `X-Request-Id` (also in the access log).
    public var requestID: String
    public var route: String
    public var method: String
    /// The request target as received (path and query).
    public var target: String
    public var requestHeaders: [(String, String)]
    /// The request body, up to the capture bound (the request was not shadowed when it was longer).
    public var requestBody: [UInt8]
    public var servingUpstream: String
    public var serving: CapturedMessage
    public var shadowUpstream: String
    /// The shadow's answer; nil when the shadow failed (see `shadowError`).
    public var shadow: CapturedMessage?
    public var shadowError: String?
    /// Time the copy waited inside Ficus before its first byte left, in microseconds; nil when it never left.
    public var shadowWaitMicroseconds: Int?
    /// The noise sample: the same request answered a second time by the serving side (or its secondary).
    public var secondUpstream: String?
    public var second: CapturedMessage?
}

/// Where shadow observations go; must not block (it is called on an event loop).
public protocol ShadowSink: Sendable {
    /// Takes an observation, or drops it when its queue is full (and counts that).
    func submit(_ observation: ShadowObservation)
}

/// How shadow traffic is bounded.
public struct ShadowLimits: Sendable {
    /// Request and response bodies are captured up to this many bytes; longer answers are compared by length and
    /// hash, and longer request bodies are not shadowed.
    public var captureBytes = 1024 * 1024
    /// Shadow requests in flight, for the whole proxy; beyond it copies are dropped (and counted).
    public var maxInFlight = 1000
    /// The first this many shadowed safe requests of every endpoint are noise samples, whatever the route's noise
    /// percentage (`NoiseSampler`); 0 leaves only the percentage.
    public var noiseFloor = 20
    /// Bytes of captured bodies (requests, serving and shadow answers) held by copies in flight and waiting, for the
    /// whole proxy; a copy that would pass it is dropped whole and counted (`reason="memory"`).
    public var maxMemoryBytes = 256 * 1024 * 1024
    /// A shadow request that has not completed by then is abandoned.
    public var timeout: TimeAmount = .seconds(10)
    /// After a shadow upstream address refuses a connect (or times out), copies do not try it for this long,
    /// doubling with each failure in a row up to `connectBackoffMaximum`; one connect then probes it. Copies that
    /// find every address of their upstream pausing fail at once and are recorded as shadow errors ("not tried").
    public var connectBackoff: TimeAmount = .milliseconds(100)
    public var connectBackoffMaximum: TimeAmount = .seconds(3)

    public init() {}
}
