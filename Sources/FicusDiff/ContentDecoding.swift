import CompressNIO
import NIOCore

/// The outcome of undoing a body's `Content-Encoding`.
enum DecodedBody: Sendable, Equatable {
    /// The body had no encoding (or only `identity`).
    case identity([UInt8])
    /// The body was gzip or deflate encoded and decoded completely.
    case decoded([UInt8])
    /// The body could not be decoded; `reason` says why, for the rendered difference.
    case undecodable(reason: String)

    /// The bytes to compare, when there are any.
    var bytes: [UInt8]? {
        switch self {
        case .identity(let bytes), .decoded(let bytes): bytes
        case .undecodable: nil
        }
    }
}

/// Undoing of gzip and deflate content codings before comparison.
///
/// The two sides may compress differently (or one not at all) while saying the same thing; comparing encoded bytes
/// would report every such pair as different.
enum ContentDecoding {
    /// `body` with the codings of `contentEncoding` undone, last applied first.
    ///
    /// A coding is accepted only when it decodes completely — trailer checksum and length included — so a cut-off
    /// stream is never compared as if it were the whole answer.
    static func decode(_ body: [UInt8], contentEncoding: String?, maxSize: Int) -> DecodedBody {
        let codings = (contentEncoding ?? "").split(separator: ",")
            .map { String($0).trimmingHTTPWhitespace().lowercased() }
            .filter { !$0.isEmpty && $0 != "identity" }
        guard !codings.isEmpty, !body.isEmpty else {
            return .identity(body)
        }
        var bytes = body
        for coding in codings.reversed() {
            let next: [UInt8]?
            switch coding {
            case "gzip", "x-gzip":
                next = ContentDecoding.gunzip(bytes, maxSize: maxSize)
            case "deflate":
                // RFC 9110 deflate is the zlib format, but some servers send raw deflate; accept both.
                next =
                    ContentDecoding.inflateZlib(bytes, maxSize: maxSize)
                    ?? ContentDecoding.inflate(bytes, algorithm: .deflate(), maxSize: maxSize)
            default:
                return .undecodable(reason: "unsupported content-encoding \(coding)")
            }
            guard let next else {
                return .undecodable(reason: "\(coding) body does not decode within \(maxSize) bytes")
            }
            bytes = next
        }
        return .decoded(bytes)
    }

    /// Decodes one gzip member and checks its CRC-32 and length trailer.
    static func gunzip(_ bytes: [UInt8], maxSize: Int) -> [UInt8]? {
        guard bytes.count >= 18, let output = ContentDecoding.inflate(bytes, algorithm: .gzip(), maxSize: maxSize)
        else {
            return nil
        }
        let trailer = bytes.suffix(8).map(UInt32.init)
        let crc = trailer[0] | trailer[1] << 8 | trailer[2] << 16 | trailer[3] << 24
        let size = trailer[4] | trailer[5] << 8 | trailer[6] << 16 | trailer[7] << 24
        guard size == UInt32(truncatingIfNeeded: output.count), crc == Checksum.crc32(output) else {
            return nil
        }
        return output
    }

    /// Decodes a zlib stream and checks its Adler-32 trailer.
    static func inflateZlib(_ bytes: [UInt8], maxSize: Int) -> [UInt8]? {
        guard bytes.count >= 6, let output = ContentDecoding.inflate(bytes, algorithm: .zlib(), maxSize: maxSize) else {
            return nil
        }
        let trailer = bytes.suffix(4).map(UInt32.init)
        let adler = trailer[0] << 24 | trailer[1] << 16 | trailer[2] << 8 | trailer[3]
        return adler == Checksum.adler32(output) ? output : nil
    }

    /// Inflates `bytes` with `algorithm`; `nil` when the data is corrupt, too large, or has bytes left over.
    static func inflate(_ bytes: [UInt8], algorithm: CompressionAlgorithm, maxSize: Int) -> [UInt8]? {
        var input = ByteBuffer(bytes: bytes)
        do {
            var output = try input.decompress(with: algorithm, maxSize: maxSize)
            guard input.readableBytes == 0 else {
                return nil
            }
            return output.readBytes(length: output.readableBytes) ?? []
        } catch {
            return nil
        }
    }
}
