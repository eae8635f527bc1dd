import NIOCore

/// Shortcuts over `RawClient` for well-formed requests, one connection per call.
///
/// Most integration tests only need "send this request, give me the answer"; byte-level tests use `RawClient`.
public enum HTTPTestClient {
    /// The bytes of a well-formed HTTP/1.1 request.
    ///
    /// Adds `Host` unless given and `content-length` for a body unless a framing header is given, so that tests
    /// only spell out what they are about.
    public static func requestBytes(
        method: String = "GET",
        path: String,
        host: String = "localhost",
        headers: [(String, String)] = [],
        body: [UInt8]? = nil
    ) -> [UInt8] {
        var text = "\(method) \(path) HTTP/1.1\r\n"
        let names = Set(headers.map { $0.0.lowercased() })
        if !names.contains("host") {
            text += "Host: \(host)\r\n"
        }
        for (name, value) in headers {
            text += "\(name): \(value)\r\n"
        }
        if let body, !names.contains("content-length"), !names.contains("transfer-encoding") {
            text += "content-length: \(body.count)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8) + (body ?? [])
    }

    /// Sends one request on a new connection, reads its response and closes.
    ///
    /// A fresh connection per call keeps tests independent of any keep-alive state.
    public static func request(
        method: String = "GET",
        port: Int,
        path: String,
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(5)
    ) async throws -> RawResponse {
        let client = try await RawClient.connect(port: port, group: group)
        defer { client.close() }
        return try await client.request(
            method: method,
            path: path,
            host: "127.0.0.1:\(port)",
            headers: headers,
            body: body,
            timeout: timeout
        )
    }

    /// Sends a GET on a new connection, reads its response and closes.
    ///
    /// The most common request in routing tests, so it gets the shortest call.
    public static func get(
        port: Int,
        path: String,
        headers: [(String, String)] = [],
        group: any EventLoopGroup,
        timeout: TimeAmount = .seconds(5)
    ) async throws -> RawResponse {
        try await Self.request(port: port, path: path, headers: headers, group: group, timeout: timeout)
    }
}

extension RawClient {
    /// Sends a well-formed request on this connection and reads its response.
    ///
    /// Keeps the connection, so that keep-alive reuse can be tested with one client.
    public func request(
        method: String = "GET",
        path: String,
        host: String = "localhost",
        headers: [(String, String)] = [],
        body: [UInt8]? = nil,
        timeout: TimeAmount = .seconds(5)
    ) async throws -> RawResponse {
        try await self.send(
            HTTPTestClient.requestBytes(method: method, path: path, host: host, headers: headers, body: body)
        )
        guard let response = try await self.readResponse(forHEAD: method == "HEAD", timeout: timeout) else {
            throw FicusTestingError(.closedMidResponse, "peer closed before answering \(method) \(path)")
        }
        return response
    }
}
