import Foundation
import NIOCore

/// Where access log lines go: bytes, one line each, formatted on the event loop and written elsewhere.
///
/// The sink must not block (it is called on an event loop): the `ficus` executable's writer appends to a bounded
/// buffer that a thread of its own writes out, and drops (and counts) lines when it is full. It copies the line's
/// bytes before it returns: the caller reuses the buffer for its next line.
public protocol AccessLogSink: Sendable {
    func write(_ line: ByteBuffer)
}

/// How access log lines are written.
public struct AccessLogSettings: Sendable {
    public enum Format: String, Sendable {
        /// `TIME info LABEL: request key=value ...`, keys sorted, as the rest of the log.
        case text
        /// One JSON object per line, keys sorted; numbers are numbers and times RFC 3339 in UTC (`Z`).
        case json
    }

    public var format: Format = .text
    /// Query strings are left out of the logged path (`/search?REDACTED`): they often carry personal data.
    public var redactQuery = false
    /// The logger name written in each line (the `ficus` executable's logger's).
    public var label = "ficus"

    public init() {}
}

/// One finished request as the access log writes it.
struct AccessLogEntry {
    var time: Date
    var method: String
    var path: String
    var status: Int
    var route: String
    var upstream: String
    var durationNanoseconds: Int64
    var bytes: Int64
    var client: String
    var requestID: String
    /// `UPSTREAM:REASON` when the request went to its fallback after that upstream failed; nil otherwise.
    var fallbackFrom: String? = nil
    /// Retries the route's policy made (0: none, and then the field is left out).
    var retries = 0
    /// The answer was a recent copy standing in for a failure (`stale_if_error`); the field only when true.
    var stale = false
    /// For the line of a WebSocket tunnel (written when it ends): bytes each way and why it ended.
    var tunnel: TunnelFacts? = nil

    /// What a tunnel's line adds: `bytes_in` (from the client), `bytes_out` (from the upstream, after the 101) and
    /// `tunnel_end`.
    struct TunnelFacts {
        var bytesFromClient: Int64
        var bytesFromUpstream: Int64
        var end: String
    }

    /// Appends the line (with its newline) to `out`: formatted by hand into one buffer, with no dictionary, no
    /// `JSONSerialization` and no intermediate strings beyond the numbers.
    func write(into out: inout ByteBuffer, settings: AccessLogSettings) {
        let path = settings.redactQuery ? Self.redactingQuery(self.path) : self.path
        let microseconds = max(0, self.durationNanoseconds / 1000)
        switch settings.format {
        case .json:
            out.writeStaticString("{\"bytes\":")
            Self.writeDecimal(self.bytes, into: &out)
            if let tunnel = self.tunnel {
                out.writeStaticString(",\"bytes_in\":")
                Self.writeDecimal(tunnel.bytesFromClient, into: &out)
                out.writeStaticString(",\"bytes_out\":")
                Self.writeDecimal(tunnel.bytesFromUpstream, into: &out)
            }
            out.writeStaticString(",\"client\":")
            Self.writeJSONString(self.client, into: &out)
            out.writeStaticString(",\"duration_ms\":")
            Self.writeMilliseconds(microseconds, into: &out)
            if let fallbackFrom = self.fallbackFrom {
                out.writeStaticString(",\"fallback\":")
                Self.writeJSONString(fallbackFrom, into: &out)
            }
            out.writeStaticString(",\"level\":\"info\",\"logger\":")
            Self.writeJSONString(settings.label, into: &out)
            out.writeStaticString(self.tunnel == nil ? ",\"message\":\"request\"" : ",\"message\":\"tunnel\"")
            out.writeStaticString(",\"method\":")
            Self.writeJSONString(self.method, into: &out)
            out.writeStaticString(",\"path\":")
            Self.writeJSONString(path, into: &out)
            out.writeStaticString(",\"request_id\":")
            Self.writeJSONString(self.requestID, into: &out)
            if self.retries > 0 {
                out.writeStaticString(",\"retries\":")
                Self.writeDecimal(Int64(self.retries), into: &out)
            }
            out.writeStaticString(",\"route\":")
            Self.writeJSONString(self.route, into: &out)
            if self.stale {
                out.writeStaticString(",\"stale\":true")
            }
            out.writeStaticString(",\"status\":")
            Self.writeDecimal(Int64(self.status), into: &out)
            out.writeStaticString(",\"time\":\"")
            Self.writeTime(self.time, into: &out)
            out.writeStaticString("\"")
            if let tunnel = self.tunnel {
                out.writeStaticString(",\"tunnel_end\":")
                Self.writeJSONString(tunnel.end, into: &out)
            }
            out.writeStaticString(",\"upstream\":")
            Self.writeJSONString(self.upstream, into: &out)
            out.writeStaticString("}\n")
        case .text:
            Self.writeTime(self.time, into: &out)
            out.writeStaticString(" info ")
            out.writeString(settings.label)
            out.writeStaticString(self.tunnel == nil ? ": request bytes=" : ": tunnel bytes=")
            Self.writeDecimal(self.bytes, into: &out)
            if let tunnel = self.tunnel {
                out.writeStaticString(" bytes_in=")
                Self.writeDecimal(tunnel.bytesFromClient, into: &out)
                out.writeStaticString(" bytes_out=")
                Self.writeDecimal(tunnel.bytesFromUpstream, into: &out)
            }
            out.writeStaticString(" client=")
            Self.writeText(self.client, into: &out)
            out.writeStaticString(" duration_ms=")
            Self.writeMilliseconds(microseconds, into: &out)
            if let fallbackFrom = self.fallbackFrom {
                out.writeStaticString(" fallback=")
                Self.writeText(fallbackFrom, into: &out)
            }
            out.writeStaticString(" method=")
            Self.writeText(self.method, into: &out)
            out.writeStaticString(" path=")
            Self.writeText(path, into: &out)
            out.writeStaticString(" request_id=")
            Self.writeText(self.requestID, into: &out)
            if self.retries > 0 {
                out.writeStaticString(" retries=")
                Self.writeDecimal(Int64(self.retries), into: &out)
            }
            out.writeStaticString(" route=")
            Self.writeText(self.route, into: &out)
            if self.stale {
                out.writeStaticString(" stale=true")
            }
            out.writeStaticString(" status=")
            Self.writeDecimal(Int64(self.status), into: &out)
            if let tunnel = self.tunnel {
                out.writeStaticString(" tunnel_end=")
                Self.writeText(tunnel.end, into: &out)
            }
            out.writeStaticString(" upstream=")
            Self.writeText(self.upstream, into: &out)
            out.writeStaticString("\n")
        }
    }

    /// `path` with its query replaced by `REDACTED`.
    static func redactingQuery(_ path: String) -> String {
        guard let mark = path.utf8.firstIndex(of: UInt8(ascii: "?")) else { return path }
        return String(path[..<mark]) + "?REDACTED"
    }

    /// `value` in decimal, without an intermediate string.
    static func writeDecimal(_ value: Int64, into out: inout ByteBuffer) {
        if value < 0 {
            out.writeInteger(UInt8(ascii: "-"))
        }
        var digits: (UInt64, UInt64, UInt64) = (0, 0, 0)  // room for 24 digits, more than an Int64 has
        withUnsafeMutableBytes(of: &digits) { buffer in
            var rest = value.magnitude
            var index = buffer.count
            repeat {
                index -= 1
                buffer[index] = UInt8(ascii: "0") + UInt8(rest % 10)
                rest /= 10
            } while rest > 0
            out.writeBytes(UnsafeRawBufferPointer(rebasing: buffer[index...]))
        }
    }

    /// Microseconds as milliseconds with three decimals (`1.234`), the way `Double` would print them.
    static func writeMilliseconds(_ microseconds: Int64, into out: inout ByteBuffer) {
        Self.writeDecimal(microseconds / 1000, into: &out)
        var fraction = microseconds % 1000
        out.writeInteger(UInt8(ascii: "."))
        if fraction == 0 {
            out.writeInteger(UInt8(ascii: "0"))
            return
        }
        // Trailing zeros dropped (1.2, not 1.200), leading ones kept (1.05).
        var width = 3
        while fraction % 10 == 0 {
            fraction /= 10
            width -= 1
        }
        var divisor: Int64 = 1
        for _ in 1..<width { divisor *= 10 }
        while divisor > 0 {
            out.writeInteger(UInt8(ascii: "0") + UInt8(fraction / divisor % 10))
            divisor /= 10
        }
    }

    /// A JSON string: quotes, backslashes and control characters escaped; other bytes as they are (UTF-8).
    static func writeJSONString(_ value: String, into out: inout ByteBuffer) {
        out.writeInteger(UInt8(ascii: "\""))
        if value.utf8.allSatisfy({ $0 >= 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\"") && $0 != UInt8(ascii: "\\") }) {
            // The usual case, copied whole.
            out.writeString(value)
            out.writeInteger(UInt8(ascii: "\""))
            return
        }
        for byte in value.utf8 {
            switch byte {
            case UInt8(ascii: "\""): out.writeStaticString("\\\"")
            case UInt8(ascii: "\\"): out.writeStaticString("\\\\")
            case 0x0A: out.writeStaticString("\\n")
            case 0x0D: out.writeStaticString("\\r")
            case 0x09: out.writeStaticString("\\t")
            case 0..<0x20, 0x7F:
                out.writeStaticString("\\u00")
                out.writeInteger(Self.hex(byte >> 4))
                out.writeInteger(Self.hex(byte & 0x0F))
            default: out.writeInteger(byte)
            }
        }
        out.writeInteger(UInt8(ascii: "\""))
    }

    /// A text value: control characters and spaces escaped as `\xHH`, so that a line stays one line of `key=value`.
    static func writeText(_ value: String, into out: inout ByteBuffer) {
        if value.utf8.allSatisfy({ $0 > 0x20 && $0 != 0x7F && $0 != UInt8(ascii: "\\") }) {
            out.writeString(value)
            return
        }
        for byte in value.utf8 {
            if byte <= 0x20 || byte == 0x7F || byte == UInt8(ascii: "\\") {
                out.writeStaticString("\\x")
                out.writeInteger(Self.hex(byte >> 4))
                out.writeInteger(Self.hex(byte & 0x0F))
            } else {
                out.writeInteger(byte)
            }
        }
    }

    private static func hex(_ nibble: UInt8) -> UInt8 {
        nibble < 10 ? UInt8(ascii: "0") + nibble : UInt8(ascii: "a") + nibble - 10
    }

    /// `2026-12-07T05:01:02.345Z`: RFC 3339 in UTC with milliseconds, computed from the days since 1970 (Howard
    /// Hinnant's civil-from-days), with no formatter and no time zone lookup.
    static func writeTime(_ date: Date, into out: inout ByteBuffer) {
        let total = Int64((date.timeIntervalSince1970 * 1000).rounded(.down))
        let milliseconds = Int(((total % 1000) + 1000) % 1000)
        let seconds = (total - Int64(milliseconds)) / 1000
        var days = seconds / 86_400
        var secondOfDay = seconds % 86_400
        if secondOfDay < 0 {
            secondOfDay += 86_400
            days -= 1
        }
        let shifted = days + 719_468
        let era = (shifted >= 0 ? shifted : shifted - 146_096) / 146_097
        let dayOfEra = shifted - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36_524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let monthIndex = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * monthIndex + 2) / 5 + 1
        let month = monthIndex < 10 ? monthIndex + 3 : monthIndex - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        Self.writeDigits(Int(year), count: 4, into: &out)
        out.writeInteger(UInt8(ascii: "-"))
        Self.writeDigits(Int(month), count: 2, into: &out)
        out.writeInteger(UInt8(ascii: "-"))
        Self.writeDigits(Int(day), count: 2, into: &out)
        out.writeInteger(UInt8(ascii: "T"))
        Self.writeDigits(Int(secondOfDay / 3600), count: 2, into: &out)
        out.writeInteger(UInt8(ascii: ":"))
        Self.writeDigits(Int(secondOfDay % 3600 / 60), count: 2, into: &out)
        out.writeInteger(UInt8(ascii: ":"))
        Self.writeDigits(Int(secondOfDay % 60), count: 2, into: &out)
        out.writeInteger(UInt8(ascii: "."))
        Self.writeDigits(milliseconds, count: 3, into: &out)
        out.writeInteger(UInt8(ascii: "Z"))
    }

    private static func writeDigits(_ value: Int, count: Int, into out: inout ByteBuffer) {
        var divisor = 1
        for _ in 1..<count { divisor *= 10 }
        var rest = max(0, value)
        while divisor > 0 {
            out.writeInteger(UInt8(ascii: "0") + UInt8(rest / divisor % 10))
            rest %= divisor
            divisor /= 10
        }
    }
}
