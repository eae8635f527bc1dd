import Testing

/// The framing table of docs/PROXY.md as data, shared by the parser's unit tests and the proxy's socket tests.
enum FramingCases {
    struct Refused: Sendable, CustomTestStringConvertible {
        var name: String
        var request: String
        var status: Int

        init(_ name: String, _ request: String, _ status: Int) {
            self.name = name
            self.request = request
            self.status = status
        }

        var testDescription: String { self.name }
    }

    static let refused: [Refused] = [
        .init("CL and TE together", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        .init("two different CL", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\nhello!", 400),
        .init("CL list 5, 6", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 5, 6\r\n\r\nhello!", 400),
        .init("CL +5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: +5\r\n\r\nhello", 400),
        .init("CL -1", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400),
        .init("CL 0x5", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 0x5\r\n\r\nhello", 400),
        .init("CL empty", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \r\n\r\n", 400),
        .init("CL space inside", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1 2\r\n\r\nhello", 400),
        .init("CL too large to hold", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999\r\n\r\n", 400),
        .init("CL over the body limit", "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10485761\r\n\r\n", 413),
        .init("TE xchunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: xchunked\r\n\r\n", 501),
        .init("TE chunked, gzip", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400),
        .init("TE chunked, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked, chunked\r\n\r\n", 400),
        .init("two TE lines", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n", 400),
        .init("TE gzip, chunked", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501),
        .init("TE in HTTP/1.0", "POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400),
        .init("space before colon", "GET / HTTP/1.1\r\nHost: a\r\nContent-Length : 5\r\n\r\n", 400),
        .init("obs-fold", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\r\n  folded\r\n\r\n", 400),
        .init("NUL in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\0c\r\n\r\n", 400),
        .init("CR in value", "GET / HTTP/1.1\r\nHost: a\r\nX-A: b\rc\r\n\r\n", 400),
        .init("bare LF", "GET / HTTP/1.1\r\nHost: a\nX-A: b\r\n\r\n", 400),
        .init("chunk size 0x5", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n0x5\r\nhello\r\n0\r\n\r\n", 400),
        .init("chunk size -1", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n-1\r\n\r\n", 400),
        .init("chunk size +5", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400),
        .init("chunk size 17 digits", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n00000000000000005\r\nhello\r\n0\r\n\r\n", 400),
        .init("missing CRLF after chunk", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400),
        .init("chunk extension over 4 KiB", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n5;" + String(repeating: "x", count: 4200) + "\r\nhello\r\n0\r\n\r\n", 400),
        .init("no Host", "GET / HTTP/1.1\r\n\r\n", 400),
        .init("two Host", "GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400),
        .init("Host with userinfo", "GET / HTTP/1.1\r\nHost: user@a\r\n\r\n", 400),
        .init("space in target", "GET /a b HTTP/1.1\r\nHost: a\r\n\r\n", 400),
        .init("malformed version", "GET / HTTP/1.x\r\nHost: a\r\n\r\n", 400),
        .init("version 2.0", "GET / HTTP/2.0\r\nHost: a\r\n\r\n", 505),
        .init("version 1.2", "GET / HTTP/1.2\r\nHost: a\r\n\r\n", 505),
        .init("request line over 8 KiB", "GET /" + String(repeating: "a", count: 8300) + " HTTP/1.1\r\nHost: a\r\n\r\n", 414),
        .init("header block over 64 KiB", "GET / HTTP/1.1\r\nHost: a\r\n" + String(repeating: "X-Long: " + String(repeating: "v", count: 1000) + "\r\n", count: 66) + "\r\n", 431),
        .init("more than 100 fields", "GET / HTTP/1.1\r\nHost: a\r\n" + (0..<101).map { "X-F\($0): v\r\n" }.joined() + "\r\n", 431),
        .init("chunked body over the limit", "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\nA00001\r\n", 413),
        .init("CONNECT", "CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", 405),
        .init("Upgrade: TLS/1.0", "GET / HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: TLS/1.0\r\n\r\n", 501),
        .init(
            "Upgrade: websocket without Connection: upgrade",
            "GET / HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\r\n",
            501
        ),
        .init("unknown expectation", "POST / HTTP/1.1\r\nHost: a\r\nExpect: something\r\nContent-Length: 1\r\n\r\nx", 417),
    ]
}
