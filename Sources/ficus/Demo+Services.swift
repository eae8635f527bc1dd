import FicusProxy
import Foundation
import NIOCore
import NIOPosix

/// One of the demo's two built-in HTTP services: the legacy monolith or the new service that replaces it.
///
/// Both live in the `ficus` process on loopback ports the kernel picks, so the demo needs nothing installed and
/// never collides with a port in use; they answer from code, with no state, so a run is the same on every machine.
final class DemoService: Sendable {
    /// Which side a service plays.
    enum Role: String, Sendable {
        case legacy = "legacy monolith"
        case new = "new service"
    }

    let role: Role
    private let channel: Channel

    private init(role: Role, channel: Channel) {
        self.role = role
        self.channel = channel
    }

    /// Starts a service on 127.0.0.1 and a free port.
    static func start(_ role: Role, group: EventLoopGroup) async throws -> DemoService {
        let channel = try await ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(DemoServiceHandler(role: role))
                }
            }
            .bind(host: "127.0.0.1", port: 0)
            .get()
        return DemoService(role: role, channel: channel)
    }

    /// Where the service listens.
    var port: Int { self.channel.localAddress?.port ?? 0 }

    /// Stops accepting connections; open ones close with the event-loop group.
    func stop() async {
        try? await self.channel.close()
    }
}

/// The answers of the demo services, as pure functions of the role and the request.
///
/// Kept apart from the channel handler so that what differs between the two sides is readable in one place.
enum DemoResponses {
    /// An HTTP response: status, reason and JSON body.
    struct Response: Equatable {
        var status: Int
        var reason: String
        var body: String
    }

    /// The answer of `role` to `method target`.
    ///
    /// Orders differ in realistic ways: the new service writes the total as a string (`"100.00"` where the
    /// monolith has `100.0`), leaves out the currency, and answers 404 for every 25th order, which it has not
    /// migrated yet. Users are identical. Both stamp `generatedAt`, which changes on every call: noise.
    static func answer(role: DemoService.Role, method: String, target: String, now: Date = Date()) -> Response {
        let path = target.split(separator: "?", maxSplits: 1).first.map(String.init) ?? target
        let segments = path.split(separator: "/").map(String.init)
        // Microseconds, so that two calls never share a stamp: the field differs on every call, as real noise does.
        let microseconds = Int((now.timeIntervalSince1970 * 1_000_000).rounded()) % 1_000_000
        let stamp = now.formatted(.iso8601.year().month().day().time(includingFractionalSeconds: false))
        let fraction = String(microseconds).count < 6
            ? String(repeating: "0", count: 6 - String(microseconds).count) + String(microseconds) : String(microseconds)
        let generatedAt = stamp.replacingOccurrences(of: "Z", with: "") + "." + fraction + "Z"
        guard method == "GET" || method == "HEAD" else {
            return Response(status: 405, reason: "Method Not Allowed", body: #"{"error":"method not allowed"}"#)
        }
        guard segments.count == 2, let id = Int(segments[1]), id > 0 else {
            return Response(status: 404, reason: "Not Found", body: #"{"error":"not found"}"#)
        }
        switch segments[0] {
        case "orders":
            let total = Double(id % 40 + 1) * 2.5
            let status = ["shipped", "paid", "pending"][id % 3]
            switch role {
            case .legacy:
                return Response(
                    status: 200,
                    reason: "OK",
                    body: #"{"id":\#(id),"status":"\#(status)","total":\#(total),"currency":"EUR","#
                        + #""items":\#(id % 4 + 1),"generatedAt":"\#(generatedAt)"}"#
                )
            case .new:
                guard id % 25 != 0 else {
                    return Response(status: 404, reason: "Not Found", body: #"{"error":"order not migrated yet"}"#)
                }
                let text = String(format: "%.2f", total)
                return Response(
                    status: 200,
                    reason: "OK",
                    body: #"{"id":\#(id),"status":"\#(status)","total":"\#(text)","#
                        + #""items":\#(id % 4 + 1),"generatedAt":"\#(generatedAt)"}"#
                )
            }
        case "users":
            return Response(
                status: 200,
                reason: "OK",
                body: #"{"id":\#(id),"name":"User \#(id)","email":"user\#(id)@example.com","#
                    + #""plan":"\#(id % 2 == 0 ? "team" : "personal")","generatedAt":"\#(generatedAt)"}"#
            )
        default:
            return Response(status: 404, reason: "Not Found", body: #"{"error":"not found"}"#)
        }
    }
}

/// Reads requests with the proxy's own parser and writes each answer as raw HTTP/1.1 bytes.
///
/// The demo services need no HTTP library of their own: the strict parser that the proxy uses is public, and a
/// fixed-length JSON answer is a few header lines.
final class DemoServiceHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    private let role: DemoService.Role
    private var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
    private var buffer = ByteBuffer()
    private var head: HTTPHead?

    init(role: DemoService.Role) {
        self.role = role
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var incoming = self.unwrapInboundIn(data)
        self.buffer.writeBuffer(&incoming)
        do {
            while let event = try self.parser.next(&self.buffer) {
                switch event {
                case .head(let head):
                    self.head = head
                case .body:
                    break
                case .end:
                    if let head = self.head {
                        self.respond(to: head, context: context)
                    }
                    self.head = nil
                }
            }
        } catch {
            context.close(promise: nil)
        }
        self.buffer.discardReadBytes()
    }

    private func respond(to head: HTTPHead, context: ChannelHandlerContext) {
        let response = DemoResponses.answer(role: self.role, method: head.methodString, target: head.target)
        let body = head.method == .head ? "" : response.body
        var text = "HTTP/1.1 \(response.status) \(response.reason)\r\n"
        text += "Content-Type: application/json\r\n"
        text += "Content-Length: \(response.body.utf8.count)\r\n"
        text += "X-Served-By: \(self.role.rawValue)\r\n"
        if !head.wantsKeepAlive {
            text += "Connection: close\r\n"
        }
        text += "\r\n" + body
        let bytes = context.channel.allocator.buffer(string: text)
        if head.wantsKeepAlive {
            context.writeAndFlush(self.wrapOutboundOut(bytes), promise: nil)
        } else {
            let channel = context.channel
            context.writeAndFlush(self.wrapOutboundOut(bytes)).whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
