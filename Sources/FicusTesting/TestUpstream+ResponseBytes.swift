import NIOCore

/// Serialises responses byte by byte instead of through NIO's `HTTPResponseEncoder`.
///
/// The encoder repairs framing (adds `transfer-encoding`, drops HEAD bodies) and cannot write bad bytes on purpose;
/// a test upstream must send exactly what the scenario says, including the broken cases.
enum ResponseBytes {
    static func head(status: Int, headers: [(String, String)]) -> [UInt8] {
        var text = "HTTP/1.1 \(status) \(Self.reason(for: status))\r\n"
        for (name, value) in headers {
            text += "\(name): \(value)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    static func chunk(_ part: [UInt8]) -> [UInt8] {
        Array(String(part.count, radix: 16).utf8) + [13, 10] + part + [13, 10]
    }

    static func lastChunk(trailers: [(String, String)]) -> [UInt8] {
        var text = "0\r\n"
        for (name, value) in trailers {
            text += "\(name): \(value)\r\n"
        }
        text += "\r\n"
        return Array(text.utf8)
    }

    /// Whether a response with this status may carry a body (RFC 9110 §6.4.1).
    ///
    /// Framing headers are only added where a body can follow.
    static func statusAllowsBody(_ status: Int) -> Bool {
        !((100..<200).contains(status) || status == 204 || status == 304)
    }

    static func contains(_ headers: [(String, String)], _ name: String) -> Bool {
        headers.contains { $0.0.lowercased() == name }
    }

    static func reason(for status: Int) -> String {
        switch status {
        case 100: "Continue"
        case 200: "OK"
        case 201: "Created"
        case 204: "No Content"
        case 301: "Moved Permanently"
        case 302: "Found"
        case 304: "Not Modified"
        case 400: "Bad Request"
        case 404: "Not Found"
        case 408: "Request Timeout"
        case 413: "Content Too Large"
        case 500: "Internal Server Error"
        case 502: "Bad Gateway"
        case 503: "Service Unavailable"
        case 504: "Gateway Timeout"
        default: "Status"
        }
    }

    /// One piece of the `.largeBody` pattern starting at `offset`.
    ///
    /// Pieces are generated on demand so that a large body is never held in memory whole.
    static func patternPiece(offset: Int, count: Int, allocator: ByteBufferAllocator) -> ByteBuffer {
        var buffer = allocator.buffer(capacity: count)
        buffer.writeWithUnsafeMutableBytes(minimumWritableBytes: count) { pointer in
            for index in 0..<count {
                pointer[index] = TestUpstream.patternByte(at: offset + index)
            }
            return count
        }
        return buffer
    }
}
