import FicusProxy
import Foundation
import NIOCore
import NIOPosix

/// Reads one path of a running proxy's admin listener (`ficus status --admin`): one connection, one GET.
///
/// The proxy's own parser reads the answer, so a misbehaving listener cannot make the CLI read without bound.
struct AdminClient: Sendable {
    /// The admin listener's host.
    let host: String
    /// The admin listener's port.
    let port: Int
    /// Where the connection's I/O runs.
    let group: EventLoopGroup

    /// `GET path`: the status and the body, failing after `timeout`.
    func get(_ path: String, timeout: Duration = .seconds(5)) async throws -> (status: Int, body: [UInt8]) {
        try await withThrowingTaskGroup(of: (Int, [UInt8]).self) { group in
            group.addTask { try await self.exchange(path) }
            group.addTask {
                try await Task.sleep(for: timeout)
                throw CLIError.failed("GET \(path) from \(self.host):\(self.port): no answer within \(timeout)")
            }
            defer { group.cancelAll() }
            return try await group.next()!
        }
    }

    private func exchange(_ path: String) async throws -> (Int, [UInt8]) {
        let channel = try await ClientBootstrap(group: self.group)
            .connect(host: self.host, port: self.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try NIOAsyncChannel<ByteBuffer, ByteBuffer>(wrappingChannelSynchronously: channel)
                }
            }
        return try await channel.executeThenClose { inbound, outbound in
            try await outbound.write(
                ByteBuffer(string: "GET \(path) HTTP/1.1\r\nHost: \(self.host)\r\nConnection: close\r\n\r\n"))
            var parser = HTTP1Parser(kind: .response, limits: .response)
            parser.expectResponse(to: .get)
            var buffer = ByteBuffer()
            var status = 0
            var body: [UInt8] = []
            for try await chunk in inbound {
                var chunk = chunk
                buffer.writeBuffer(&chunk)
                while let event = try parser.next(&buffer) {
                    switch event {
                    case .head(let head): status = head.status
                    case .body(let part): body += Array(part.readableBytesView)
                    case .end: return (status, body)
                    }
                }
            }
            throw CLIError.failed("GET \(path) from \(self.host):\(self.port): closed before a complete answer")
        }
    }
}
