import NIOCore

/// The request methods the data path treats specially, plus everything else.
///
/// An enum compared by value is cheaper on the hot path than a string, and the few methods with framing or retry
/// consequences (HEAD, CONNECT, the idempotent ones) are all named here.
public enum HTTPMethodKind: Sendable, Equatable {
    case get, head, post, put, delete, options, patch, trace, connect, other

    /// Idempotent methods that may be re-sent once on a fresh connection (RFC 9110 9.2.2, minus TRACE).
    public var isRetryable: Bool {
        switch self {
        case .get, .head, .options, .put, .delete: return true
        default: return false
        }
    }

    /// Safe methods (GET, HEAD, OPTIONS).
    public var isSafe: Bool {
        switch self {
        case .get, .head, .options: return true
        default: return false
        }
    }
}

/// How the body of a message is delimited on the wire.
public enum HTTPBodyFraming: Sendable, Equatable {
    case none
    case contentLength(Int64)
    case chunked
    case untilClose
}

/// Offsets of one field line inside a head's bytes.
public struct HTTPFieldRange: Sendable, Equatable {
    public var nameStart: UInt32
    public var nameEnd: UInt32
    public var valueStart: UInt32
    public var valueEnd: UInt32
}

/// A parsed request or response head that keeps the bytes it was parsed from.
///
/// Fields are offsets into `bytes` rather than strings so that forwarding copies bytes and never builds a `String`
/// for a header that is passed through unchanged.
public struct HTTPHead: Sendable {
    public var bytes: ByteBuffer
    public var fields: [HTTPFieldRange]
    public var versionMinor: UInt8
    // Requests.
    public var method: HTTPMethodKind = .other
    public var methodRange: Range<Int> = 0..<0
    public var targetRange: Range<Int> = 0..<0
    // Responses.
    public var status: Int = 0
    public var reasonRange: Range<Int> = 0..<0
    // Derived during parsing.
    public var framing: HTTPBodyFraming = .none
    public var connectionClose = false
    public var connectionKeepAlive = false
    public var expectsContinue = false
    /// A WebSocket opening handshake (RFC 6455 4.1): a bodiless HTTP/1.1 GET with `Upgrade: websocket` and
    /// `Connection: upgrade`; forwarded with its upgrade fields, and tunnelled once the upstream answers 101.
    public var upgradeWebSocket = false
    public var hostIndex: Int?

    init(bytes: ByteBuffer, fields: [HTTPFieldRange], versionMinor: UInt8) {
        self.bytes = bytes
        self.fields = fields
        self.versionMinor = versionMinor
    }

    /// The same head over a copy of just its own bytes.
    ///
    /// A parsed head is a slice of the buffer its connection read into, so keeping it (a shadowed request's head
    /// until the shadow loop has built the copies, a captured answer's until it is compared) keeps that whole buffer
    /// from being reused: the next read on the connection then allocates a fresh one, and the kept buffer is freed on
    /// another thread. A copy of the head's few hundred bytes is cheaper than both.
    public func detached() -> HTTPHead {
        var copy = self
        copy.bytes = ByteBufferAllocator().buffer(buffer: self.bytes)
        return copy
    }

    /// Whether the sender wants the connection kept open after this message (RFC 9112 9.3).
    public var wantsKeepAlive: Bool {
        if self.connectionClose { return false }
        return self.versionMinor >= 1 || self.connectionKeepAlive
    }

    public var methodString: String {
        switch self.method {
        case .get: return "GET"
        case .head: return "HEAD"
        case .post: return "POST"
        case .put: return "PUT"
        case .delete: return "DELETE"
        case .options: return "OPTIONS"
        case .patch: return "PATCH"
        case .trace: return "TRACE"
        case .connect: return "CONNECT"
        case .other: return self.string(self.methodRange)
        }
    }

    public var target: String { self.string(self.targetRange) }

    public func string(_ range: Range<Int>) -> String {
        self.bytes.getString(at: self.bytes.readerIndex + range.lowerBound, length: range.count) ?? ""
    }

    public func name(_ index: Int) -> String {
        let field = self.fields[index]
        return self.string(Int(field.nameStart)..<Int(field.nameEnd))
    }

    public func value(_ index: Int) -> String {
        let field = self.fields[index]
        return self.string(Int(field.valueStart)..<Int(field.valueEnd))
    }

    /// Whether field `index` has the given name; `lowercased` must be lower-case ASCII.
    public func fieldNameIs(_ index: Int, _ lowercased: StaticString) -> Bool {
        let field = self.fields[index]
        let length = Int(field.nameEnd - field.nameStart)
        guard length == lowercased.utf8CodeUnitCount else { return false }
        return self.bytes.withUnsafeReadableBytes { raw in
            let expected = lowercased.utf8Start
            var i = 0
            while i < length {
                if asciiLower(raw[Int(field.nameStart) + i]) != expected[i] { return false }
                i += 1
            }
            return true
        }
    }

    /// Whether field `index` has the given name, compared without regard to ASCII case.
    public func fieldNameIs(_ index: Int, caseInsensitive name: String) -> Bool {
        let field = self.fields[index]
        let length = Int(field.nameEnd - field.nameStart)
        var utf8 = name.utf8.makeIterator()
        guard length == name.utf8.count else { return false }
        return self.bytes.withUnsafeReadableBytes { raw in
            var i = 0
            while let byte = utf8.next() {
                if asciiLower(raw[Int(field.nameStart) + i]) != asciiLower(byte) { return false }
                i += 1
            }
            return true
        }
    }

    /// The first value of a field, or nil.
    public func firstValue(_ name: String) -> String? {
        for index in self.fields.indices where self.fieldNameIs(index, caseInsensitive: name) {
            return self.value(index)
        }
        return nil
    }

    /// Every value of a field, in order.
    public func values(_ name: String) -> [String] {
        self.fields.indices.filter { self.fieldNameIs($0, caseInsensitive: name) }.map { self.value($0) }
    }

    /// All fields as strings, for tests, logs and explanations (never on the hot path).
    public var fieldPairs: [(String, String)] {
        self.fields.indices.map { (self.name($0), self.value($0)) }
    }
}

@inline(__always)
func asciiLower(_ byte: UInt8) -> UInt8 {
    (byte >= 0x41 && byte <= 0x5A) ? byte | 0x20 : byte
}
