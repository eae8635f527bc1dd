/// Parses one response from the front of a byte stream, strictly, without any I/O.
///
/// It is a separate, deliberately simple implementation so that tests judge the proxy's output with code that
/// shares nothing with the proxy; being pure, it is called again on the whole buffer as bytes arrive.
enum RawResponseParser {
    enum Outcome {
        case complete(RawResponse, consumed: Int)
        case needMore
        case invalid(String)
    }

    private enum Framing {
        case none
        case length(Int)
        case chunked
        case untilClose
    }

    private static let crlf: [UInt8] = [13, 10]

    static func parse(_ bytes: ArraySlice<UInt8>, forHEAD: Bool, peerClosed: Bool) -> Outcome {
        guard let headEnd = Self.find([13, 10, 13, 10], in: bytes, from: bytes.startIndex) else {
            return .needMore
        }
        let headText = String(decoding: bytes[bytes.startIndex..<headEnd], as: UTF8.self)
        var lines = headText.split(separator: "\r\n", omittingEmptySubsequences: false).map(String.init)
        let statusLine = lines.removeFirst()
        let parts = statusLine.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: false).map(String.init)
        guard parts.count >= 2, parts[0].hasPrefix("HTTP/"), parts[1].count == 3, let status = Int(parts[1]) else {
            return .invalid("bad status line \(statusLine.debugDescription)")
        }
        let headers: [(String, String)]
        switch Self.fields(lines) {
        case .success(let parsed):
            headers = parsed
        case .failure(let message):
            return .invalid(message.text)
        }
        let bodyStart = headEnd + 4
        let framing: Framing
        switch Self.framing(status: status, headers: headers, forHEAD: forHEAD) {
        case .success(let found):
            framing = found
        case .failure(let message):
            return .invalid(message.text)
        }
        var response = RawResponse(
            status: status,
            version: parts[0],
            reason: parts.count > 2 ? parts[2] : "",
            headers: headers,
            body: [],
            trailers: [],
            raw: []
        )
        let end: Int
        switch framing {
        case .none:
            end = bodyStart
        case .length(let length):
            guard bytes.endIndex - bodyStart >= length else {
                return .needMore
            }
            end = bodyStart + length
            response.body = Array(bytes[bodyStart..<end])
        case .untilClose:
            guard peerClosed else {
                return .needMore
            }
            end = bytes.endIndex
            response.body = Array(bytes[bodyStart..<end])
        case .chunked:
            switch Self.chunkedBody(bytes, from: bodyStart) {
            case .needMore:
                return .needMore
            case .invalid(let message):
                return .invalid(message)
            case .complete(let body, let trailers, let chunkedEnd):
                response.body = body
                response.trailers = trailers
                end = chunkedEnd
            }
        }
        response.raw = Array(bytes[bytes.startIndex..<end])
        return .complete(response, consumed: end - bytes.startIndex)
    }

    private struct Message: Error {
        var text: String
    }

    private static func fields(_ lines: [String]) -> Result<[(String, String)], Message> {
        var fields: [(String, String)] = []
        for line in lines {
            if line.first == " " || line.first == "\t" {
                return .failure(Message(text: "obsolete line folding in \(line.debugDescription)"))
            }
            guard let colon = line.firstIndex(of: ":") else {
                return .failure(Message(text: "header line without a colon: \(line.debugDescription)"))
            }
            let name = String(line[line.startIndex..<colon])
            guard !name.isEmpty, !name.contains(" "), !name.contains("\t") else {
                return .failure(Message(text: "bad header name in \(line.debugDescription)"))
            }
            let value = line[line.index(after: colon)...].trimmingOWS()
            fields.append((name, value))
        }
        return .success(fields)
    }

    private static func framing(
        status: Int,
        headers: [(String, String)],
        forHEAD: Bool
    ) -> Result<Framing, Message> {
        if forHEAD || (100..<200).contains(status) || status == 204 || status == 304 {
            return .success(.none)
        }
        let codings = headers.filter { $0.0.lowercased() == "transfer-encoding" }
            .flatMap { $0.1.split(separator: ",") }
            .map { String($0).trimmingOWS().lowercased() }
        let lengths = headers.filter { $0.0.lowercased() == "content-length" }.map(\.1)
        if !codings.isEmpty {
            guard lengths.isEmpty else {
                return .failure(Message(text: "response has both Transfer-Encoding and Content-Length"))
            }
            return .success(codings.last == "chunked" ? .chunked : .untilClose)
        }
        guard let first = lengths.first else {
            return .success(.untilClose)
        }
        guard lengths.allSatisfy({ $0 == first }), !first.isEmpty, first.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let length = Int(first)
        else {
            return .failure(Message(text: "bad Content-Length \(lengths)"))
        }
        return .success(.length(length))
    }

    private enum ChunkedOutcome {
        case complete([UInt8], [(String, String)], end: Int)
        case needMore
        case invalid(String)
    }

    private static func chunkedBody(_ bytes: ArraySlice<UInt8>, from start: Int) -> ChunkedOutcome {
        var ranges: [Range<Int>] = []
        var index = start
        while true {
            guard let lineEnd = Self.find(Self.crlf, in: bytes, from: index) else {
                return .needMore
            }
            let line = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            let sizeText = line.split(separator: ";", maxSplits: 1, omittingEmptySubsequences: false)[0]
            guard !sizeText.isEmpty, sizeText.count <= 16, let size = Int(sizeText, radix: 16),
                sizeText.allSatisfy(\.isHexDigit)
            else {
                return .invalid("bad chunk size line \(line.debugDescription)")
            }
            index = lineEnd + 2
            if size == 0 {
                break
            }
            guard bytes.endIndex - index >= size + 2 else {
                return .needMore
            }
            ranges.append(index..<(index + size))
            index += size
            guard bytes[index] == 13, bytes[index + 1] == 10 else {
                return .invalid("chunk data not followed by CRLF")
            }
            index += 2
        }
        var trailerLines: [String] = []
        while true {
            guard let lineEnd = Self.find(Self.crlf, in: bytes, from: index) else {
                return .needMore
            }
            let line = String(decoding: bytes[index..<lineEnd], as: UTF8.self)
            index = lineEnd + 2
            if line.isEmpty {
                break
            }
            trailerLines.append(line)
        }
        let trailers: [(String, String)]
        switch Self.fields(trailerLines) {
        case .success(let parsed):
            trailers = parsed
        case .failure(let message):
            return .invalid("trailers: \(message.text)")
        }
        var body: [UInt8] = []
        body.reserveCapacity(ranges.reduce(0) { $0 + $1.count })
        for range in ranges {
            body.append(contentsOf: bytes[range])
        }
        return .complete(body, trailers, end: index)
    }

    /// The index where `needle` starts in `bytes` at or after `start`.
    private static func find(_ needle: [UInt8], in bytes: ArraySlice<UInt8>, from start: Int) -> Int? {
        guard bytes.endIndex - start >= needle.count else {
            return nil
        }
        var index = start
        let last = bytes.endIndex - needle.count
        while index <= last {
            if bytes[index] == needle[0] {
                var matched = true
                for offset in 1..<needle.count where bytes[index + offset] != needle[offset] {
                    matched = false
                    break
                }
                if matched {
                    return index
                }
            }
            index += 1
        }
        return nil
    }
}

extension StringProtocol {
    /// The text without leading and trailing spaces and tabs (HTTP's optional whitespace).
    fileprivate func trimmingOWS() -> String {
        let isOWS: (Character) -> Bool = { $0 == " " || $0 == "\t" }
        guard let first = self.firstIndex(where: { !isOWS($0) }), let last = self.lastIndex(where: { !isOWS($0) })
        else {
            return ""
        }
        return String(self[first...last])
    }
}
