import FicusProxy
import NIOCore

/// What a run of `HTTP1Parser` produced, comparable between two ways of feeding the same bytes.
struct ParseSummary: Equatable {
    struct Message: Equatable {
        /// `METHOD target` of a request, the status of a response.
        var startLine: String
        var framing: HTTPBodyFraming
        var bodyBytes: Int64 = 0
        var ended = false
        var connectionClose: Bool
        /// Host fields in the head (requests only; zero is allowed in HTTP/1.0).
        var hosts = 0
        var trailerFields = 0
    }

    var messages: [Message] = []
    var error: HTTPFramingError.Reason?
    /// Where the unparsed bytes started when the error was thrown (not compared: pieces may find it elsewhere).
    var errorPosition: Int?

    static func == (lhs: ParseSummary, rhs: ParseSummary) -> Bool {
        lhs.messages == rhs.messages && lhs.error == rhs.error
    }

    /// Final (non-1xx) responses, or every request.
    var finalMessages: [Message] {
        self.messages.filter { !$0.startLine.hasPrefix("1") || $0.startLine.count != 3 }
    }
}

extension FuzzTargets {
    /// The request parser on arbitrary bytes, fed whole and in pieces chosen by the first byte.
    ///
    /// Invariants: events come in order (head, body, end); a body never exceeds its Content-Length or the input; a
    /// message that ends has exactly its Content-Length; a head that was accepted has none of the shapes the framing
    /// table refuses (Content-Length with Transfer-Encoding, HTTP/1.1 without Host, more than 100 fields); and the
    /// pieces make no difference to what is parsed or refused.
    public static func requestParser(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let seed = input.byte()
        let bytes = input.rest()
        let whole = Self.parse(bytes, kind: .request, pieces: [], methods: [])
        let pieces = Self.parse(bytes, kind: .request, pieces: pieceSizes(seed: seed, total: bytes.count), methods: [])
        invariant(whole == pieces, "pieces changed the parse:\n\(whole)\nversus\n\(pieces)")
    }

    /// The response parser on arbitrary bytes, answering requests whose methods the first byte chooses.
    ///
    /// The same invariants as the request parser, with the peer's close at the end (which ends a body delimited by
    /// the close, and is a truncation anywhere else).
    public static func responseParser(_ data: [UInt8]) {
        var input = FuzzInput(data)
        let seed = input.byte()
        let choice = input.byte()
        let methods: [HTTPMethodKind] = (0..<4).map { index in
            switch (choice >> (index * 2)) & 3 {
            case 0: .get
            case 1: .head
            case 2: .post
            default: .delete
            }
        }
        let bytes = input.rest()
        let whole = Self.parse(bytes, kind: .response, pieces: [], methods: methods, peerCloses: true)
        let pieces = Self.parse(
            bytes,
            kind: .response,
            pieces: pieceSizes(seed: seed, total: bytes.count),
            methods: methods,
            peerCloses: true
        )
        invariant(whole == pieces, "pieces changed the parse:\n\(whole)\nversus\n\(pieces)")
    }

    /// Runs one parser over `bytes` in `pieces`, checking every event, and summarises what it produced.
    ///
    /// Responses answer `methods` in turn (the last one repeats); `limits` default to the proxy's own.
    static func parse(
        _ bytes: [UInt8],
        kind: HTTP1Parser.Kind,
        pieces: [Int],
        methods: [HTTPMethodKind],
        peerCloses: Bool = false,
        limits: HTTPLimits? = nil
    ) -> ParseSummary {
        var parser = HTTP1Parser(kind: kind, limits: limits ?? (kind == .request ? HTTPLimits() : .response))
        var answered = 0
        func method() -> HTTPMethodKind {
            methods.isEmpty ? .get : methods[min(answered, methods.count - 1)]
        }
        if kind == .response {
            parser.expectResponse(to: method())
        }
        var summary = ParseSummary()
        var buffer = ByteBuffer()
        var events = 0
        var bodyTotal: Int64 = 0

        func handle(_ event: HTTP1Parser.Event) {
            events += 1
            invariant(events <= 2 * bytes.count + 8, "more events than the input can hold (\(events))")
            switch event {
            case .head(let head):
                invariant(summary.messages.last?.ended ?? true, "a head before the previous message ended")
                Self.checkAcceptedHead(head, kind: kind, limits: limits ?? HTTPLimits())
                let startLine = kind == .request ? "\(head.methodString) \(head.target)" : String(head.status)
                summary.messages.append(
                    ParseSummary.Message(
                        startLine: startLine,
                        framing: head.framing,
                        connectionClose: head.connectionClose,
                        hosts: head.fields.indices.filter { head.name($0).lowercased() == "host" }.count
                    )
                )
            case .body(let body):
                guard let last = summary.messages.indices.last, !summary.messages[last].ended else {
                    invariant(false, "a body without a head")
                    return
                }
                summary.messages[last].bodyBytes += Int64(body.readableBytes)
                bodyTotal += Int64(body.readableBytes)
                invariant(bodyTotal <= Int64(bytes.count), "more body bytes (\(bodyTotal)) than input (\(bytes.count))")
                if case .contentLength(let length) = summary.messages[last].framing {
                    invariant(summary.messages[last].bodyBytes <= length, "a body past its Content-Length")
                }
                invariant(summary.messages[last].framing != .none, "a body for a message framed without one")
            case .end(let trailers):
                guard let last = summary.messages.indices.last, !summary.messages[last].ended else {
                    invariant(false, "an end without a head")
                    return
                }
                let message = summary.messages[last]
                switch message.framing {
                case .contentLength(let length):
                    invariant(message.bodyBytes == length, "ended after \(message.bodyBytes) of \(length) bytes")
                case .none:
                    invariant(message.bodyBytes == 0, "a body for a message without one")
                case .chunked, .untilClose:
                    break
                }
                summary.messages[last].ended = true
                summary.messages[last].trailerFields = trailers?.fields.count ?? 0
                if let trailers {
                    invariant(message.framing == .chunked, "trailers on a message that is not chunked")
                    invariant(trailers.fields.count <= 1_000, "unbounded trailers")
                }
                let interim = kind == .response && message.startLine.count == 3 && message.startLine.hasPrefix("1")
                if kind == .response, !interim {
                    answered += 1
                    parser.expectResponse(to: method())
                }
            }
        }

        var fed = 0
        feeding: for piece in EmbeddedProxyHarness.split(bytes, pieces) {
            buffer.writeBytes(piece)
            fed += piece.count
            while true {
                let before = buffer.readableBytes
                let event: HTTP1Parser.Event?
                do {
                    event = try parser.next(&buffer)
                } catch {
                    summary.error = error.reason
                    summary.errorPosition = fed - before
                    // A parser that failed stays failed: nothing more comes out of it.
                    var rest = buffer
                    invariant((try? parser.next(&rest)) == nil, "events after a framing error")
                    break feeding
                }
                invariant(buffer.readableBytes <= before, "the parser un-consumed bytes")
                guard let event else {
                    break
                }
                handle(event)
            }
        }
        if peerCloses, summary.error == nil {
            do {
                if let event = try parser.peerClosed() {
                    handle(event)
                }
            } catch {
                summary.error = error.reason
            }
        }
        return summary
    }

    /// Checks that an accepted head has none of the shapes the framing table refuses, under the `limits` it was
    /// parsed with (a forwarded head is read with wider ones: Ficus adds its own fields to what it accepted).
    static func checkAcceptedHead(_ head: HTTPHead, kind: HTTP1Parser.Kind, limits: HTTPLimits) {
        var contentLengths = 0
        var transferEncodings = 0
        var hosts = 0
        for index in head.fields.indices {
            switch head.name(index).lowercased() {
            case "content-length": contentLengths += 1
            case "transfer-encoding": transferEncodings += 1
            case "host": hosts += 1
            default: break
            }
        }
        invariant(contentLengths == 0 || transferEncodings == 0, "Content-Length with Transfer-Encoding accepted")
        if case .contentLength(let length) = head.framing {
            invariant(length >= 0, "a negative Content-Length accepted")
        }
        guard kind == .request else {
            return
        }
        invariant(head.fields.count <= limits.maxFields, "\(head.fields.count) fields accepted")
        invariant(head.framing != .untilClose, "a request body delimited by the close")
        invariant(head.versionMinor == 0 || hosts == 1, "an HTTP/1.1 request with \(hosts) Host fields accepted")
        invariant(head.versionMinor == 1 || transferEncodings == 0, "Transfer-Encoding in HTTP/1.0 accepted")
        invariant(head.method != .connect, "CONNECT accepted")
    }
}
