import NIOCore
import Testing

@testable import FicusProxy

/// Feeds `text` to a fresh parser and returns the body bytes it produced, or the framing error.
private func parse(
    _ text: String,
    kind: HTTP1Parser.Kind,
    limits: HTTPLimits
) -> Result<Int64, HTTPFramingError> {
    var parser = HTTP1Parser(kind: kind, limits: limits)
    var buffer = ByteBuffer(string: text)
    var bodyBytes: Int64 = 0
    do {
        while let event = try parser.next(&buffer) {
            if case .body(let body) = event { bodyBytes += Int64(body.readableBytes) }
        }
        return .success(bodyBytes)
    } catch {
        return .failure(error)
    }
}

private let chunkedRequest = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
private let chunkedResponse = "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"

/// Every number the parsers read from the wire, at its limit and one past it: an error, never a trap.
@Suite("HTTP/1.1 parser: numbers at and past their limits")
struct HTTP1ParserOverflowTests {
    /// The request that used to kill the process: chunk sizes whose sum passes Int64.max.
    @Test func chunkSizesSummingPastInt64MaxAreRefusedInARequest() throws {
        let result = parse(chunkedRequest + "1\r\na\r\n7fffffffffffffff\r\n", kind: .request, limits: HTTPLimits())
        guard case .failure(let error) = result else {
            Issue.record("accepted: \(result)")
            return
        }
        #expect(error.reason == .bodyTooLarge)
        #expect(error.status == 413)
    }

    /// The same bytes from an upstream: the response limit is Int64.max itself, so the sum must be compared first.
    @Test func chunkSizesSummingPastInt64MaxAreRefusedInAResponse() throws {
        let result = parse(chunkedResponse + "1\r\na\r\n7fffffffffffffff\r\n", kind: .response, limits: .response)
        guard case .failure(let error) = result else {
            Issue.record("accepted: \(result)")
            return
        }
        #expect(error.reason == .bodyTooLarge)
    }

    /// A single chunk of exactly Int64.max is allowed in a response (it is then streamed), one more digit is not.
    @Test func oneChunkOfInt64MaxIsAcceptedOneDigitMoreIsNot() {
        let atLimit = parse(chunkedResponse + "7fffffffffffffff\r\nab", kind: .response, limits: .response)
        #expect((try? atLimit.get()) == 2)
        for size in ["8000000000000000", "ffffffffffffffff", "10000000000000000", "00000000000000001"] {
            let past = parse(chunkedResponse + size + "\r\nab", kind: .response, limits: .response)
            guard case .failure(let error) = past else {
                Issue.record("\(size) accepted")
                continue
            }
            #expect(error.reason == .badChunkSize, "\(size)")
        }
    }

    /// Chunks that add up to exactly the body limit pass; one byte more is 413.
    @Test func chunkSumAtTheBodyLimitPassesOneMoreIs413() {
        var limits = HTTPLimits()
        limits.maxBody = 10
        let exact = parse(chunkedRequest + "4\r\nabcd\r\n6\r\nefghij\r\n0\r\n\r\n", kind: .request, limits: limits)
        #expect((try? exact.get()) == 10)
        let over = parse(chunkedRequest + "4\r\nabcd\r\n7\r\nefghijk\r\n0\r\n\r\n", kind: .request, limits: limits)
        guard case .failure(let error) = over else {
            Issue.record("accepted: \(over)")
            return
        }
        #expect(error.status == 413)
    }

    /// Content-Length: 18 digits is the most that is read; 19 digits (Int64.max has 19) or more is 400.
    @Test func contentLengthDigitsAtAndPastTheLimit() {
        let eighteen = "HTTP/1.1 200 OK\r\nContent-Length: 999999999999999999\r\n\r\nab"
        #expect((try? parse(eighteen, kind: .response, limits: .response).get()) == 2)
        for value in ["9223372036854775807", "9223372036854775808", "99999999999999999999999999"] {
            let request = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: \(value)\r\n\r\n"
            guard case .failure(let error) = parse(request, kind: .request, limits: HTTPLimits()) else {
                Issue.record("\(value) accepted")
                continue
            }
            #expect(error.status == 400, "\(value)")
            let response = "HTTP/1.1 200 OK\r\nContent-Length: \(value)\r\n\r\n"
            guard case .failure = parse(response, kind: .response, limits: .response) else {
                Issue.record("response with \(value) accepted")
                continue
            }
        }
    }

    /// A Content-Length just over the body limit is 413 before any body is read.
    @Test func contentLengthOneOverTheBodyLimitIs413() {
        var limits = HTTPLimits()
        limits.maxBody = 100
        let at = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 100\r\n\r\n"
        #expect((try? parse(at, kind: .request, limits: limits).get()) == 0)
        let over = "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 101\r\n\r\n"
        guard case .failure(let error) = parse(over, kind: .request, limits: limits) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == 413)
    }

    /// Status codes are exactly three digits; anything longer or not digits is a bad response.
    @Test func statusCodesPastThreeDigitsAreRefused() {
        for line in ["HTTP/1.1 1000 X", "HTTP/1.1 99 X", "HTTP/1.1 9223372036854775808 X", "HTTP/1.1 -1 X", "HTTP/1.1 2OO OK"] {
            guard case .failure(let error) = parse(line + "\r\n\r\n", kind: .response, limits: .response) else {
                Issue.record("\(line) accepted")
                continue
            }
            #expect(error.reason == .badStatus, "\(line)")
        }
        #expect((try? parse("HTTP/1.1 999 X\r\nContent-Length: 0\r\n\r\n", kind: .response, limits: .response).get()) == 0)
    }

    /// One field over the field limit, or a head one byte over its limit, is 431.
    @Test func fieldCountAndHeadSizeAtAndPastTheirLimits() {
        var limits = HTTPLimits()
        limits.maxFields = 3
        let three = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\n\r\n"
        #expect((try? parse(three, kind: .request, limits: limits).get()) == 0)
        let four = "GET / HTTP/1.1\r\nHost: a\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n"
        guard case .failure(let error) = parse(four, kind: .request, limits: limits) else {
            Issue.record("accepted")
            return
        }
        #expect(error.status == 431)
    }

    /// Empty lines before a request line are ignored however the reads split them (found by fuzzing: "\r" then
    /// "\nGET ..." was refused while the same bytes in one read were accepted), also between pipelined requests;
    /// more than eight are not.
    @Test func emptyLinesBeforeARequestAreSkippedAcrossReads() throws {
        for pieces in [["\r", "\nGET / HTTP/1.1\r\nHost: a\r\n\r\n"], ["\r\n\r", "\n", "GET / HTTP/1.1\r\nHost: a\r\n\r\n"]] {
            var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
            var heads = 0
            var buffer = ByteBuffer()
            for piece in pieces {
                buffer.writeString(piece)
                while let event = try parser.next(&buffer) {
                    if case .head = event { heads += 1 }
                }
            }
            #expect(heads == 1, "\(pieces)")
        }
        var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
        var buffer = ByteBuffer(string: "GET /a HTTP/1.1\r\nHost: a\r\n\r\n\r")
        var heads = 0
        while let event = try parser.next(&buffer) { if case .head = event { heads += 1 } }
        buffer.writeString("\nPUT /b HTTP/1.1\r\nHost: a\r\nContent-Length: 0\r\n\r\n")
        while let event = try parser.next(&buffer) { if case .head = event { heads += 1 } }
        #expect(heads == 2)
        var many = HTTP1Parser(kind: .request, limits: HTTPLimits())
        var flood = ByteBuffer(string: String(repeating: "\r\n", count: 9) + "GET / HTTP/1.1\r\nHost: a\r\n\r\n")
        #expect(throws: HTTPFramingError.self) { while try many.next(&flood) != nil {} }
    }
}
