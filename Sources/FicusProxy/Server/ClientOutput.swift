import NIOCore

/// The bytes going to one client: small pieces coalesced into one buffer (one `write` for a small answer), large ones
/// written as they are, and one flush per read cycle.
///
/// Part of `ProxyConnectionHandler`'s shell; loop-confined like it. The buffer is reused from answer to answer: once
/// its bytes have been handed to the channel it is cleared in place before the next piece.
struct ClientOutput {
    /// Pieces up to this size are copied into the coalescing buffer rather than written on their own.
    static let coalesceLimit = 4 * 1024

    private var buffer = ByteBuffer()
    /// Whether `buffer`'s bytes have been handed to the channel (they are cleared before the next piece).
    private var sent = false
    private(set) var needsFlush = false

    /// Queues `bytes` for the client.
    mutating func write(_ bytes: ByteBuffer, to context: ChannelHandlerContext?) {
        if bytes.readableBytes <= Self.coalesceLimit {
            self.prepare()
            self.buffer.writeImmutableBuffer(bytes)
        } else {
            self.writeCoalesced(to: context)
            context?.write(NIOAny(bytes), promise: nil)
        }
        self.needsFlush = true
    }

    /// Lets `body` write straight into the coalescing buffer (a response head); returns the bytes it wrote.
    mutating func append(_ body: (inout ByteBuffer) -> Void) -> Int {
        self.prepare()
        let before = self.buffer.readableBytes
        body(&self.buffer)
        self.needsFlush = true
        return self.buffer.readableBytes - before
    }

    /// A piece of an answer's body, framed for the client (a chunk of its own when the answer is chunked).
    mutating func writeBody(_ body: ByteBuffer, framing: HeaderHygiene.ClientFraming, to context: ChannelHandlerContext?) {
        guard case .chunked = framing else {
            self.write(body, to: context)
            return
        }
        _ = self.append { out in
            out.writeString(String(body.readableBytes, radix: 16))
            out.writeStaticString("\r\n")
        }
        self.write(body, to: context)
        _ = self.append { $0.writeStaticString("\r\n") }
    }

    /// The end of an answer: the last chunk and trailers when it is chunked, nothing otherwise.
    mutating func writeEnd(_ trailers: HTTPTrailers?, framing: HeaderHygiene.ClientFraming) {
        guard case .chunked = framing else { return }
        _ = self.append { out in
            out.writeStaticString("0\r\n")
            HeaderHygiene.writeTrailers(trailers, into: &out)
            out.writeStaticString("\r\n")
        }
    }

    /// Writes and flushes what is queued, if anything is.
    mutating func flush(to context: ChannelHandlerContext?) {
        guard self.needsFlush else { return }
        self.needsFlush = false
        self.writeCoalesced(to: context)
        context?.flush()
    }

    /// Hands what is queued to the channel without flushing (before a close that flushes).
    mutating func writeCoalesced(to context: ChannelHandlerContext?) {
        self.needsFlush = false
        if !self.sent && self.buffer.readableBytes > 0 {
            self.sent = true
            context?.write(NIOAny(self.buffer), promise: nil)
        }
    }

    private mutating func prepare() {
        if self.sent {
            self.sent = false
            self.buffer.clear()
        }
    }
}
