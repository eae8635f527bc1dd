/// A framing problem found while parsing an HTTP/1.1 message, with the status it earns.
///
/// One type for every refusal keeps the mapping from "what was wrong" to "what the client is told" in one place
/// (house style rule 5); the `reason` doubles as the label of the framing-refusal metric.
public struct HTTPFramingError: Error, Sendable, Equatable, CustomStringConvertible {
    public enum Reason: String, Sendable, CaseIterable {
        case requestLineTooLong = "request_line_too_long"
        case headersTooLarge = "headers_too_large"
        case tooManyFields = "too_many_fields"
        case badStartLine = "bad_start_line"
        case badVersion = "bad_version"
        case unsupportedVersion = "unsupported_version"
        case badFieldName = "bad_field_name"
        case whitespaceBeforeColon = "whitespace_before_colon"
        case obsoleteLineFolding = "obsolete_line_folding"
        case badFieldValue = "bad_field_value"
        case bareLineFeed = "bare_line_feed"
        case contentLengthWithTransferEncoding = "content_length_with_transfer_encoding"
        case badContentLength = "bad_content_length"
        case conflictingContentLength = "conflicting_content_length"
        case bodyTooLarge = "body_too_large"
        case unknownTransferCoding = "unknown_transfer_coding"
        case unsupportedTransferCoding = "unsupported_transfer_coding"
        case badTransferEncoding = "bad_transfer_encoding"
        case transferEncodingInHTTP10 = "transfer_encoding_in_http10"
        case badChunkSize = "bad_chunk_size"
        case chunkExtensionTooLong = "chunk_extension_too_long"
        case badChunkTerminator = "bad_chunk_terminator"
        case missingHost = "missing_host"
        case duplicateHost = "duplicate_host"
        case badHost = "bad_host"
        case connectMethod = "connect_method"
        case upgradeUnsupported = "upgrade_unsupported"
        case expectationFailed = "expectation_failed"
        case badStatus = "bad_status"
        case truncated = "truncated"
    }

    public var reason: Reason
    public var detail: String

    public init(_ reason: Reason, _ detail: String) {
        self.reason = reason
        self.detail = detail
    }

    /// The status answered to a client whose request had this problem.
    public var status: Int {
        switch self.reason {
        case .requestLineTooLong: return 414
        case .headersTooLarge, .tooManyFields: return 431
        case .unsupportedVersion: return 505
        case .bodyTooLarge: return 413
        case .unknownTransferCoding, .unsupportedTransferCoding, .upgradeUnsupported: return 501
        case .connectMethod: return 405
        case .expectationFailed: return 417
        default: return 400
        }
    }

    public var description: String { "\(self.reason.rawValue): \(self.detail)" }
}
