import FicusProxy
import Foundation
import NIOCore
import NIOPosix
import NIOSSL

/// A minimal HTTP/1.1 client for the demo's own requests: one connection per request, parsed by the proxy's parser.
///
/// The demo sends a few hundred requests in total, so a fresh connection each time costs nothing worth pooling and
/// keeps every request independent of the one before.
struct DemoClient: Sendable {
    /// What the demo needs to know of an answer.
    struct Response: Sendable {
        var status: Int
        /// The `X-Served-By` header: which service answered, through the proxy.
        var servedBy: String?
    }

    let port: Int
    let group: EventLoopGroup
    /// The host to connect to; the demo's proxy is always on loopback, `ficus bluegreen check` probes a slot.
    var host = "127.0.0.1"
    /// The Host field sent: the name the service expects (virtual hosts answer 404 to any other).
    var hostHeader = "ficus-demo"
    /// The User-Agent sent, so that a service's logs tell Ficus's own requests apart.
    var userAgent = "ficus-demo"
    /// TLS for an `https://` slot address (`bluegreen check`), with the name sent as SNI and checked; nil: plain.
    var tls: (context: NIOSSLContext, serverHostname: String?)?

    /// Sends `GET path` to the proxy and reads the whole answer, failing after `timeout`.
    func get(_ path: String, timeout: Duration = .seconds(5)) async throws -> Response {
        try await withThrowingTaskGroup(of: Response.self) { group in
            group.addTask { try await self.exchange(path) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CLIError.failed("GET \(path): no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func exchange(_ path: String) async throws -> Response {
        let channel = try await ClientBootstrap(group: self.group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: self.host, port: self.port) { [tls] channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls {
                        try channel.pipeline.syncOperations.addHandler(
                            NIOSSLClientHandler(context: tls.context, serverHostname: tls.serverHostname))
                    }
                    return try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            let request = "GET \(path) HTTP/1.1\r\nHost: \(self.hostHeader)\r\nUser-Agent: \(self.userAgent)\r\n"
                + "Connection: close\r\n\r\n"
            try await outbound.write(ByteBuffer(string: request))
            var parser = HTTP1Parser(kind: .response, limits: .response)
            parser.expectResponse(to: .get)
            var buffer = ByteBuffer()
            var response: Response?
            for try await chunk in inbound {
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                while let event = try parser.next(&buffer) {
                    switch event {
                    case .head(let head):
                        response = Response(status: head.status, servedBy: head.firstValue("X-Served-By"))
                    case .body:
                        break
                    case .end:
                        if let response {
                            return response
                        }
                    }
                }
            }
            throw CLIError.failed("GET \(path): the proxy closed the connection before a complete answer")
        }
    }
}

/// Counts of what the demo's traffic saw.
struct DemoTally: Sendable {
    var requests = 0
    var orders = 0
    var users = 0
    /// Requests with no complete answer (refused, reset, timed out).
    var failed = 0
    /// Answers by `X-Served-By`.
    var servedBy: [String: Int] = [:]

    mutating func add(route: String, _ result: Result<DemoClient.Response, any Error>) {
        self.requests += 1
        if route == "orders" {
            self.orders += 1
        } else {
            self.users += 1
        }
        switch result {
        case .success(let response):
            self.servedBy[response.servedBy ?? "unknown", default: 0] += 1
        case .failure:
            self.failed += 1
        }
    }

    /// "181 legacy monolith, 20 new service", largest first.
    var servedBySummary: String {
        self.servedBy.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }
            .map { "\($0.value) by the \($0.key)" }
            .joined(separator: ", ")
    }
}

/// The demo's traffic: a steady mix of `GET /orders/{id}` and `GET /users/{id}` through the proxy.
struct DemoTraffic: Sendable {
    let client: DemoClient

    /// Requests per second; a few hundred over the default half minute, light enough for a laptop on battery.
    static let rate = 10.0

    /// Sends the mix for `duration` seconds, reporting progress after every request.
    func run(for duration: Double, progress: DemoProgress) async -> DemoTally {
        var tally = DemoTally()
        let start = ContinuousClock.now
        let total = Duration.milliseconds(Int64(duration * 1000))
        var sent = 0
        while ContinuousClock.now - start < total {
            let route = Int.random(in: 0..<5) < 3 ? "orders" : "users"
            let id = route == "orders" ? Int.random(in: 1...100) : Int.random(in: 1...50)
            let result = await Result { try await self.client.get("/\(route)/\(id)") }
            tally.add(route: route, result)
            sent += 1
            progress.update(fraction: (ContinuousClock.now - start) / total, tally: tally)
            let due = start + .milliseconds(Int64(Double(sent) * 1000 / Self.rate))
            if due > ContinuousClock.now {
                try? await Task.sleep(until: due, clock: .continuous)
            }
        }
        progress.finish(tally: tally)
        return tally
    }

    /// Sends `count` requests for `GET /users/{id}` back to back, to show which service answers the route now.
    func users(count: Int) async -> DemoTally {
        var tally = DemoTally()
        for id in 1...count {
            tally.add(route: "users", await Result { try await self.client.get("/users/\(id)") })
        }
        return tally
    }
}

extension Result where Failure == any Error {
    /// Runs an async throwing operation and captures its outcome.
    ///
    /// The demo counts failed requests instead of stopping at the first one.
    init(catching body: () async throws -> Success) async {
        do {
            self = .success(try await body())
        } catch {
            self = .failure(error)
        }
    }
}

/// A progress bar on a terminal, plain progress lines everywhere else.
///
/// A bar redrawn with carriage returns is unreadable in a CI log or a captured file, so without a TTY the demo
/// prints one line per quarter instead.
final class DemoProgress: @unchecked Sendable {
    private let isTerminal: Bool
    private let width = 30
    private var lastQuarter = 0
    private var lastDraw = ContinuousClock.now - .seconds(1)

    init(isTerminal: Bool = isatty(STDOUT_FILENO) == 1) {
        self.isTerminal = isTerminal
    }

    /// Shows `fraction` (0–1) of the traffic sent and the counts so far.
    func update(fraction: Double, tally: DemoTally) {
        let fraction = min(max(fraction, 0), 1)
        if self.isTerminal {
            guard ContinuousClock.now - self.lastDraw > .milliseconds(100) else { return }
            self.lastDraw = ContinuousClock.now
            let filled = Int(fraction * Double(self.width))
            let bar = String(repeating: "█", count: filled) + String(repeating: "░", count: self.width - filled)
            let text = "      \(bar) \(Int(fraction * 100))%  \(Self.counts(tally))"
            FileHandle.standardOutput.write(Data(("\r" + text + "\u{1B}[K").utf8))
        } else {
            let quarter = Int(fraction * 4)
            guard quarter > self.lastQuarter, quarter < 4 else { return }
            self.lastQuarter = quarter
            Console.out("      \(quarter * 25)%  \(Self.counts(tally))")
        }
    }

    /// Ends the bar (or the lines) with the final counts.
    func finish(tally: DemoTally) {
        if self.isTerminal {
            FileHandle.standardOutput.write(Data("\r\u{1B}[K".utf8))
        }
        Console.out("      100%  \(Self.counts(tally))")
    }

    private static func counts(_ tally: DemoTally) -> String {
        var text = "\(tally.requests) requests (\(tally.orders) orders, \(tally.users) users)"
        if tally.failed > 0 {
            text += ", \(tally.failed) failed"
        }
        return text
    }
}
