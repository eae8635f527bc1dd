import Foundation
import Logging

/// A log handler that writes one line per event to standard error, as text or as JSON.
///
/// swift-log ships a text stream handler only; operators feeding logs to a collector want one JSON object per line.
/// Both formats go through one `LogWriter`, so lines never interleave and no event loop waits on standard error.
struct FicusLogHandler: LogHandler {
    enum Format: String, Sendable, CaseIterable {
        case text
        case json
    }

    let label: String
    let format: Format
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { self.metadata[key] }
        set { self.metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = self.metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let time = Date().formatted(.iso8601.year().month().day().time(includingFractionalSeconds: true))
        let line: String
        switch self.format {
        case .text:
            let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
            line = "\(time) \(event.level) \(self.label): \(event.message)\(fields.isEmpty ? "" : " " + fields)\n"
        case .json:
            var object: [String: Any] = ["time": time, "level": "\(event.level)", "logger": self.label]
            object["message"] = "\(event.message)"
            for (key, value) in merged { object[key] = Self.jsonValue(value) }
            let data = (try? JSONSerialization.data(withJSONObject: object, options: [.sortedKeys])) ?? Data()
            line = (String(data: data, encoding: .utf8) ?? "{}") + "\n"
        }
        LogWriter.standardError.append(line)
    }

    /// A metadata value as JSON: numbers logged as numbers (`.stringConvertible(200)`) stay numbers, the rest are
    /// strings.
    static func jsonValue(_ value: Logger.MetadataValue) -> Any {
        if case .stringConvertible(let convertible) = value {
            switch convertible {
            case let number as Int: return number
            case let number as Int64: return number
            case let number as Double where number.isFinite: return number
            case let flag as Bool: return flag
            default: break
            }
        }
        return "\(value)"
    }
}
