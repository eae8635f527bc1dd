import NIOCore

/// Size limits that a parser enforces while reading a message.
public struct HTTPLimits: Sendable, Equatable {
    /// Longest request line; over it the request is refused with 414.
    public var maxRequestLine = 8 * 1024
    /// Largest head (start line and fields) or trailer section; over it: 431.
    public var maxHeadBytes = 64 * 1024
    /// Most field lines in a head; over it: 431.
    public var maxFields = 100
    /// Largest request body; over it: 413.
    public var maxBody: Int64 = 10 * 1024 * 1024
    /// Longest chunk extension on one chunk-size line.
    public var maxChunkExtension = 4 * 1024

    public init() {}

    /// Limits for reading upstream responses: bodies are streamed, so their size is not limited.
    public static var response: HTTPLimits {
        var limits = HTTPLimits()
        limits.maxBody = .max
        limits.maxRequestLine = limits.maxHeadBytes
        return limits
    }
}

/// Trailer fields that followed a chunked body.
public struct HTTPTrailers: Sendable {
    public var bytes: ByteBuffer
    public var fields: [HTTPFieldRange]
}

/// An incremental, strict HTTP/1.1 message parser over bytes.
///
/// It reads one message at a time and never looks past the end of the current one, so bytes pipelined after a
/// refused request are never parsed, let alone forwarded. Every refusal is an `HTTPFramingError`; nothing is
/// normalised (RFC 9112 and the framing table of docs/PROXY.md).
public struct HTTP1Parser: Sendable {
    public enum Kind: Sendable { case request, response }

    public enum Event: Sendable {
        case head(HTTPHead)
        case body(ByteBuffer)
        case end(HTTPTrailers?)
    }

    enum State: Sendable {
        case head
        case contentLength(remaining: Int64)
        case chunkSize(ChunkSizeLine)
        case chunkData(remaining: Int64)
        case chunkDataEnd
        case trailers
        case untilClose
        case endPending
        case failed
    }

    struct ChunkSizeLine: Sendable {
        var value: Int64 = 0
        var digits = 0
        var extensionLength = 0
        var inExtension = false
        var sawCR = false
    }

    public let kind: Kind
    public let limits: HTTPLimits
    var state: State = .head
    var scanned = 0
    /// Empty lines skipped before the current request line (RFC 9112 2.2 allows at least one; Ficus takes eight).
    var emptyLinesSkipped = 0
    var bodyReceived: Int64 = 0
    var responseToMethod: HTTPMethodKind = .get

    public init(kind: Kind, limits: HTTPLimits) {
        self.kind = kind
        self.limits = limits
    }

    /// Whether the parser sits between messages (nothing of the next message has been consumed).
    public var isIdle: Bool {
        if case .head = self.state { return self.scanned == 0 }
        return false
    }

    /// Tells a response parser which request method the next response answers (HEAD responses have no body).
    public mutating func expectResponse(to method: HTTPMethodKind) {
        self.responseToMethod = method
    }

    /// Parses the next event from `buffer`, consuming its bytes; nil when more bytes are needed.
    public mutating func next(_ buffer: inout ByteBuffer) throws(HTTPFramingError) -> Event? {
        do {
            return try self.step(&buffer)
        } catch {
            self.state = .failed
            throw error
        }
    }

    /// Called when the peer closed: ends a body delimited by the close, or reports a truncated message.
    public mutating func peerClosed() throws(HTTPFramingError) -> Event? {
        switch self.state {
        case .untilClose:
            self.state = .head
            return .end(nil)
        case .head where self.scanned == 0:
            return nil
        case .failed:
            return nil
        default:
            self.state = .failed
            throw HTTPFramingError(.truncated, "the peer closed the connection in the middle of a message")
        }
    }

    private mutating func step(_ buffer: inout ByteBuffer) throws(HTTPFramingError) -> Event? {
        switch self.state {
        case .failed:
            return nil
        case .endPending:
            self.state = .head
            return .end(nil)
        case .head:
            guard let head = try self.parseHead(&buffer) else { return nil }
            self.bodyReceived = 0
            switch head.framing {
            case .none, .contentLength(0):
                self.state = .endPending
            case .contentLength(let length):
                self.state = .contentLength(remaining: length)
            case .chunked:
                self.state = .chunkSize(ChunkSizeLine())
            case .untilClose:
                self.state = .untilClose
            }
            return .head(head)
        case .contentLength(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let take = Int(min(Int64(buffer.readableBytes), remaining))
            let slice = buffer.readSlice(length: take)!
            let left = remaining - Int64(take)
            self.state = left == 0 ? .endPending : .contentLength(remaining: left)
            return .body(slice)
        case .untilClose:
            guard buffer.readableBytes > 0 else { return nil }
            return .body(buffer.readSlice(length: buffer.readableBytes)!)
        case .chunkSize(var line):
            guard try self.parseChunkSizeLine(&buffer, &line) else {
                self.state = .chunkSize(line)
                return nil
            }
            if line.value == 0 {
                self.state = .trailers
                self.scanned = 0
            } else {
                // Compare before adding: chunk sizes from the wire may sum past Int64.max (a response's limit is
                // Int64.max itself), and the sum must be refused, never computed.
                guard line.value <= self.limits.maxBody - self.bodyReceived else {
                    throw HTTPFramingError(.bodyTooLarge, "the chunked body exceeds \(self.limits.maxBody) bytes")
                }
                self.bodyReceived += line.value
                self.state = .chunkData(remaining: line.value)
            }
            return try self.step(&buffer)
        case .chunkData(let remaining):
            guard buffer.readableBytes > 0 else { return nil }
            let take = Int(min(Int64(buffer.readableBytes), remaining))
            let slice = buffer.readSlice(length: take)!
            let left = remaining - Int64(take)
            self.state = left == 0 ? .chunkDataEnd : .chunkData(remaining: left)
            return .body(slice)
        case .chunkDataEnd:
            guard buffer.readableBytes >= 2 else {
                if let first = buffer.getInteger(at: buffer.readerIndex, as: UInt8.self), first != 0x0D {
                    throw HTTPFramingError(.badChunkTerminator, "chunk data is not followed by CRLF")
                }
                return nil
            }
            let cr = buffer.readInteger(as: UInt8.self)!
            let lf = buffer.readInteger(as: UInt8.self)!
            guard cr == 0x0D, lf == 0x0A else {
                throw HTTPFramingError(.badChunkTerminator, "chunk data is not followed by CRLF")
            }
            self.state = .chunkSize(ChunkSizeLine())
            return try self.step(&buffer)
        case .trailers:
            guard let trailers = try self.parseTrailers(&buffer) else { return nil }
            self.state = .head
            self.scanned = 0
            return .end(trailers.fields.isEmpty ? nil : trailers)
        }
    }

    // MARK: Chunked framing

    private func parseChunkSizeLine(
        _ buffer: inout ByteBuffer,
        _ line: inout ChunkSizeLine
    ) throws(HTTPFramingError) -> Bool {
        let limits = self.limits
        var consumed = 0
        var complete = false
        let result: HTTPFramingError? = buffer.withUnsafeReadableBytes { raw -> HTTPFramingError? in
            for byte in raw {
                consumed += 1
                if line.sawCR {
                    guard byte == 0x0A else {
                        return HTTPFramingError(.badChunkSize, "CR without LF in a chunk-size line")
                    }
                    guard line.digits > 0 else {
                        return HTTPFramingError(.badChunkSize, "empty chunk size")
                    }
                    complete = true
                    return nil
                }
                if byte == 0x0D {
                    line.sawCR = true
                    continue
                }
                if byte == 0x0A {
                    return HTTPFramingError(.bareLineFeed, "bare LF in a chunk-size line")
                }
                if line.inExtension {
                    line.extensionLength += 1
                    if line.extensionLength > limits.maxChunkExtension {
                        return HTTPFramingError(
                            .chunkExtensionTooLong, "chunk extensions longer than \(limits.maxChunkExtension) bytes"
                        )
                    }
                    if byte < 0x20 && byte != 0x09 || byte == 0x7F {
                        return HTTPFramingError(.badChunkSize, "control character in a chunk extension")
                    }
                    continue
                }
                if let digit = hexValue(byte) {
                    line.digits += 1
                    if line.digits > 16 {
                        return HTTPFramingError(.badChunkSize, "chunk size longer than 16 hex digits")
                    }
                    let (shifted, overflow) = line.value.multipliedReportingOverflow(by: 16)
                    if overflow || shifted > Int64.max - Int64(digit) {
                        return HTTPFramingError(.badChunkSize, "chunk size does not fit in 63 bits")
                    }
                    line.value = shifted + Int64(digit)
                    continue
                }
                if (byte == 0x3B || byte == 0x20 || byte == 0x09) && line.digits > 0 {
                    line.inExtension = true
                    line.extensionLength = 1
                    continue
                }
                return HTTPFramingError(.badChunkSize, "chunk size is not plain hex digits")
            }
            return nil
        }
        buffer.moveReaderIndex(forwardBy: consumed)
        if let result { throw result }
        return complete
    }

    private mutating func parseTrailers(_ buffer: inout ByteBuffer) throws(HTTPFramingError) -> HTTPTrailers? {
        guard buffer.readableBytes >= 2 else { return nil }
        if buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x0D {
            guard buffer.getInteger(at: buffer.readerIndex + 1, as: UInt8.self) == 0x0A else {
                throw HTTPFramingError(.badChunkTerminator, "the last chunk is not followed by CRLF")
            }
            buffer.moveReaderIndex(forwardBy: 2)
            return HTTPTrailers(bytes: ByteBuffer(), fields: [])
        }
        guard let end = try self.findHeadEnd(buffer, isRequestLine: false) else { return nil }
        let bytes = buffer.readSlice(length: end)!
        let fields = try Self.parseFieldLines(bytes, from: 0, limits: self.limits)
        return HTTPTrailers(bytes: bytes, fields: fields)
    }

    // MARK: Heads

    /// Finds the end of a head (offset just past CRLFCRLF), enforcing size limits while it is incomplete.
    private mutating func findHeadEnd(
        _ buffer: ByteBuffer,
        isRequestLine: Bool
    ) throws(HTTPFramingError) -> Int? {
        let limits = self.limits
        let start = max(0, self.scanned - 3)
        let found: Int? = buffer.withUnsafeReadableBytes { raw -> Int? in
            var i = start
            let count = raw.count
            while i + 3 < count {
                if raw[i + 3] != 0x0A {
                    // Skip ahead: the LF of a CRLFCRLF can be at most 3 bytes further.
                    i += raw[i + 3] == 0x0D ? 1 : 4
                    continue
                }
                if raw[i] == 0x0D && raw[i + 1] == 0x0A && raw[i + 2] == 0x0D {
                    return i + 4
                }
                i += 1
            }
            return nil
        }
        if let found {
            self.scanned = 0
            if found > limits.maxHeadBytes {
                throw HTTPFramingError(.headersTooLarge, "the head is larger than \(limits.maxHeadBytes) bytes")
            }
            if isRequestLine {
                try self.checkRequestLineLength(buffer, limit: min(found, limits.maxRequestLine + 2))
            }
            return found
        }
        self.scanned = buffer.readableBytes
        if isRequestLine {
            try self.checkRequestLineLength(buffer, limit: min(buffer.readableBytes, limits.maxRequestLine + 2))
        }
        if buffer.readableBytes > limits.maxHeadBytes {
            throw HTTPFramingError(.headersTooLarge, "the head is larger than \(limits.maxHeadBytes) bytes")
        }
        return nil
    }

    private func checkRequestLineLength(_ buffer: ByteBuffer, limit: Int) throws(HTTPFramingError) {
        guard self.kind == .request else { return }
        let maxLine = self.limits.maxRequestLine
        let hasLF = buffer.withUnsafeReadableBytes { raw in
            raw.prefix(limit).contains(0x0A)
        }
        if !hasLF && buffer.readableBytes > maxLine + 1 {
            throw HTTPFramingError(.requestLineTooLong, "the request line is longer than \(maxLine) bytes")
        }
        if hasLF, let lineEnd = buffer.withUnsafeReadableBytes({ $0.firstIndex(of: 0x0A) }), lineEnd > maxLine + 1 {
            throw HTTPFramingError(.requestLineTooLong, "the request line is longer than \(maxLine) bytes")
        }
    }

    private mutating func parseHead(_ buffer: inout ByteBuffer) throws(HTTPFramingError) -> HTTPHead? {
        if self.kind == .request && self.scanned == 0 {
            // RFC 9112 2.2: ignore empty lines received before a request line, however the reads split them.
            while buffer.readableBytes >= 2,
                buffer.getInteger(at: buffer.readerIndex, as: UInt16.self) == 0x0D0A,
                self.emptyLinesSkipped < 8
            {
                buffer.moveReaderIndex(forwardBy: 2)
                self.emptyLinesSkipped += 1
            }
            // A lone CR may be the first half of one more empty line: wait for the next byte before deciding.
            if buffer.readableBytes == 1, buffer.getInteger(at: buffer.readerIndex, as: UInt8.self) == 0x0D,
                self.emptyLinesSkipped < 8
            {
                return nil
            }
        }
        guard let end = try self.findHeadEnd(buffer, isRequestLine: self.kind == .request) else { return nil }
        self.emptyLinesSkipped = 0
        let bytes = buffer.readSlice(length: end)!
        switch self.kind {
        case .request:
            return try Self.parseRequestHead(bytes, limits: self.limits)
        case .response:
            return try Self.parseResponseHead(bytes, limits: self.limits, method: self.responseToMethod)
        }
    }

    static func parseRequestHead(_ bytes: ByteBuffer, limits: HTTPLimits) throws(HTTPFramingError) -> HTTPHead {
        let lineEnd = try Self.firstLineEnd(bytes)
        var head: HTTPHead = try bytes.withUnsafeReadableBytes { raw throws(HTTPFramingError) -> HTTPHead in
            // method SP request-target SP HTTP-version
            var i = 0
            while i < lineEnd && raw[i] != 0x20 {
                guard isTokenByte(raw[i]) else {
                    throw HTTPFramingError(.badStartLine, "the method contains an invalid character")
                }
                i += 1
            }
            guard i > 0, i < lineEnd else { throw HTTPFramingError(.badStartLine, "malformed request line") }
            let methodRange = 0..<i
            i += 1
            let targetStart = i
            while i < lineEnd && raw[i] != 0x20 {
                let byte = raw[i]
                guard byte > 0x20 && byte != 0x7F else {
                    throw HTTPFramingError(.badStartLine, "the request target contains a control character")
                }
                i += 1
            }
            guard i > targetStart, i < lineEnd else {
                throw HTTPFramingError(.badStartLine, "malformed request line")
            }
            let targetRange = targetStart..<i
            i += 1
            let minor = try Self.parseVersion(raw, from: i, to: lineEnd)
            var head = HTTPHead(bytes: bytes, fields: [], versionMinor: minor)
            head.methodRange = methodRange
            head.targetRange = targetRange
            head.method = Self.methodKind(raw, methodRange)
            return head
        }
        head.fields = try Self.parseFieldLines(bytes, from: lineEnd + 2, limits: limits)
        try Self.applyRequestSemantics(&head, limits: limits)
        return head
    }

    static func parseResponseHead(
        _ bytes: ByteBuffer,
        limits: HTTPLimits,
        method: HTTPMethodKind
    ) throws(HTTPFramingError) -> HTTPHead {
        let lineEnd = try Self.firstLineEnd(bytes)
        var head: HTTPHead = try bytes.withUnsafeReadableBytes { raw throws(HTTPFramingError) -> HTTPHead in
            guard lineEnd >= 12, raw[8] == 0x20 else {
                throw HTTPFramingError(.badStatus, "malformed status line")
            }
            let minor = try Self.parseVersion(raw, from: 0, to: 8)
            var status = 0
            for i in 9..<12 {
                guard raw[i] >= 0x30 && raw[i] <= 0x39 else {
                    throw HTTPFramingError(.badStatus, "the status code is not three digits")
                }
                status = status * 10 + Int(raw[i] - 0x30)
            }
            guard status >= 100 else { throw HTTPFramingError(.badStatus, "status code below 100") }
            var reasonRange = 12..<12
            if lineEnd > 12 {
                guard raw[12] == 0x20 else { throw HTTPFramingError(.badStatus, "malformed status line") }
                for i in 13..<lineEnd where raw[i] < 0x20 && raw[i] != 0x09 || raw[i] == 0x7F {
                    throw HTTPFramingError(.badStatus, "control character in the reason phrase")
                }
                reasonRange = 13..<lineEnd
            }
            var head = HTTPHead(bytes: bytes, fields: [], versionMinor: minor)
            head.status = status
            head.reasonRange = reasonRange
            return head
        }
        head.fields = try Self.parseFieldLines(bytes, from: lineEnd + 2, limits: limits)
        try Self.applyResponseSemantics(&head, requestMethod: method)
        return head
    }

    /// Offset of the CR that ends the first line; every line of a head must end in CRLF.
    private static func firstLineEnd(_ bytes: ByteBuffer) throws(HTTPFramingError) -> Int {
        let lf = bytes.withUnsafeReadableBytes { $0.firstIndex(of: 0x0A) }
        guard let lf, lf > 0, bytes.getInteger(at: bytes.readerIndex + lf - 1, as: UInt8.self) == 0x0D else {
            throw HTTPFramingError(.bareLineFeed, "the start line does not end in CRLF")
        }
        return lf - 1
    }

    private static func parseVersion(
        _ raw: UnsafeRawBufferPointer,
        from start: Int,
        to end: Int
    ) throws(HTTPFramingError) -> UInt8 {
        guard end - start == 8,
            raw[start] == 0x48, raw[start + 1] == 0x54, raw[start + 2] == 0x54, raw[start + 3] == 0x50,
            raw[start + 4] == 0x2F, raw[start + 6] == 0x2E,
            isDigit(raw[start + 5]), isDigit(raw[start + 7])
        else {
            throw HTTPFramingError(.badVersion, "malformed HTTP version")
        }
        let major = raw[start + 5] - 0x30
        let minor = raw[start + 7] - 0x30
        guard major == 1, minor <= 1 else {
            throw HTTPFramingError(.unsupportedVersion, "HTTP/\(major).\(minor) is not supported")
        }
        return minor
    }

    private static func methodKind(_ raw: UnsafeRawBufferPointer, _ range: Range<Int>) -> HTTPMethodKind {
        func equals(_ literal: StaticString) -> Bool {
            guard literal.utf8CodeUnitCount == range.count else { return false }
            let start = literal.utf8Start
            for i in 0..<range.count where raw[range.lowerBound + i] != start[i] { return false }
            return true
        }
        switch range.count {
        case 3: return equals("GET") ? .get : equals("PUT") ? .put : .other
        case 4: return equals("HEAD") ? .head : equals("POST") ? .post : .other
        case 5: return equals("PATCH") ? .patch : equals("TRACE") ? .trace : .other
        case 6: return equals("DELETE") ? .delete : .other
        case 7: return equals("OPTIONS") ? .options : equals("CONNECT") ? .connect : .other
        default: return .other
        }
    }

    /// Parses field lines from `start` up to the final empty line, validating names and values.
    static func parseFieldLines(
        _ bytes: ByteBuffer,
        from start: Int,
        limits: HTTPLimits
    ) throws(HTTPFramingError) -> [HTTPFieldRange] {
        try bytes.withUnsafeReadableBytes { raw throws(HTTPFramingError) -> [HTTPFieldRange] in
            var fields: [HTTPFieldRange] = []
            fields.reserveCapacity(16)
            var lineStart = start
            let count = raw.count
            while lineStart < count {
                // Find this line's LF.
                var lf = lineStart
                while lf < count && raw[lf] != 0x0A { lf += 1 }
                guard lf < count, lf > lineStart, raw[lf - 1] == 0x0D else {
                    throw HTTPFramingError(.bareLineFeed, "a field line does not end in CRLF")
                }
                let lineEnd = lf - 1
                if lineEnd == lineStart { break }  // the empty line that ends the head
                let first = raw[lineStart]
                if first == 0x20 || first == 0x09 {
                    throw HTTPFramingError(.obsoleteLineFolding, "obsolete line folding (a line starts with whitespace)")
                }
                var colon = lineStart
                while colon < lineEnd && raw[colon] != 0x3A {
                    let byte = raw[colon]
                    if !isTokenByte(byte) {
                        if byte == 0x20 || byte == 0x09 {
                            // Whitespace then a colon is the classic smuggling vector; whitespace inside a name is
                            // simply invalid. Both are refused.
                            throw HTTPFramingError(.whitespaceBeforeColon, "whitespace between a field name and colon")
                        }
                        throw HTTPFramingError(.badFieldName, "invalid character in a field name")
                    }
                    colon += 1
                }
                guard colon < lineEnd, colon > lineStart else {
                    throw HTTPFramingError(.badFieldName, "a field line has no name or no colon")
                }
                var valueStart = colon + 1
                while valueStart < lineEnd && (raw[valueStart] == 0x20 || raw[valueStart] == 0x09) { valueStart += 1 }
                var valueEnd = lineEnd
                while valueEnd > valueStart && (raw[valueEnd - 1] == 0x20 || raw[valueEnd - 1] == 0x09) {
                    valueEnd -= 1
                }
                var i = valueStart
                while i < valueEnd {
                    let byte = raw[i]
                    if (byte < 0x20 && byte != 0x09) || byte == 0x7F {
                        throw HTTPFramingError(.badFieldValue, "control character in a field value")
                    }
                    i += 1
                }
                fields.append(
                    HTTPFieldRange(
                        nameStart: UInt32(lineStart),
                        nameEnd: UInt32(colon),
                        valueStart: UInt32(valueStart),
                        valueEnd: UInt32(valueEnd)
                    )
                )
                if fields.count > limits.maxFields {
                    throw HTTPFramingError(.tooManyFields, "more than \(limits.maxFields) fields")
                }
                lineStart = lf + 1
            }
            return fields
        }
    }

    // MARK: Semantics

    /// The framing fields of a head, gathered in one pass.
    struct FramingFields {
        var contentLength: [Int] = []
        var transferEncoding: [Int] = []
        var host: [Int] = []
        var connection: [Int] = []
        var expect: [Int] = []
        var upgrade: [Int] = []
    }

    static func gatherFramingFields(_ head: HTTPHead) -> FramingFields {
        var found = FramingFields()
        for index in head.fields.indices {
            let field = head.fields[index]
            switch field.nameEnd - field.nameStart {
            case 4 where head.fieldNameIs(index, "host"): found.host.append(index)
            case 6 where head.fieldNameIs(index, "expect"): found.expect.append(index)
            case 7 where head.fieldNameIs(index, "upgrade"): found.upgrade.append(index)
            case 10 where head.fieldNameIs(index, "connection"): found.connection.append(index)
            case 14 where head.fieldNameIs(index, "content-length"): found.contentLength.append(index)
            case 17 where head.fieldNameIs(index, "transfer-encoding"): found.transferEncoding.append(index)
            default: break
            }
        }
        return found
    }

    static func applyRequestSemantics(_ head: inout HTTPHead, limits: HTTPLimits) throws(HTTPFramingError) {
        let found = Self.gatherFramingFields(head)
        try Self.applyConnection(&head, found)
        if head.method == .connect {
            throw HTTPFramingError(.connectMethod, "CONNECT is not supported: Ficus forwards to configured upstreams")
        }
        if !found.transferEncoding.isEmpty {
            if head.versionMinor == 0 {
                throw HTTPFramingError(.transferEncodingInHTTP10, "Transfer-Encoding in an HTTP/1.0 request")
            }
            if !found.contentLength.isEmpty {
                throw HTTPFramingError(.contentLengthWithTransferEncoding, "both Content-Length and Transfer-Encoding")
            }
            try Self.requireChunked(head, found.transferEncoding)
            head.framing = .chunked
        } else if !found.contentLength.isEmpty {
            let length = try Self.contentLength(head, found.contentLength)
            if length > limits.maxBody {
                throw HTTPFramingError(.bodyTooLarge, "Content-Length \(length) exceeds the limit of \(limits.maxBody)")
            }
            head.framing = length == 0 ? .none : .contentLength(length)
        } else {
            head.framing = .none
        }
        if found.host.count > 1 {
            throw HTTPFramingError(.duplicateHost, "more than one Host field")
        }
        if let index = found.host.first {
            try Self.validateHost(head, index)
            head.hostIndex = index
        } else if head.versionMinor == 1 {
            throw HTTPFramingError(.missingHost, "an HTTP/1.1 request without Host")
        }
        try Self.validateAbsoluteForm(head)
        var webSocket = false
        for index in found.upgrade {
            // `Upgrade: h2c` is only an offer: it is ignored and answered in HTTP/1.1 (RFC 9110 7.8), and the field
            // is removed as hop-by-hop. `websocket` is tunnelled (docs/PROXY.md, WebSocket); any other protocol is
            // refused.
            var other: (Int, Int)?
            forEachToken(head, head.fields[index]) { start, end in
                if tokenEquals(head, start, end, "websocket") {
                    webSocket = true
                } else if other == nil && !tokenEquals(head, start, end, "h2c") {
                    other = (start, end)
                }
            }
            if let other {
                throw HTTPFramingError(
                    .upgradeUnsupported,
                    "upgrading to '\(head.string(other.0..<other.1))' is not supported; send plain HTTP/1.1"
                )
            }
        }
        if webSocket {
            try Self.checkWebSocketUpgrade(&head, found)
        }
        for index in found.expect where head.versionMinor == 1 {
            let value = head.value(index)
            guard value.lowercased() == "100-continue" else {
                throw HTTPFramingError(.expectationFailed, "unsupported expectation '\(value)'")
            }
            head.expectsContinue = true
        }
    }

    static func applyResponseSemantics(
        _ head: inout HTTPHead,
        requestMethod: HTTPMethodKind
    ) throws(HTTPFramingError) {
        let found = Self.gatherFramingFields(head)
        try Self.applyConnection(&head, found)
        if !found.transferEncoding.isEmpty && !found.contentLength.isEmpty {
            throw HTTPFramingError(.contentLengthWithTransferEncoding, "both Content-Length and Transfer-Encoding")
        }
        var framing: HTTPBodyFraming = .untilClose
        if !found.transferEncoding.isEmpty {
            try Self.requireChunked(head, found.transferEncoding)
            framing = .chunked
        } else if !found.contentLength.isEmpty {
            let length = try Self.contentLength(head, found.contentLength)
            framing = length == 0 ? .none : .contentLength(length)
        }
        if requestMethod == .head || head.status < 200 || head.status == 204 || head.status == 304 {
            framing = .none
        }
        head.framing = framing
    }

    /// Accepts a WebSocket opening handshake only in the shape RFC 6455 4.1 gives it: a GET in HTTP/1.1, without a
    /// body, whose `Connection` names `upgrade` (without it, `Upgrade` is not a request to switch at all).
    private static func checkWebSocketUpgrade(
        _ head: inout HTTPHead,
        _ found: FramingFields
    ) throws(HTTPFramingError) {
        var connectionUpgrade = false
        for index in found.connection {
            forEachToken(head, head.fields[index]) { start, end in
                if tokenEquals(head, start, end, "upgrade") { connectionUpgrade = true }
            }
        }
        guard head.method == .get, head.versionMinor == 1, head.framing == .none, connectionUpgrade else {
            throw HTTPFramingError(
                .upgradeUnsupported,
                "a WebSocket upgrade is an HTTP/1.1 GET without a body, with Connection: upgrade"
            )
        }
        head.upgradeWebSocket = true
    }

    private static func applyConnection(_ head: inout HTTPHead, _ found: FramingFields) throws(HTTPFramingError) {
        for index in found.connection {
            let field = head.fields[index]
            forEachToken(head, field) { start, end in
                if tokenEquals(head, start, end, "close") { head.connectionClose = true }
                if tokenEquals(head, start, end, "keep-alive") { head.connectionKeepAlive = true }
            }
        }
    }

    /// Accepts exactly one Transfer-Encoding field whose only coding is `chunked`.
    private static func requireChunked(_ head: HTTPHead, _ indices: [Int]) throws(HTTPFramingError) {
        if indices.count > 1 {
            throw HTTPFramingError(.badTransferEncoding, "more than one Transfer-Encoding field")
        }
        let codings = head.value(indices[0]).split(separator: ",", omittingEmptySubsequences: false).map {
            $0.trimmingWhitespace().lowercased()
        }
        let known: Set<String> = ["chunked", "gzip", "x-gzip", "deflate", "compress", "x-compress", "identity"]
        for coding in codings {
            if coding.isEmpty { throw HTTPFramingError(.badTransferEncoding, "empty transfer coding") }
            if !known.contains(coding) {
                throw HTTPFramingError(.unknownTransferCoding, "unknown transfer coding '\(coding)'")
            }
        }
        if codings.last != "chunked" {
            throw HTTPFramingError(.badTransferEncoding, "chunked is not the final transfer coding")
        }
        if codings.count > 1 {
            if codings.dropLast().contains("chunked") {
                throw HTTPFramingError(.badTransferEncoding, "chunked applied more than once")
            }
            throw HTTPFramingError(.unsupportedTransferCoding, "transfer codings other than chunked are not supported")
        }
    }

    /// The value of one or more Content-Length fields: plain digits, identical values folded into one.
    private static func contentLength(_ head: HTTPHead, _ indices: [Int]) throws(HTTPFramingError) -> Int64 {
        var result: Int64?
        for index in indices {
            let field = head.fields[index]
            var value: Int64 = 0
            var digits = 0
            var sawElement = false
            var position = Int(field.valueStart)
            let end = Int(field.valueEnd)
            if position == end { throw HTTPFramingError(.badContentLength, "empty Content-Length") }
            while position <= end {
                let byte: UInt8 = position < end
                    ? head.bytes.getInteger(at: head.bytes.readerIndex + position, as: UInt8.self)! : 0x2C
                position += 1
                if isDigit(byte) {
                    if sawElement { throw HTTPFramingError(.badContentLength, "Content-Length has a space inside") }
                    digits += 1
                    if digits > 18 { throw HTTPFramingError(.badContentLength, "Content-Length is too large") }
                    value = value * 10 + Int64(byte - 0x30)
                } else if byte == 0x2C {
                    guard digits > 0 else { throw HTTPFramingError(.badContentLength, "empty Content-Length element") }
                    if let previous = result, previous != value {
                        throw HTTPFramingError(.conflictingContentLength, "Content-Length values differ")
                    }
                    result = value
                    value = 0
                    digits = 0
                    sawElement = false
                    while position < end,
                        let next = head.bytes.getInteger(at: head.bytes.readerIndex + position, as: UInt8.self),
                        next == 0x20 || next == 0x09
                    {
                        position += 1
                    }
                } else if byte == 0x20 || byte == 0x09 {
                    guard digits > 0 else { throw HTTPFramingError(.badContentLength, "malformed Content-Length") }
                    sawElement = true
                } else {
                    throw HTTPFramingError(.badContentLength, "Content-Length is not plain digits")
                }
            }
        }
        return result ?? 0
    }

    /// Checks the authority of an absolute-form target (`GET http://host/ HTTP/1.1`) as strictly as a Host field.
    ///
    /// Ficus never connects to that authority, but it is forwarded as the Host and routed on, so it must be
    /// a plain host: an `http` or `https` scheme, no userinfo, only host characters, not empty.
    private static func validateAbsoluteForm(_ head: HTTPHead) throws(HTTPFramingError) {
        guard let authority = HeaderHygiene.originForm(head).authority else {
            let first = head.bytes.getInteger(at: head.bytes.readerIndex + head.targetRange.lowerBound, as: UInt8.self)
            if first == 0x2F || (first == 0x2A && head.targetRange.count == 1) { return }
            throw HTTPFramingError(.badStartLine, "the request target is neither a path, '*' nor an absolute URI")
        }
        let scheme = head.string(head.targetRange.lowerBound..<(authority.lowerBound - 3)).lowercased()
        guard scheme == "http" || scheme == "https" else {
            throw HTTPFramingError(.badStartLine, "the request target's scheme must be http or https")
        }
        guard !authority.isEmpty else { throw HTTPFramingError(.badHost, "the request target has an empty authority") }
        try head.bytes.withUnsafeReadableBytes { raw throws(HTTPFramingError) in
            for i in authority {
                let byte = raw[i]
                if byte == 0x40 { throw HTTPFramingError(.badHost, "the request target must not carry userinfo") }
                guard isHostByte(byte) else {
                    throw HTTPFramingError(.badHost, "invalid character in the request target's authority")
                }
            }
        }
    }

    private static func validateHost(_ head: HTTPHead, _ index: Int) throws(HTTPFramingError) {
        let field = head.fields[index]
        try head.bytes.withUnsafeReadableBytes { raw throws(HTTPFramingError) in
            for i in Int(field.valueStart)..<Int(field.valueEnd) {
                let byte = raw[i]
                if byte == 0x40 { throw HTTPFramingError(.badHost, "Host must not carry userinfo") }
                guard isHostByte(byte) else { throw HTTPFramingError(.badHost, "invalid character in Host") }
            }
        }
    }
}

/// Calls `body` with the start and end offsets of every comma-separated token of a field value.
func forEachToken(_ head: HTTPHead, _ field: HTTPFieldRange, _ body: (Int, Int) -> Void) {
    head.bytes.withUnsafeReadableBytes { raw in
        var i = Int(field.valueStart)
        let end = Int(field.valueEnd)
        while i < end {
            while i < end && (raw[i] == 0x20 || raw[i] == 0x09 || raw[i] == 0x2C) { i += 1 }
            let start = i
            while i < end && raw[i] != 0x2C { i += 1 }
            var tokenEnd = i
            while tokenEnd > start && (raw[tokenEnd - 1] == 0x20 || raw[tokenEnd - 1] == 0x09) { tokenEnd -= 1 }
            if tokenEnd > start { body(start, tokenEnd) }
        }
    }
}

/// Whether head bytes `start..<end` equal `lowercased` without regard to ASCII case.
func tokenEquals(_ head: HTTPHead, _ start: Int, _ end: Int, _ lowercased: StaticString) -> Bool {
    guard end - start == lowercased.utf8CodeUnitCount else { return false }
    return head.bytes.withUnsafeReadableBytes { raw in
        let expected = lowercased.utf8Start
        for i in 0..<(end - start) where asciiLower(raw[start + i]) != expected[i] { return false }
        return true
    }
}

@inline(__always)
func isDigit(_ byte: UInt8) -> Bool { byte >= 0x30 && byte <= 0x39 }

@inline(__always)
func hexValue(_ byte: UInt8) -> UInt8? {
    switch byte {
    case 0x30...0x39: return byte - 0x30
    case 0x41...0x46: return byte - 0x41 + 10
    case 0x61...0x66: return byte - 0x61 + 10
    default: return nil
    }
}

/// RFC 9110 tchar.
@inline(__always)
func isTokenByte(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x21, 0x23, 0x24, 0x25, 0x26, 0x27, 0x2A, 0x2B, 0x2D, 0x2E, 0x5E, 0x5F, 0x60, 0x7C, 0x7E: return true
    default: return false
    }
}

/// Bytes allowed in a Host value: reg-name, IP literal and port characters (RFC 3986 authority without userinfo).
@inline(__always)
func isHostByte(_ byte: UInt8) -> Bool {
    switch byte {
    case 0x30...0x39, 0x41...0x5A, 0x61...0x7A: return true
    case 0x2D, 0x2E, 0x5F, 0x7E, 0x21, 0x24, 0x26, 0x27, 0x28, 0x29, 0x2A, 0x2B, 0x2C, 0x3B, 0x3D: return true
    case 0x3A, 0x5B, 0x5D, 0x25: return true
    default: return false
    }
}

extension Substring {
    func trimmingWhitespace() -> Substring {
        var result = self
        while let first = result.first, first == " " || first == "\t" { result.removeFirst() }
        while let last = result.last, last == " " || last == "\t" { result.removeLast() }
        return result
    }
}
