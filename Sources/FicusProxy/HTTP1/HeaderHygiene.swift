import FicusCore
import NIOCore

/// Builds the heads Ficus sends on: the one place where hop-by-hop fields are removed and forwarding fields added.
///
/// RFC 9110 7.6.1: a proxy removes `Connection` and every field it names, plus the fixed hop-by-hop set; framing
/// fields are re-emitted by Ficus from the parsed framing, never copied, so that what the next hop sees always
/// matches what Ficus actually sends.
enum HeaderHygiene {
    /// Facts about the client connection that the forwarding fields record.
    struct ClientFacts: Sendable {
        /// The peer's address, appended to `X-Forwarded-For`.
        var address: String
        /// Whether the peer is a trusted proxy, whose forwarding fields are kept and extended.
        var trusted: Bool
        /// Further fields (lower-cased) that an untrusted peer may not send, beyond the fixed set
        /// (`ProxyConfiguration.untrustedFields`).
        var untrustedFields: [String] = []
        /// Whether the client connection is TLS: `X-Forwarded-Proto: https` instead of `http`.
        var secure = false
    }

    /// What to change in a forwarded request beyond hygiene (the route's rewrite).
    struct RequestEdits {
        var path: String?
        var setHeaders: [(String, String)] = []
        var removeHeaders: [String] = []

        /// The edits to forward `view`'s request with `rewrite`: nil when the request goes on as received.
        ///
        /// A path that held dot-segments is forwarded as the normalized path that was routed on, rewrite or not.
        static func forRequest(_ rewrite: RequestRewrite?, view: RequestView) -> RequestEdits? {
            if let rewrite, !rewrite.isEmpty { return RequestEdits(rewrite, view: view) }
            guard let normalized = view.normalizedPath else { return nil }
            return RequestEdits(path: view.query.map { normalized + "?" + $0 } ?? normalized)
        }

        private init(path: String) {
            self.path = path
        }

        /// The edits a route's rewrite makes to `view`'s request.
        init(_ rewrite: RequestRewrite, view: RequestView) {
            if rewrite.path != nil || view.normalizedPath != nil {
                let path = rewrite.path != nil ? rewrite.rewritePath(view.path) : view.path
                self.path = view.query.map { path + "?" + $0 } ?? path
            }
            self.setHeaders = rewrite.setHeaders.map { ($0.name, $0.value) }
            self.removeHeaders = rewrite.removeHeaders
        }
    }

    /// The origin-form target and the authority of an absolute-form target (RFC 9112 3.2.2), if any.
    static func originForm(_ head: HTTPHead) -> (target: Range<Int>, authority: Range<Int>?) {
        head.bytes.withUnsafeReadableBytes { raw -> (Range<Int>, Range<Int>?) in
            let range = head.targetRange
            guard range.count > 0, raw[range.lowerBound] != 0x2F, raw[range.lowerBound] != 0x2A else {
                return (range, nil)
            }
            // absolute-form: scheme "://" authority [path-abempty] ["?" query]
            var i = range.lowerBound
            while i + 2 < range.upperBound {
                if raw[i] == 0x3A && raw[i + 1] == 0x2F && raw[i + 2] == 0x2F { break }
                i += 1
            }
            guard i + 2 < range.upperBound else { return (range, nil) }
            let authorityStart = i + 3
            var pathStart = authorityStart
            while pathStart < range.upperBound && raw[pathStart] != 0x2F && raw[pathStart] != 0x3F { pathStart += 1 }
            return (pathStart..<range.upperBound, authorityStart..<pathStart)
        }
    }

    /// Writes the request head forwarded to an upstream.
    static func writeRequestHead(
        _ head: HTTPHead,
        into out: inout ByteBuffer,
        client: ClientFacts,
        viaName: String,
        edits: RequestEdits?,
        upstreamName: String,
        requestID: String? = nil,
        fallback: Bool = false,
        shadowCopy: Bool = false
    ) {
        let (target, authority) = Self.originForm(head)
        Self.copy(head, head.methodRange, into: &out)
        out.writeInteger(UInt8(0x20))
        if let path = edits?.path {
            out.writeString(path)
        } else if target.isEmpty {
            out.writeInteger(UInt8(0x2F))
        } else {
            Self.copy(head, target, into: &out)
        }
        out.writeStaticString(" HTTP/1.1\r\n")

        let named = Self.connectionNamedFields(head)
        var forwardedFor: Int?
        var forwardedProto: Int?
        var forwardedHost: Int?
        var via: Int?
        for index in head.fields.indices {
            if Self.isRequestHopByHop(head, index) || named.contains(where: { Self.nameMatches(head, index, $0) }) {
                continue
            }
            let field = head.fields[index]
            let length = Int(field.nameEnd - field.nameStart)
            switch length {
            case 3 where head.fieldNameIs(index, "via"):
                via = index
                continue
            case 12 where head.fieldNameIs(index, "x-request-id"):
                // Replaced by the request's id (which is the client's own when it was kept).
                if requestID != nil { continue }
            case 4 where head.fieldNameIs(index, "host"):
                if authority != nil { continue }
            case 15 where head.fieldNameIs(index, "x-forwarded-for"):
                if client.trusted { forwardedFor = index }
                continue
            case 16 where head.fieldNameIs(index, "x-forwarded-host"):
                if client.trusted { forwardedHost = index }
                continue
            case 17 where head.fieldNameIs(index, "x-forwarded-proto"):
                if client.trusted { forwardedProto = index }
                continue
            case 9 where head.fieldNameIs(index, "forwarded") || head.fieldNameIs(index, "x-real-ip"):
                if !client.trusted { continue }
            case 13 where head.fieldNameIs(index, "x-rewrite-url"):
                if !client.trusted { continue }
            case 14 where head.fieldNameIs(index, "true-client-ip") || head.fieldNameIs(index, "x-original-url"):
                if !client.trusted { continue }
            default:
                // No client's X-Ficus-* field reaches an upstream, trusted or not: only Ficus's own markers do.
                if Self.isFicusField(head, index) { continue }
                if !client.trusted, !client.untrustedFields.isEmpty,
                    client.untrustedFields.contains(where: { head.fieldNameIs(index, caseInsensitive: $0) })
                {
                    continue
                }
            }
            if let edits, edits.removeHeaders.contains(where: { head.fieldNameIs(index, caseInsensitive: $0) })
                || edits.setHeaders.contains(where: { head.fieldNameIs(index, caseInsensitive: $0.0) })
            {
                continue
            }
            Self.copyField(head, index, into: &out)
        }
        if let authority {
            out.writeStaticString("host: ")
            Self.copy(head, authority, into: &out)
            out.writeStaticString("\r\n")
        } else if head.hostIndex == nil {
            // An HTTP/1.0 request may come without Host; it is forwarded as HTTP/1.1, which must have one (RFC 9112
            // 3.2). nginx sends its upstream's name ($proxy_host); so does Ficus (without a preview's `@slot`).
            out.writeStaticString("host: ")
            out.writeString(Self.hostName(forUpstream: upstreamName))
            out.writeStaticString("\r\n")
        }
        if shadowCopy {
            // A copy carries its body whole; its Content-Length is added once the body is known.
            out.writeStaticString("x-ficus-shadow: 1\r\n")
        } else {
            switch head.framing {
            case .contentLength(let length):
                out.writeStaticString("content-length: ")
                out.writeString(String(length))
                out.writeStaticString("\r\n")
            case .chunked:
                out.writeStaticString("transfer-encoding: chunked\r\n")
            case .none, .untilClose:
                break
            }
        }
        if let edits {
            for (name, value) in edits.setHeaders {
                out.writeString(name)
                out.writeStaticString(": ")
                out.writeString(value)
                out.writeStaticString("\r\n")
            }
        }
        if head.upgradeWebSocket && !shadowCopy {
            // The upgrade fields are hop-by-hop and were removed above; a WebSocket handshake asks the next hop again
            // (RFC 6455 4.1). Its Sec-WebSocket-* fields are end to end and were copied.
            out.writeStaticString("connection: upgrade\r\nupgrade: websocket\r\n")
        }
        if fallback {
            // Only on the upstream request: the fallback upstream can tell it is answering for another.
            out.writeStaticString("x-ficus-fallback: 1\r\n")
        }
        if let requestID {
            out.writeStaticString("x-request-id: ")
            out.writeString(requestID)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("x-forwarded-for: ")
        if let forwardedFor {
            Self.copyValue(head, forwardedFor, into: &out)
            out.writeStaticString(", ")
        }
        out.writeString(client.address)
        out.writeStaticString("\r\nx-forwarded-proto: ")
        if let forwardedProto {
            Self.copyValue(head, forwardedProto, into: &out)
        } else if client.secure {
            out.writeStaticString("https")
        } else {
            out.writeStaticString("http")
        }
        if let forwardedHost {
            out.writeStaticString("\r\nx-forwarded-host: ")
            Self.copyValue(head, forwardedHost, into: &out)
        } else if let authority {
            out.writeStaticString("\r\nx-forwarded-host: ")
            Self.copy(head, authority, into: &out)
        } else if let host = head.hostIndex {
            out.writeStaticString("\r\nx-forwarded-host: ")
            Self.copyValue(head, host, into: &out)
        }
        out.writeStaticString("\r\nvia: ")
        if let via {
            Self.copyValue(head, via, into: &out)
            out.writeStaticString(", ")
        }
        out.writeStaticString(head.versionMinor == 0 ? "1.0 " : "1.1 ")
        out.writeString(viaName)
        out.writeStaticString("\r\n\r\n")
    }

    /// How the body of a response is framed towards the client.
    enum ClientFraming {
        case none
        case contentLength(Int64)
        case chunked
        case closeDelimited
    }

    /// Chooses the client-side framing for an upstream response, given the client's HTTP version.
    static func clientFraming(for response: HTTPHead, clientMinorVersion: UInt8) -> ClientFraming {
        switch response.framing {
        case .none: return .none
        case .contentLength(let length): return .contentLength(length)
        case .chunked, .untilClose: return clientMinorVersion >= 1 ? .chunked : .closeDelimited
        }
    }

    /// Writes the response head sent to the client.
    static func writeResponseHead(
        _ head: HTTPHead,
        into out: inout ByteBuffer,
        framing: ClientFraming,
        keepAlive: Bool,
        clientMinorVersion: UInt8
    ) {
        out.writeStaticString("HTTP/1.1 ")
        out.writeString(String(head.status))
        out.writeInteger(UInt8(0x20))
        if !head.reasonRange.isEmpty {
            Self.copy(head, head.reasonRange, into: &out)
        }
        out.writeStaticString("\r\n")
        let named = Self.connectionNamedFields(head)
        // A HEAD answer keeps the length the full answer would have; 1xx, 204 and 304 never carry one (RFC 9110
        // 8.6: a 204 must not, and a 304's would only describe another answer), and never a body.
        let keepsLength: Bool
        if case .none = framing {
            keepsLength = head.status >= 200 && head.status != 204 && head.status != 304
        } else {
            keepsLength = false
        }
        for index in head.fields.indices {
            if Self.isResponseHopByHop(head, index) || named.contains(where: { Self.nameMatches(head, index, $0) }) {
                continue
            }
            let field = head.fields[index]
            if field.nameEnd - field.nameStart == 14 && head.fieldNameIs(index, "content-length") {
                if keepsLength { Self.copyField(head, index, into: &out) }
                continue
            }
            Self.copyField(head, index, into: &out)
        }
        switch framing {
        case .contentLength(let length):
            out.writeStaticString("content-length: ")
            out.writeString(String(length))
            out.writeStaticString("\r\n")
        case .chunked:
            out.writeStaticString("transfer-encoding: chunked\r\n")
        case .none, .closeDelimited:
            break
        }
        if !keepAlive {
            out.writeStaticString("connection: close\r\n")
        } else if clientMinorVersion == 0 {
            out.writeStaticString("connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
    }

    /// Writes the `101 Switching Protocols` answer to a WebSocket handshake: the upstream's fields minus hop-by-hop
    /// ones, then the upgrade fields again for this hop. Nothing follows it but the tunnel's bytes.
    static func writeUpgradeResponseHead(_ head: HTTPHead, into out: inout ByteBuffer) {
        out.writeStaticString("HTTP/1.1 101 ")
        if head.reasonRange.isEmpty {
            out.writeStaticString("Switching Protocols")
        } else {
            Self.copy(head, head.reasonRange, into: &out)
        }
        out.writeStaticString("\r\n")
        let named = Self.connectionNamedFields(head)
        for index in head.fields.indices {
            if Self.isResponseHopByHop(head, index) || named.contains(where: { Self.nameMatches(head, index, $0) }) {
                continue
            }
            let field = head.fields[index]
            if field.nameEnd - field.nameStart == 14 && head.fieldNameIs(index, "content-length") { continue }
            Self.copyField(head, index, into: &out)
        }
        out.writeStaticString("connection: upgrade\r\nupgrade: websocket\r\n\r\n")
    }

    /// Writes trailer fields, minus the framing and routing fields that must never appear there.
    static func writeTrailers(_ trailers: HTTPTrailers?, into out: inout ByteBuffer) {
        guard let trailers else { return }
        let head = HTTPHead(bytes: trailers.bytes, fields: trailers.fields, versionMinor: 1)
        for index in head.fields.indices {
            let field = head.fields[index]
            switch field.nameEnd - field.nameStart {
            case 4 where head.fieldNameIs(index, "host"): continue
            case 14 where head.fieldNameIs(index, "content-length"): continue
            case 17 where head.fieldNameIs(index, "transfer-encoding"): continue
            default: Self.copyField(head, index, into: &out)
            }
        }
    }

    // MARK: Pieces

    /// `upstream` as a Host value: a preview name (`orders@green`) without its slot, and nothing a Host may not hold.
    static func hostName(forUpstream upstream: String) -> String {
        let name = upstream.split(separator: "@", maxSplits: 1).first.map(String.init) ?? upstream
        let cleaned = String(decoding: name.utf8.filter { isHostByte($0) && $0 != 0x40 }, as: UTF8.self)
        return cleaned.isEmpty ? "upstream" : cleaned
    }

    /// Copies a field line as received (name, colon, whitespace, value) and ends it with CRLF.
    private static func copyField(_ head: HTTPHead, _ index: Int, into out: inout ByteBuffer) {
        let field = head.fields[index]
        Self.copy(head, Int(field.nameStart)..<Int(field.valueEnd), into: &out)
        out.writeStaticString("\r\n")
    }

    private static func copyValue(_ head: HTTPHead, _ index: Int, into out: inout ByteBuffer) {
        let field = head.fields[index]
        Self.copy(head, Int(field.valueStart)..<Int(field.valueEnd), into: &out)
    }

    /// Copies head bytes `range` straight from the head's storage.
    static func copy(_ head: HTTPHead, _ range: Range<Int>, into out: inout ByteBuffer) {
        head.bytes.withUnsafeReadableBytes { raw in
            _ = out.writeBytes(UnsafeRawBufferPointer(rebasing: raw[range]))
        }
    }

    /// Offsets of the field names listed in Connection, other than `close` and `keep-alive`.
    private static func connectionNamedFields(_ head: HTTPHead) -> [Range<Int>] {
        var named: [Range<Int>] = []
        for index in head.fields.indices {
            let field = head.fields[index]
            guard field.nameEnd - field.nameStart == 10, head.fieldNameIs(index, "connection") else { continue }
            forEachToken(head, field) { start, end in
                if !tokenEquals(head, start, end, "close") && !tokenEquals(head, start, end, "keep-alive") {
                    named.append(start..<end)
                }
            }
        }
        return named
    }

    private static func nameMatches(_ head: HTTPHead, _ index: Int, _ token: Range<Int>) -> Bool {
        let field = head.fields[index]
        guard Int(field.nameEnd - field.nameStart) == token.count else { return false }
        return head.bytes.withUnsafeReadableBytes { raw in
            for i in 0..<token.count
            where asciiLower(raw[Int(field.nameStart) + i]) != asciiLower(raw[token.lowerBound + i]) {
                return false
            }
            return true
        }
    }

    /// Fixed hop-by-hop fields of a request, plus the fields Ficus re-emits itself.
    private static func isRequestHopByHop(_ head: HTTPHead, _ index: Int) -> Bool {
        let field = head.fields[index]
        switch field.nameEnd - field.nameStart {
        case 2:
            // TE is hop-by-hop; `TE: trailers` is passed on so that the upstream may send trailers (as Envoy does).
            return head.fieldNameIs(index, "te") && head.value(index).lowercased() != "trailers"
        case 6: return head.fieldNameIs(index, "expect")
        case 7: return head.fieldNameIs(index, "upgrade")
        case 10: return head.fieldNameIs(index, "connection") || head.fieldNameIs(index, "keep-alive")
        // HTTP2-Settings belongs to an h2c upgrade, which Ficus ignores (RFC 9113 3.2: connection-specific).
        case 14: return head.fieldNameIs(index, "content-length") || head.fieldNameIs(index, "http2-settings")
        case 16: return head.fieldNameIs(index, "proxy-connection")
        case 17: return head.fieldNameIs(index, "transfer-encoding")
        case 19: return head.fieldNameIs(index, "proxy-authorization")
        default: return false
        }
    }

    /// Fixed hop-by-hop fields of a response; Content-Length is decided by the caller.
    private static func isResponseHopByHop(_ head: HTTPHead, _ index: Int) -> Bool {
        let field = head.fields[index]
        switch field.nameEnd - field.nameStart {
        case 2: return head.fieldNameIs(index, "te")
        case 7: return head.fieldNameIs(index, "upgrade")
        case 10: return head.fieldNameIs(index, "connection") || head.fieldNameIs(index, "keep-alive")
        case 16: return head.fieldNameIs(index, "proxy-connection")
        case 17: return head.fieldNameIs(index, "transfer-encoding")
        default: return false
        }
    }

    /// Fields in Ficus's own namespace (`X-Ficus-*`): markers only Ficus sets, never passed on from a client.
    private static func isFicusField(_ head: HTTPHead, _ index: Int) -> Bool {
        let field = head.fields[index]
        guard field.nameEnd - field.nameStart >= 8 else { return false }
        return head.bytes.withUnsafeReadableBytes { raw in
            let prefix: StaticString = "x-ficus-"
            for i in 0..<8 where asciiLower(raw[Int(field.nameStart) + i]) != prefix.utf8Start[i] { return false }
            return true
        }
    }
}
