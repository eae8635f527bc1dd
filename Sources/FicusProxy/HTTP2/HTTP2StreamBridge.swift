import NIOCore
import NIOHPACK
import NIOHTTP2

/// Carries one HTTP/2 stream through the HTTP/1.1 data path: the stream's request is written as HTTP/1.1 bytes for a
/// `ProxyConnectionHandler` of its own, and that handler's HTTP/1.1 answer is parsed back into HEADERS and DATA
/// frames.
///
/// Translating at the edge keeps one data path: routing, rate limits, shadowing, metrics, the access log, retries
/// and the upstream pools (HTTP/1.1) see a stream exactly as they see an HTTP/1.1 request, and its framing is checked
/// by the same parser. Each stream asks for `Connection: close`, so its handler ends the stream after one answer.
/// Reads follow writability as everywhere: the stream channel's writability is HTTP/2 flow control.
final class HTTP2StreamBridge: ChannelDuplexHandler {
    typealias InboundIn = HTTP2Frame.FramePayload
    typealias InboundOut = ByteBuffer
    typealias OutboundIn = ByteBuffer
    typealias OutboundOut = HTTP2Frame.FramePayload

    /// How the request body is framed in the HTTP/1.1 bytes.
    private enum RequestBody {
        case none
        case contentLength
        case chunked
    }

    private var requestBody: RequestBody?
    private var requestEnded = false
    private var responseParser = HTTP1Parser(kind: .response, limits: .response)
    private var responseBytes = ByteBuffer()
    private var responseEnded = false
    /// Promises of writes that made no frame (an empty write before a close), completed at the next flush: the
    /// handler closes the stream when one completes, which must not overtake the frames written before it.
    private var waitingForFlush: [EventLoopPromise<Void>] = []

    // MARK: The request, HTTP/2 to HTTP/1.1

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch self.unwrapInboundIn(data) {
        case .headers(let headers):
            if self.requestBody == nil {
                self.requestHead(headers.headers, endStream: headers.endStream, context: context)
            } else {
                self.requestTrailers(headers.headers, context: context)
            }
        case .data(let data):
            guard case .byteBuffer(let buffer) = data.data else { return }
            self.requestData(buffer, endStream: data.endStream, context: context)
        default:
            break
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        context.fireChannelReadComplete()
    }

    private func requestHead(_ headers: HPACKHeaders, endStream: Bool, context: ChannelHandlerContext) {
        var out = context.channel.allocator.buffer(capacity: 256)
        let method = headers.first(name: ":method") ?? ""
        let path = headers.first(name: ":path") ?? ""
        // The answer to HEAD has no body whatever its Content-Length says.
        self.responseParser.expectResponse(to: method == "HEAD" ? .head : .get)
        out.writeString(method)
        out.writeStaticString(" ")
        // CONNECT has no :path: the HTTP/1.1 parser refuses it as it refuses CONNECT over HTTP/1.1.
        out.writeString(path.isEmpty ? "/" : path)
        out.writeStaticString(" HTTP/1.1\r\n")
        if let authority = headers.first(name: ":authority") {
            out.writeStaticString("host: ")
            out.writeString(authority)
            out.writeStaticString("\r\n")
        }
        var hasLength = false
        var cookies: [String] = []
        for (name, value, _) in headers {
            if name.utf8.first == UInt8(ascii: ":") { continue }
            switch name {
            // :authority wins over Host (RFC 9113 8.3.1); Expect is answered by HTTP/2 flow control, not 100.
            case "host", "expect", "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade":
                continue
            case "cookie":
                // HTTP/2 may split Cookie into several fields; HTTP/1.1 wants one (RFC 9113 8.2.3).
                cookies.append(value)
                continue
            case "content-length":
                hasLength = true
            default:
                break
            }
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        if !cookies.isEmpty {
            out.writeStaticString("cookie: ")
            out.writeString(cookies.joined(separator: "; "))
            out.writeStaticString("\r\n")
        }
        if endStream {
            self.requestBody = Self.RequestBody.none
        } else if hasLength {
            self.requestBody = .contentLength
        } else {
            self.requestBody = .chunked
            out.writeStaticString("transfer-encoding: chunked\r\n")
        }
        out.writeStaticString("connection: close\r\n\r\n")
        self.requestEnded = endStream
        context.fireChannelRead(self.wrapInboundOut(out))
    }

    private func requestData(_ buffer: ByteBuffer, endStream: Bool, context: ChannelHandlerContext) {
        guard let body = self.requestBody, !self.requestEnded else { return }
        switch body {
        case .none:
            return
        case .contentLength:
            if buffer.readableBytes > 0 { context.fireChannelRead(self.wrapInboundOut(buffer)) }
        case .chunked:
            if buffer.readableBytes > 0 {
                var chunk = context.channel.allocator.buffer(capacity: buffer.readableBytes + 16)
                chunk.writeString(String(buffer.readableBytes, radix: 16))
                chunk.writeStaticString("\r\n")
                chunk.writeImmutableBuffer(buffer)
                chunk.writeStaticString("\r\n")
                context.fireChannelRead(self.wrapInboundOut(chunk))
            }
            if endStream {
                context.fireChannelRead(self.wrapInboundOut(ByteBuffer(staticString: "0\r\n\r\n")))
            }
        }
        if endStream { self.requestEnded = true }
    }

    private func requestTrailers(_ headers: HPACKHeaders, context: ChannelHandlerContext) {
        guard !self.requestEnded else { return }
        self.requestEnded = true
        // Trailers travel only with a chunked body; after a Content-Length body there is nowhere to put them.
        guard self.requestBody == .chunked else { return }
        var out = ByteBuffer(staticString: "0\r\n")
        for (name, value, _) in headers where name.utf8.first != UInt8(ascii: ":") {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("\r\n")
        context.fireChannelRead(self.wrapInboundOut(out))
    }

    // MARK: The answer, HTTP/1.1 to HTTP/2

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        var bytes = self.unwrapOutboundIn(data)
        self.responseBytes.writeBuffer(&bytes)
        var frames: [HTTP2Frame.FramePayload] = []
        while !self.responseEnded {
            let event: HTTP1Parser.Event?
            do {
                event = try self.responseParser.next(&self.responseBytes)
            } catch {
                // Ficus's own answers are well formed; if one is not, the stream is reset rather than half sent.
                promise?.fail(error)
                context.close(promise: nil)
                return
            }
            guard let event else { break }
            switch event {
            case .head(let head):
                // 1xx answers (100-continue) have no HTTP/2 counterpart here: Expect is not forwarded.
                guard head.status >= 200 else { continue }
                frames.append(.headers(.init(headers: Self.responseHeaders(head))))
            case .body(let body):
                frames.append(.data(.init(data: .byteBuffer(body))))
            case .end(let trailers):
                self.responseEnded = true
                if let trailers, !trailers.fields.isEmpty {
                    frames.append(.headers(.init(headers: Self.trailerHeaders(trailers), endStream: true)))
                } else {
                    frames.append(.data(.init(data: .byteBuffer(ByteBuffer()), endStream: true)))
                }
            }
        }
        self.responseBytes.discardReadBytes()
        guard let last = frames.popLast() else {
            if let promise { self.waitingForFlush.append(promise) }
            return
        }
        for frame in frames {
            context.write(self.wrapOutboundOut(frame), promise: nil)
        }
        context.write(self.wrapOutboundOut(last), promise: promise)
    }

    func flush(context: ChannelHandlerContext) {
        context.flush()
        let waiting = self.waitingForFlush
        self.waitingForFlush.removeAll()
        for promise in waiting { promise.succeed() }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        let waiting = self.waitingForFlush
        self.waitingForFlush.removeAll()
        for promise in waiting { promise.fail(ChannelError.ioOnClosedChannel) }
    }

    /// The answer's fields as HTTP/2 headers: `:status`, names in lower case, connection-specific fields left out.
    private static func responseHeaders(_ head: HTTPHead) -> HPACKHeaders {
        var headers = HPACKHeaders()
        headers.add(name: ":status", value: String(head.status))
        for (name, value) in head.fieldPairs {
            let lower = name.lowercased()
            switch lower {
            case "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade", "te":
                continue
            default:
                headers.add(name: lower, value: value)
            }
        }
        return headers
    }

    private static func trailerHeaders(_ trailers: HTTPTrailers) -> HPACKHeaders {
        let head = HTTPHead(bytes: trailers.bytes, fields: trailers.fields, versionMinor: 1)
        var headers = HPACKHeaders()
        for (name, value) in head.fieldPairs {
            headers.add(name: name.lowercased(), value: value)
        }
        return headers
    }
}
