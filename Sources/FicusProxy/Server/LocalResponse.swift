import FicusCore
import NIOCore

/// Answers that Ficus writes itself: refusals and upstream failures.
///
/// A JSON body that names what went wrong (and which upstream) is what an operator can act on; the reason phrase
/// alone is not. `fields` are extra header lines (each ending in CRLF), such as a 429's rate limit fields.
enum LocalResponse {
    static func json(
        status: Int,
        error: String,
        detail: String,
        upstream: String?,
        keepAlive: Bool,
        retryAfter: Bool,
        headOnly: Bool,
        fields: String? = nil
    ) -> ByteBuffer {
        var body = "{\"error\":\"\(JSONEscaping.escape(error))\",\"status\":\(status)"
        if let upstream { body += ",\"upstream\":\"\(JSONEscaping.escape(upstream))\"" }
        body += ",\"detail\":\"\(JSONEscaping.escape(detail))\"}\n"
        var out = ByteBuffer()
        out.writeString("HTTP/1.1 \(status) \(Self.reason(status))\r\n")
        out.writeStaticString("content-type: application/json\r\n")
        out.writeString("content-length: \(body.utf8.count)\r\n")
        if retryAfter { out.writeStaticString("retry-after: 1\r\n") }
        if let fields { out.writeString(fields) }
        out.writeStaticString(keepAlive ? "" : "connection: close\r\n")
        out.writeStaticString("\r\n")
        if !headOnly { out.writeString(body) }
        return out
    }

    static func reason(_ status: Int) -> String {
        switch status {
        case 200: return "OK"
        case 400: return "Bad Request"
        case 404: return "Not Found"
        case 405: return "Method Not Allowed"
        case 408: return "Request Timeout"
        case 413: return "Content Too Large"
        case 414: return "URI Too Long"
        case 417: return "Expectation Failed"
        case 429: return "Too Many Requests"
        case 431: return "Request Header Fields Too Large"
        case 501: return "Not Implemented"
        case 502: return "Bad Gateway"
        case 503: return "Service Unavailable"
        case 504: return "Gateway Timeout"
        case 505: return "HTTP Version Not Supported"
        default: return "Error"
        }
    }
}
