import FicusCore
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Testing

@testable import FicusProxy

/// `ProxyConnectionHandler` alone on an `EmbeddedChannel`: deadlines, refusals and local answers, with no socket.
///
/// None of these cases asks the upstream pool for a connection (a bootstrap on an embedded loop would trap), so a
/// request that reached the pool by mistake shows up as a crash, never as a silent pass.
@Suite("Proxy connection handler on an EmbeddedChannel")
struct ProxyHandlerEmbeddedTests {
    // MARK: Client deadlines

    /// Half a head, then the header deadline passes on the event loop's clock: 408, `connection: close`, closed.
    @Test func headerDeadlineFollowsTheEventLoopClock() throws {
        let proxy = try EmbeddedProxy { $0.timeouts.clientHeader = .seconds(2) }
        defer { proxy.finish() }
        try proxy.send("GET /slowloris HTTP/1.1\r\nHost: a\r\n")
        proxy.loop.advanceTime(by: .seconds(2) - .milliseconds(1))
        #expect(try proxy.written().isEmpty)
        #expect(proxy.channel.isActive)
        proxy.loop.advanceTime(by: .milliseconds(2))
        let text = try proxy.written()
        #expect(text.hasPrefix("HTTP/1.1 408 Request Timeout\r\n"), "\(text)")
        #expect(!proxy.channel.isActive)
    }

    /// The answer itself: JSON, `connection: close`, and the connection closed (the loop's clock moved by hand; no
    /// sleep, and no deadline that any clock past it would fire).
    @Test func halfAHeadPastTheHeaderDeadlineIs408() throws {
        let proxy = try EmbeddedProxy { $0.timeouts.clientHeader = .milliseconds(50) }
        defer { proxy.finish() }
        try proxy.send("GET /slowloris HTTP/1.1\r\nHost: a\r\nX-Half: ")
        proxy.loop.run()
        proxy.loop.advanceTime(by: .milliseconds(49))
        #expect(try proxy.written().isEmpty)
        proxy.loop.advanceTime(by: .milliseconds(2))
        let responses = EmbeddedProxy.responses(in: try proxy.written())
        #expect(responses.count == 1)
        let response = try #require(responses.first)
        #expect(response.statusLine == "HTTP/1.1 408 Request Timeout")
        #expect(response.header("connection") == "close")
        #expect(response.header("content-type") == "application/json")
        #expect(response.json["error"] == "request_timeout")
        #expect(!proxy.channel.isActive)
    }

    /// A connection that sends nothing is closed after the idle timeout on the event loop's clock, without a word.
    @Test func idleTimeoutFollowsTheEventLoopClock() throws {
        let proxy = try EmbeddedProxy { $0.timeouts.clientIdle = .seconds(3) }
        defer { proxy.finish() }
        proxy.loop.advanceTime(by: .seconds(3) - .milliseconds(1))
        #expect(proxy.channel.isActive)
        proxy.loop.advanceTime(by: .milliseconds(2))
        #expect(!proxy.channel.isActive)
        #expect(try proxy.written().isEmpty)
    }

    /// After an answer, a keep-alive connection waits the idle timeout again (counted from the answer), then closes
    /// without a word.
    @Test func aKeepAliveConnectionIsClosedAnIdleTimeoutAfterItsAnswer() throws {
        let proxy = try EmbeddedProxy(configuration: EmbeddedProxy.onlyRoute) { $0.timeouts.clientIdle = .seconds(3) }
        defer { proxy.finish() }
        proxy.loop.advanceTime(by: .seconds(2))
        try proxy.send("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(try proxy.written().hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        proxy.loop.advanceTime(by: .seconds(3) - .milliseconds(1))
        #expect(proxy.channel.isActive)
        proxy.loop.advanceTime(by: .milliseconds(2))
        #expect(!proxy.channel.isActive)
        #expect(try proxy.written().isEmpty)
    }

    // MARK: Refusals

    /// A request pipelined behind a refused one, in the same read, is never parsed: one answer, then the close.
    ///
    /// The follower would be answered locally (404, no route) if it were parsed, so a second answer would show.
    @Test func followerOfARefusedRequestIsNeverParsed() throws {
        let proxy = try EmbeddedProxy(configuration: EmbeddedProxy.onlyRoute)
        defer { proxy.finish() }
        try proxy.send(
            "GET /only HTTP/1.1\r\nHost: a\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n"
                + "GET /other HTTP/1.1\r\nHost: a\r\n\r\n"
        )
        let text = try proxy.written()
        let responses = EmbeddedProxy.responses(in: text)
        #expect(responses.count == 1, "\(text)")
        #expect(responses.first?.statusLine == "HTTP/1.1 400 Bad Request")
        #expect(responses.first?.header("connection") == "close")
        #expect(responses.first?.json["error"] == "conflicting_content_length")
        #expect(!text.contains("no_route"))
        #expect(!proxy.channel.isActive)
    }

    // MARK: Local answers

    /// No route matches: a JSON 404 naming the request, and the connection stays open for the next request.
    @Test func unmatchedRequestIs404JSONAndTheConnectionStaysOpen() throws {
        let proxy = try EmbeddedProxy(configuration: EmbeddedProxy.onlyRoute)
        defer { proxy.finish() }
        try proxy.send("GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
        let first = EmbeddedProxy.responses(in: try proxy.written())
        #expect(first.count == 1)
        let response = try #require(first.first)
        #expect(response.statusLine == "HTTP/1.1 404 Not Found")
        #expect(response.header("content-type") == "application/json")
        #expect(response.header("connection") == nil)
        #expect(response.json["error"] == "no_route")
        #expect(response.json["status"] == "404")
        #expect(response.json["detail"]?.contains("/other") == true, "\(response.body)")
        #expect(proxy.channel.isActive)

        try proxy.send("GET /other/again HTTP/1.1\r\nHost: a\r\n\r\n")
        let second = EmbeddedProxy.responses(in: try proxy.written())
        #expect(second.count == 1)
        #expect(second.first?.statusLine == "HTTP/1.1 404 Not Found")
        #expect(second.first?.json["detail"]?.contains("/other/again") == true)
        #expect(proxy.channel.isActive)
    }

    /// HEAD answered by Ficus itself: the head announces the JSON body's length, but no body byte follows.
    @Test func headOnALocalErrorHasNoBody() throws {
        let proxy = try EmbeddedProxy(configuration: EmbeddedProxy.onlyRoute)
        defer { proxy.finish() }
        try proxy.send("HEAD /other HTTP/1.1\r\nHost: a\r\n\r\n")
        let text = try proxy.written()
        #expect(text.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(text.hasSuffix("\r\n\r\n"), "bytes after the head of a HEAD answer: \(text)")
        #expect(text.components(separatedBy: "\r\n\r\n").count == 2)
        let length = EmbeddedProxy.responses(in: text, forHEAD: true).first?.header("content-length")
        #expect(Int(length ?? "") ?? 0 > 0, "content-length should announce the body a GET would get: \(text)")
        #expect(proxy.channel.isActive)

        // The next answer starts right where the head ended: no stray body bytes on the wire.
        try proxy.send("GET /other HTTP/1.1\r\nHost: a\r\n\r\n")
        let next = try proxy.written()
        #expect(next.hasPrefix("HTTP/1.1 404 Not Found\r\n"))
        #expect(EmbeddedProxy.responses(in: next).first?.json["error"] == "no_route")
    }
}

/// A proxy connection handler on an embedded channel, with a pool that has an unreachable upstream.
private struct EmbeddedProxy {
    let loop: EmbeddedEventLoop
    let channel: EmbeddedChannel

    /// One upstream `b` and one route on `/only`: every other path has no route.
    static let onlyRoute = Configuration(
        upstreams: [Upstream(name: "b", addresses: [Endpoint(host: "127.0.0.1", port: 1)])],
        routes: [Route(name: "only", path: "/only", legacy: "b")]
    )

    init(
        configuration: Configuration = .catchAll(
            upstreams: [Upstream(name: "b", addresses: [Endpoint(host: "127.0.0.1", port: 1)])],
            defaultUpstream: "b"
        ),
        configure: (inout ProxyConfiguration) -> Void = { _ in }
    ) throws {
        let loop = EmbeddedEventLoop()
        let table = try RoutingTable(configuration: configuration, revision: 1)
        var proxyConfiguration = ProxyConfiguration()
        proxyConfiguration.accessLog = false
        configure(&proxyConfiguration)
        let shared = ProxyContext(
            configuration: proxyConfiguration,
            routing: RoutingState(table),
            metrics: nil,
            logger: Logger(label: "test")
        )
        let resources = LoopResources(eventLoop: loop, configuration: proxyConfiguration, loops: 1, metrics: nil)
        self.loop = loop
        let handler = ProxyConnectionHandler(shared: shared, resources: resources)
        self.channel = EmbeddedChannel(handler: handler, loop: loop)
        try self.channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 1)).wait()
    }

    func send(_ text: String) throws {
        try self.channel.writeInbound(ByteBuffer(string: text))
    }

    /// Everything written to the client since the last call.
    func written() throws -> String {
        var written = ByteBuffer()
        while var part = try self.channel.readOutbound(as: ByteBuffer.self) { written.writeBuffer(&part) }
        return String(buffer: written)
    }

    func finish() {
        _ = try? self.channel.finish(acceptAlreadyClosed: true)
        try? self.loop.syncShutdownGracefully()
    }

    struct Response {
        var statusLine: String
        var headers: [(String, String)]
        var body: String

        func header(_ name: String) -> String? {
            self.headers.first { $0.0.lowercased() == name }?.1
        }

        var json: [String: String] {
            guard let object = try? JSONSerialization.jsonObject(with: Data(self.body.utf8)) as? [String: Any] else {
                return [:]
            }
            return object.mapValues { "\($0)" }
        }
    }

    /// Splits `text` into `content-length` responses (Ficus's local answers all have one).
    static func responses(in text: String, forHEAD: Bool = false) -> [Response] {
        var rest = Substring(text)
        var responses: [Response] = []
        while let end = rest.range(of: "\r\n\r\n") {
            let lines = rest[..<end.lowerBound].components(separatedBy: "\r\n")
            let headers = lines.dropFirst().map { line -> (String, String) in
                let parts = line.split(separator: ":", maxSplits: 1)
                return (String(parts[0]), parts.count > 1 ? parts[1].trimmingCharacters(in: .whitespaces) : "")
            }
            let length = forHEAD ? 0 : Int(headers.first { $0.0.lowercased() == "content-length" }?.1 ?? "0") ?? 0
            let bodyStart = end.upperBound
            let body = rest[bodyStart...].utf8.prefix(length)
            let text = String(decoding: body, as: UTF8.self)
            responses.append(Response(statusLine: lines[0], headers: headers, body: text))
            rest = Substring(rest[bodyStart...].utf8.dropFirst(body.count))
            if rest.isEmpty { break }
        }
        return responses
    }
}
