import FicusCore
import FicusTesting
import Foundation
import NIOConcurrencyHelpers
import NIOCore
import Testing

@testable import FicusProxy

/// Access log lines (issue 16 item 5) and request ids, without sockets.
@Suite("Access log lines and request ids")
struct AccessLogTests {
    static func entry(path: String = "/orders/7?card=4111", client: String = "192.0.2.1") -> AccessLogEntry {
        AccessLogEntry(
            time: Date(timeIntervalSince1970: 1_765_083_662.345),
            method: "GET",
            path: path,
            status: 200,
            route: "orders",
            upstream: "legacy",
            durationNanoseconds: 1_234_567,
            bytes: 42,
            client: client,
            requestID: "9f86d081884c7d65-1"
        )
    }

    static func line(_ entry: AccessLogEntry, _ configure: (inout AccessLogSettings) -> Void = { _ in }) -> String {
        var settings = AccessLogSettings()
        configure(&settings)
        var buffer = ByteBuffer()
        entry.write(into: &buffer, settings: settings)
        return String(buffer: buffer)
    }

    @Test func jsonLinesHaveNumbersAsNumbersAndUTCTimes() throws {
        let line = Self.line(Self.entry()) { $0.format = .json }
        #expect(line.hasSuffix("}\n"))
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["status"] as? Int == 200)
        #expect(object["bytes"] as? Int == 42)
        #expect(object["duration_ms"] as? Double == 1.234)
        #expect(object["time"] as? String == "2025-12-07T05:01:02.345Z")
        #expect(object["request_id"] as? String == "9f86d081884c7d65-1")
        #expect(object["path"] as? String == "/orders/7?card=4111")
        #expect(object["message"] as? String == "request")
        #expect(object["level"] as? String == "info")
        #expect(line.hasPrefix("{\"bytes\":42,\"client\":"), "keys sorted, as the rest of the log")
    }

    @Test func textLinesAreOneLineOfSortedKeys() {
        let line = Self.line(Self.entry())
        #expect(
            line == "2025-12-07T05:01:02.345Z info ficus: request bytes=42 client=192.0.2.1 duration_ms=1.234 "
                + "method=GET path=/orders/7?card=4111 request_id=9f86d081884c7d65-1 route=orders status=200 "
                + "upstream=legacy\n")
    }

    @Test func queryStringsCanBeRedacted() throws {
        #expect(Self.line(Self.entry()) { $0.redactQuery = true }.contains(" path=/orders/7?REDACTED "))
        let json = Self.line(Self.entry(path: "/plain")) {
            $0.redactQuery = true
            $0.format = .json
        }
        #expect(json.contains("\"path\":\"/plain\""))
    }

    @Test func hostileValuesStayOneLine() throws {
        let hostile = Self.entry(client: "a\"b\\c\nd\u{1B}[31m e")
        let json = Self.line(hostile) { $0.format = .json }
        #expect(json.filter { $0 == "\n" }.count == 1)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
        #expect(object["client"] as? String == "a\"b\\c\nd\u{1B}[31m e")
        let text = Self.line(hostile)
        #expect(text.filter { $0 == "\n" }.count == 1)
        #expect(text.contains("client=a\"b\\x5cc\\x0ad\\x1b[31m\\x20e "))
    }

    /// The hand-made RFC 3339 writer against Foundation's, over dates that catch calendar mistakes.
    @Test(arguments: [
        0.0, 951_782_400.5, 951_868_799.125, 1_078_012_800.0, 4_107_542_399.25, -86_400.25,
    ])
    func timesAgreeWithFoundation(_ seconds: Double) {
        var buffer = ByteBuffer()
        AccessLogEntry.writeTime(Date(timeIntervalSince1970: seconds), into: &buffer)
        let formatter = ISO8601DateFormatter()
        formatter.formatOptions = [.withInternetDateTime, .withFractionalSeconds]
        formatter.timeZone = TimeZone(identifier: "UTC")
        #expect(String(buffer: buffer) == formatter.string(from: Date(timeIntervalSince1970: seconds)))
    }

    /// The hand-made number writers print what `String(describing:)` would.
    @Test func numbersAreWrittenAsSwiftPrintsThem() {
        for value: Int64 in [0, 7, 10, 200, 65_536, 1_234_567_890, .max, -1, .min] {
            var buffer = ByteBuffer()
            AccessLogEntry.writeDecimal(value, into: &buffer)
            #expect(String(buffer: buffer) == String(value))
        }
        for microseconds: Int64 in [0, 1, 10, 100, 999, 1000, 1050, 1234, 1200, 60_000_001, 5_000_000] {
            var buffer = ByteBuffer()
            AccessLogEntry.writeMilliseconds(microseconds, into: &buffer)
            #expect(String(buffer: buffer) == String(Double(microseconds) / 1000), "\(microseconds) µs")
        }
    }

    // MARK: Request ids

    static func head(_ extra: String = "") throws -> HTTPHead {
        var parser = HTTP1Parser(kind: .request, limits: HTTPLimits())
        var buffer = ByteBuffer(string: "GET / HTTP/1.1\r\nHost: a\r\n\(extra)\r\n")
        guard case .head(let head)? = try parser.next(&buffer) else {
            throw HTTPFramingError(.badStartLine, "no head")
        }
        return head
    }

    @Test func aTrustedClientsIdIsKeptAnyOtherIsReplaced() throws {
        var ids = RequestIDs()
        let given = try Self.head("X-Request-Id: edge-42.a:b_c\r\n")
        #expect(ids.id(for: given, trusted: true) == "edge-42.a:b_c")
        let replaced = ids.id(for: given, trusted: false)
        #expect(replaced != "edge-42.a:b_c")
        #expect(replaced.hasSuffix("-1"))
        for bad in ["x y", String(repeating: "a", count: 129), "a\"b", ""] {
            let head = try Self.head("X-Request-Id: \(bad)\r\n")
            #expect(ids.id(for: head, trusted: true) != bad, "'\(bad)' is not an id")
        }
        #expect(ids.id(for: try Self.head(), trusted: true).hasSuffix("-6"), "numbered per request")
    }

    @Test func generatedIdsDoNotRepeatAcrossConnections() {
        var seen = Set<String>()
        for _ in 0..<1000 {
            var ids = RequestIDs()
            #expect(seen.insert(ids.next()).inserted)
        }
        var one = RequestIDs()
        let first = one.next()
        #expect(first.count == 18 && first.hasSuffix("-1"))
    }
}

/// Collects access log lines in memory.
final class RecordingAccessLog: AccessLogSink {
    let lines = NIOLockedValueBox<[String]>([])

    func write(_ line: ByteBuffer) {
        self.lines.withLockedValue { $0.append(String(buffer: line)) }
    }
}

/// Request ids and access log lines through a real proxy.
@Suite("Request ids through a real proxy", .serialized)
struct ProxyRequestIDTests {
    static func start(trusted: Bool, log: RecordingAccessLog) async throws -> (ProxyHarness, TestUpstream) {
        let upstream = try await TestUpstream.start(.echo, group: testGroup)
        let harness = try await ProxyHarness.start(
            configuration: .catchAll(
                upstreams: [Upstream(name: "backend", addresses: [Endpoint(parsing: upstream.address)!])],
                defaultUpstream: "backend"
            ),
            configure: {
                $0.accessLog = true
                $0.accessLogSettings.format = .json
                if trusted { $0.trustedProxies = [CIDR("127.0.0.1/32")!] }
            },
            accessLogSink: log
        )
        return (harness, upstream)
    }

    @Test func anUntrustedClientsIdIsReplacedAndTheLogNamesTheForwardedOne() async throws {
        let log = RecordingAccessLog()
        let (harness, upstream) = try await Self.start(trusted: false, log: log)
        let client = try await harness.client()
        let response = try await client.request(path: "/a?token=1", headers: [("X-Request-Id", "someone-elses")])
        #expect(response.status == 200)
        client.close()
        await harness.stop()
        try await upstream.shutdown()
        let forwarded = try #require(upstream.received.first?.headers("x-request-id"))
        #expect(forwarded.count == 1)
        let id = try #require(forwarded.first)
        #expect(id != "someone-elses" && RequestIDs.isPlausible(id))
        let line = try #require(log.lines.withLockedValue { $0 }.first)
        let object = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        #expect(object["request_id"] as? String == id)
        #expect(object["status"] as? Int == 200)
        #expect(object["path"] as? String == "/a?token=1")
    }

    @Test func aTrustedClientsIdIsKept() async throws {
        let log = RecordingAccessLog()
        let (harness, upstream) = try await Self.start(trusted: true, log: log)
        let client = try await harness.client()
        _ = try await client.request(path: "/a", headers: [("X-Request-Id", "edge-7f3a")])
        client.close()
        await harness.stop()
        try await upstream.shutdown()
        #expect(upstream.received.first?.header("x-request-id") == "edge-7f3a")
        #expect(log.lines.withLockedValue { $0 }.first?.contains("\"request_id\":\"edge-7f3a\"") == true)
    }
}
