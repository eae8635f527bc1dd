import Foundation

/// Renders a report as the documented JSON (docs/REPORTS.md, docs/report.schema.json).
///
/// The stable interface for CI pipelines: keys sorted, dates in ISO 8601, every key present (null when unknown), so
/// that two reports of the same store differ only where the data does.
public struct JSONRenderer: Sendable {
    /// Whether to indent; compact output is for machines that store reports.
    public var pretty: Bool

    public init(pretty: Bool = true) {
        self.pretty = pretty
    }

    public func render(_ report: MigrationReport) throws -> String {
        String(decoding: try self.data(report), as: UTF8.self)
    }

    public func data(_ report: MigrationReport) throws -> Data {
        let encoder = JSONEncoder()
        encoder.outputFormatting = self.pretty ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys]
        encoder.dateEncodingStrategy = .iso8601
        return try encoder.encode(report)
    }

    /// Reads a report written by `render`.
    ///
    /// For tests and tools that post-process stored reports.
    public static func decode(_ data: Data) throws -> MigrationReport {
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        return try decoder.decode(MigrationReport.self, from: data)
    }
}
