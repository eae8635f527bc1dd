import FicusCore
import FicusProxy

extension FuzzTargets {
    /// Limits wide enough for anything the proxy writes: its own heads add fields (`Via`, `X-Forwarded-*`) to what it
    /// accepted under the normal limits, and reading them back must not trip on that.
    static let relaxedLimits: HTTPLimits = {
        var limits = HTTPLimits()
        limits.maxRequestLine = 1 << 20
        limits.maxHeadBytes = 1 << 20
        limits.maxFields = 1_000
        limits.maxBody = .max
        return limits
    }()

    /// One harness for every run: the routing table and the connection's shared context are built once. Its one
    /// catch-all route retries (once, on connect failures, resets and 502-504) and answers failed GETs from its
    /// recent answers (`stale_if_error`), so that the fuzzer drives those paths of the exchange machine too.
    static let harness: EmbeddedProxyHarness = {
        do {
            var routing = Configuration.catchAll(
                upstreams: [Upstream(name: "upstream", addresses: [Endpoint(host: "127.0.0.1", port: 8080)])],
                defaultUpstream: "upstream"
            )
            routing.routes[0].retry = RetryPolicy(attempts: 1)
            routing.routes[0].staleIfError = "60s"
            return try EmbeddedProxyHarness(routing: routing)
        } catch {
            fatalError("the proxy harness cannot be built: \(error)")
        }
    }()

    /// Client bytes, then upstream bytes, through the real `ProxyConnectionHandler` and `UpstreamConnection`.
    ///
    /// Input: one byte of piece seed, two bytes (little-endian) of client length, the client's bytes, the upstream's
    /// answer. Invariants: everything the client receives is well-framed HTTP/1.1 (truncated only when the
    /// connection is closed), one final answer at most per request (and one for a refusal); a refused first request
    /// gets exactly one answer, with `connection: close`, the connection closed and nothing sent upstream; and what
    /// the upstream receives parses as requests (never more than the client's, counting a re-send and a retry each).
    public static func proxyExchange(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let seed = input.byte()
        let clientLength = input.uint16()
        let client = input.take(clientLength)
        let upstream = input.rest()
        let sizes = pieceSizes(seed: seed, total: max(client.count, upstream.count))
        let outcome: EmbeddedProxyHarness.Outcome
        do {
            outcome = try Self.harness.run(client: client, upstream: upstream, pieces: sizes)
        } catch {
            invariant(false, "the harness failed: \(error)")
            return
        }

        let requests = Self.parse(client, kind: .request, pieces: [], methods: [])
        // A refusal answers the request that failed to parse; a complete request that no answer completes does not
        // count (the upstream may have said nothing).
        let methods = requests.messages.map { Self.methodKind($0.startLine) }
        let answers = Self.parse(
            outcome.clientReceived,
            kind: .response,
            pieces: [],
            methods: methods,
            peerCloses: outcome.clientClosed,
            limits: Self.relaxedLimits
        )
        invariant(
            answers.error == nil || (answers.error == .truncated && outcome.clientClosed),
            "the client received badly framed bytes (\(answers.error.map { "\($0)" } ?? "")): "
                + String(decoding: outcome.clientReceived.prefix(2_000), as: UTF8.self)
        )
        let finals = answers.finalMessages
        let refused = requests.error != nil ? 1 : 0
        invariant(
            finals.count <= requests.messages.count + refused,
            "\(finals.count) answers to \(requests.messages.count) requests"
        )
        if requests.messages.isEmpty, requests.error != nil {
            invariant(finals.count == 1, "a refused request got \(finals.count) answers")
            invariant(finals.first?.connectionClose == true, "a refusal without connection: close")
            invariant(outcome.clientClosed, "the connection stayed open after a refusal")
            invariant(outcome.upstreamConnections == 0, "a refused request opened an upstream connection")
        }
        if requests.messages.isEmpty, requests.error == nil {
            invariant(finals.isEmpty, "an answer to a request that never arrived")
        }
        var forwarded = 0
        for bytes in outcome.upstreamReceived {
            let sent = Self.parse(bytes, kind: .request, pieces: [], methods: [], limits: Self.relaxedLimits)
            invariant(
                sent.error == nil,
                "the upstream received a badly framed request (\(sent.error.map { "\($0)" } ?? "")): "
                    + String(decoding: bytes.prefix(2_000), as: UTF8.self)
            )
            forwarded += sent.messages.count
        }
        invariant(
            forwarded <= 3 * requests.messages.count,
            "\(forwarded) requests forwarded for \(requests.messages.count) received"
        )
    }

    /// The method of a summarised request's start line.
    static func methodKind(_ startLine: String) -> HTTPMethodKind {
        switch startLine.prefix(while: { $0 != " " }) {
        case "HEAD": .head
        case "GET": .get
        case "POST": .post
        case "CONNECT": .connect
        default: .other
        }
    }
}
