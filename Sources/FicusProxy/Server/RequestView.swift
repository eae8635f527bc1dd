import FicusCore
import NIOCore

/// A parsed request head seen through the routing engine's eyes, built lazily from the head's bytes.
struct RequestView: RoutableRequest, Sendable {
    let head: HTTPHead
    let clientAddress: IPAddress?
    /// The verified client certificate's subject on a TLS connection that asked for one.
    let clientCertificateSubject: String?
    private let pathRange: Range<Int>
    private let queryRange: Range<Int>?
    private let authority: Range<Int>?
    /// The path with dot-segments removed (`PathNormalization`), when that differs from the path received.
    let normalizedPath: String?

    init(head: HTTPHead, clientAddress: IPAddress?, clientCertificateSubject: String? = nil) {
        self.head = head
        self.clientAddress = clientAddress
        self.clientCertificateSubject = clientCertificateSubject
        let (target, authority) = HeaderHygiene.originForm(head)
        self.authority = authority
        let (question, mayNeedWork) = head.bytes.withUnsafeReadableBytes { raw -> (Int?, Bool) in
            var mayNeedWork = false
            for index in target {
                let byte = raw[index]
                if byte == 0x3F { return (index, mayNeedWork) }
                if PathNormalization.mayNeedWork(byte) { mayNeedWork = true }
            }
            return (nil, mayNeedWork)
        }
        if let question {
            self.pathRange = target.lowerBound..<question
            self.queryRange = (question + 1)..<target.upperBound
        } else {
            self.pathRange = target
            self.queryRange = nil
        }
        if mayNeedWork {
            let range = self.pathRange
            self.normalizedPath = head.bytes.withUnsafeReadableBytes { raw in
                PathNormalization.normalize(UnsafeRawBufferPointer(rebasing: raw[range]))
            }
        } else {
            self.normalizedPath = nil
        }
    }

    private init(_ other: RequestView, head: HTTPHead) {
        self.head = head
        self.clientAddress = other.clientAddress
        self.clientCertificateSubject = other.clientCertificateSubject
        self.pathRange = other.pathRange
        self.queryRange = other.queryRange
        self.authority = other.authority
        self.normalizedPath = other.normalizedPath
    }

    /// The same view over a copy of the head's own bytes (see `HTTPHead.detached()`), for keeping beyond the
    /// exchange.
    func detached() -> RequestView {
        RequestView(self, head: self.head.detached())
    }

    var method: String { self.head.methodString }

    var host: String? {
        guard let (range, upper) = self.hostRange else { return nil }
        let host = self.head.string(range)
        return upper ? host.lowercased() : host
    }

    /// The host's bytes, lower-cased and without the port, as a slice of the head when it is in lower case already
    /// (no copy): what `StaleKey` is made of. Empty without a host.
    var hostBytes: ByteBuffer {
        guard let (range, upper) = self.hostRange else { return ByteBuffer() }
        guard var slice = self.head.bytes.getSlice(at: self.head.bytes.readerIndex + range.lowerBound, length: range.count)
        else { return ByteBuffer() }
        if upper {
            slice.withUnsafeMutableReadableBytes { raw in
                for index in raw.indices { raw[index] = asciiLower(raw[index]) }
            }
        }
        return slice
    }

    /// Where the host is in the head (the authority of an absolute-form target, else `Host`), without its port, and
    /// whether it has upper-case letters; nil without a host.
    private var hostRange: (Range<Int>, Bool)? {
        let range: Range<Int>
        if let authority = self.authority {
            range = authority
        } else if let index = self.head.hostIndex {
            let field = self.head.fields[index]
            range = Int(field.valueStart)..<Int(field.valueEnd)
        } else {
            return nil
        }
        return self.head.bytes.withUnsafeReadableBytes { raw -> (Range<Int>, Bool) in
            // Strip the port, leaving IPv6 literals ("[::1]:80") intact.
            var end = range.upperBound
            var i = range.upperBound
            while i > range.lowerBound {
                i -= 1
                if raw[i] == 0x3A {
                    end = i
                    break
                }
                if raw[i] == 0x5D || !isDigit(raw[i]) { break }
            }
            // Most clients send the name in lower case already: then no second string is made.
            return (range.lowerBound..<end, raw[range.lowerBound..<end].contains { $0 >= 0x41 && $0 <= 0x5A })
        }
    }

    var path: String {
        if let normalized = self.normalizedPath { return normalized }
        return self.pathRange.isEmpty ? "/" : self.head.string(self.pathRange)
    }

    var query: String? {
        self.queryRange.map { self.head.string($0) }
    }

    func header(_ name: String) -> String? {
        self.head.firstValue(name)
    }

    func cookie(_ name: String) -> String? {
        for value in self.head.values("cookie") {
            for pair in value.split(separator: ";") {
                let trimmed = pair.trimmingWhitespace()
                guard let equals = trimmed.firstIndex(of: "=") else { continue }
                if trimmed[..<equals] == name {
                    return String(trimmed[trimmed.index(after: equals)...])
                }
            }
        }
        return nil
    }
}
