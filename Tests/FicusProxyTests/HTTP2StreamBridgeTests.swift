import NIOCore
import NIOEmbedded
import NIOHPACK
import NIOHTTP2
import Testing

@testable import FicusProxy

/// The HTTP/2 ⇄ HTTP/1.1 translation of one stream, on an `EmbeddedChannel`.
@Suite("HTTP/2 stream bridge")
struct HTTP2StreamBridgeTests {
    static func channel() throws -> EmbeddedChannel {
        let channel = EmbeddedChannel()
        try channel.pipeline.syncOperations.addHandler(HTTP2StreamBridge())
        return channel
    }

    static func inboundText(_ channel: EmbeddedChannel) throws -> String {
        var text = ""
        while var buffer = try channel.readInbound(as: ByteBuffer.self) {
            text += buffer.readString(length: buffer.readableBytes) ?? ""
        }
        return text
    }

    @Test func aRequestBecomesHTTP11WithItsBodyChunkedAndTrailers() throws {
        let channel = try Self.channel()
        let headers = HPACKHeaders([
            (":method", "POST"), (":path", "/orders?x=1"), (":scheme", "https"), (":authority", "shop.example"),
            ("content-type", "application/json"), ("cookie", "a=1"), ("cookie", "b=2"), ("expect", "100-continue"),
        ])
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers)))
        try channel.writeInbound(HTTP2Frame.FramePayload.data(.init(data: .byteBuffer(ByteBuffer(string: "{}")))))
        try channel.writeInbound(
            HTTP2Frame.FramePayload.headers(.init(headers: HPACKHeaders([("x-checksum", "abc")]), endStream: true)))
        let text = try Self.inboundText(channel)
        #expect(
            text == "POST /orders?x=1 HTTP/1.1\r\nhost: shop.example\r\ncontent-type: application/json\r\n"
                + "cookie: a=1; b=2\r\ntransfer-encoding: chunked\r\nconnection: close\r\n\r\n"
                + "2\r\n{}\r\n0\r\nx-checksum: abc\r\n\r\n"
        )
        _ = try channel.finish()
    }

    @Test func aBodilessRequestHasNoFraming() throws {
        let channel = try Self.channel()
        let headers = HPACKHeaders([(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")])
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true)))
        #expect(try Self.inboundText(channel) == "GET / HTTP/1.1\r\nhost: a\r\nconnection: close\r\n\r\n")
        _ = try channel.finish()
    }

    @Test func anHTTP11AnswerBecomesFramesWithoutConnectionFields() throws {
        let channel = try Self.channel()
        let headers = HPACKHeaders([(":method", "GET"), (":path", "/"), (":scheme", "https"), (":authority", "a")])
        try channel.writeInbound(HTTP2Frame.FramePayload.headers(.init(headers: headers, endStream: true)))
        _ = try Self.inboundText(channel)
        // The answer arrives in pieces, as the handler writes it.
        try channel.writeOutbound(
            ByteBuffer(string: "HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"))
        try channel.writeOutbound(ByteBuffer(string: "Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))
        var frames: [HTTP2Frame.FramePayload] = []
        while let frame = try channel.readOutbound(as: HTTP2Frame.FramePayload.self) { frames.append(frame) }
        #expect(frames.count == 3)
        guard case .headers(let head) = frames[0], case .data(let body) = frames[1], case .data(let end) = frames[2]
        else {
            Issue.record("unexpected frames \(frames)")
            return
        }
        #expect(head.headers.first(name: ":status") == "200")
        #expect(head.headers.first(name: "content-type") == "text/plain")
        #expect(head.headers.first(name: "connection") == nil)
        #expect(head.headers.first(name: "transfer-encoding") == nil)
        #expect(!head.endStream)
        if case .byteBuffer(let buffer) = body.data { #expect(String(buffer: buffer) == "hello") }
        #expect(end.endStream)
        _ = try channel.finish()
    }
}
