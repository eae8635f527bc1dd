import Crypto
import FicusCore
import Foundation

/// The last configuration a proxy served, kept in a local file so that a proxy can start while its store cannot be
/// read (docs/FLEET.md, "Starting without the store").
///
/// The file is written after every revision the proxy serves: a temporary file beside it, flushed, then renamed over
/// it, so a reader sees the old file or the new one and never half of one. Its first line is a JSON header (format,
/// store, revision, when it was committed and cached, byte count and SHA-256 of the rest); the rest is the
/// configuration as the store keeps it. A file that does not match its header, names another store or cannot be
/// decoded is refused with what is wrong, never served.
public struct ServedConfigurationCache: Sendable, Equatable {
    /// The cache file.
    public var path: String

    public init(path: String) {
        self.path = path
    }

    /// The default file for a store: beside an SQLite file (`PATH.served.json`), or in the working directory for a
    /// PostgreSQL database (`ficus-served-DATABASE-HOST-PORT.json`), so that proxies of different stores on one host
    /// never share one.
    public static func defaultPath(for location: StoreLocation) -> String {
        switch location {
        case .sqlite(let path):
            return path + ".served.json"
        case .postgres(let url):
            let allowed = Set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-")
            let name = "\(url.database)-\(url.host)-\(url.port)".map { allowed.contains($0) ? $0 : "_" }
            return "ficus-served-\(String(name)).json"
        }
    }

    /// What a cache file holds.
    public struct Entry: Sendable {
        /// The store the revision came from, as `location` names it (no password).
        public var store: String
        public var revision: StoredRevision
        /// When the proxy wrote the file.
        public var cachedAt: Date
    }

    /// The file's first line.
    struct Header: Codable {
        static let currentFormat = "ficus-served-configuration/1"
        var format: String
        var store: String
        var revision: Int
        var committedAt: Date
        var author: String
        var reason: String
        var summary: String
        var cachedAt: Date
        var bytes: Int
        var sha256: String

        enum CodingKeys: String, CodingKey {
            case format, store, revision, author, reason, summary, bytes, sha256
            case committedAt = "committed_at"
            case cachedAt = "cached_at"
        }
    }

    /// Writes `revision` of `store` (its printable location) atomically; throws `ServedConfigurationCacheError` when
    /// the file cannot be written (the previous file, if any, is left as it was).
    public func write(_ revision: StoredRevision, store: String, now: Date = Date()) throws {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        encoder.dateEncodingStrategy = .iso8601
        let payload: Data
        let headerLine: Data
        do {
            payload = try encoder.encode(revision.configuration)
            let header = Header(
                format: Header.currentFormat,
                store: store,
                revision: revision.number,
                committedAt: revision.createdAt,
                author: revision.author,
                reason: revision.reason,
                summary: revision.summary,
                cachedAt: now,
                bytes: payload.count,
                sha256: Self.digest(payload)
            )
            headerLine = try encoder.encode(header)
        } catch {
            throw ServedConfigurationCacheError(path: self.path, problem: "cannot be encoded: \(error)")
        }
        var file = headerLine
        file.append(UInt8(ascii: "\n"))
        file.append(payload)
        let directory = URL(fileURLWithPath: self.path).deletingLastPathComponent()
        let temporary = directory.appendingPathComponent(
            ".\(URL(fileURLWithPath: self.path).lastPathComponent).\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
        )
        let descriptor = open(temporary.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
        guard descriptor >= 0 else {
            throw ServedConfigurationCacheError(path: self.path, problem: "cannot be written: \(Self.errnoText())")
        }
        var failure: String?
        file.withUnsafeBytes { bytes in
            var offset = 0
            while offset < bytes.count {
                let written = Foundation.write(descriptor, bytes.baseAddress! + offset, bytes.count - offset)
                if written < 0 {
                    if errno == EINTR { continue }
                    failure = Self.errnoText()
                    return
                }
                offset += written
            }
        }
        if failure == nil, fsync(descriptor) != 0 {
            failure = Self.errnoText()
        }
        close(descriptor)
        if failure == nil, rename(temporary.path, self.path) != 0 {
            failure = Self.errnoText()
        }
        if let failure {
            unlink(temporary.path)
            throw ServedConfigurationCacheError(path: self.path, problem: "cannot be written: \(failure)")
        }
    }

    /// Reads and checks the file: it must exist, hold this format, match its byte count and SHA-256, come from
    /// `store` (a printable location) and decode to a configuration.
    public func read(store: String) throws -> Entry {
        let data: Data
        do {
            data = try Data(contentsOf: URL(fileURLWithPath: self.path))
        } catch {
            let detail = FileManager.default.fileExists(atPath: self.path) ? "cannot be read" : "does not exist"
            throw ServedConfigurationCacheError(path: self.path, problem: detail)
        }
        guard let newline = data.firstIndex(of: UInt8(ascii: "\n")) else {
            throw ServedConfigurationCacheError(path: self.path, problem: "line 1: no header line")
        }
        let decoder = JSONDecoder()
        decoder.dateDecodingStrategy = .iso8601
        let header: Header
        do {
            header = try decoder.decode(Header.self, from: data[data.startIndex..<newline])
        } catch {
            throw ServedConfigurationCacheError(path: self.path, problem: "line 1: not a cache header (\(error))")
        }
        guard header.format == Header.currentFormat else {
            throw ServedConfigurationCacheError(
                path: self.path,
                problem: "line 1, field format: '\(header.format)', expected '\(Header.currentFormat)'"
            )
        }
        let payload = data[(newline + 1)...]
        guard payload.count == header.bytes, Self.digest(payload) == header.sha256 else {
            throw ServedConfigurationCacheError(
                path: self.path,
                problem: "damaged: its configuration (\(payload.count) bytes) does not match the header's "
                    + "\(header.bytes) bytes and SHA-256"
            )
        }
        guard header.store == store else {
            throw ServedConfigurationCacheError(
                path: self.path,
                problem: "line 1, field store: written for '\(header.store)', not '\(store)'"
            )
        }
        let configuration: FicusCore.Configuration
        do {
            configuration = try JSONDecoder().decode(FicusCore.Configuration.self, from: payload)
        } catch {
            throw ServedConfigurationCacheError(
                path: self.path, problem: "line 2: the configuration cannot be decoded (\(error))")
        }
        let revision = StoredRevision(
            number: header.revision,
            author: header.author,
            reason: header.reason,
            createdAt: header.committedAt,
            summary: header.summary,
            configuration: configuration
        )
        return Entry(store: header.store, revision: revision, cachedAt: header.cachedAt)
    }

    static func digest<Bytes: DataProtocol>(_ bytes: Bytes) -> String {
        SHA256.hash(data: bytes).map { byte in
            let text = String(byte, radix: 16)
            return byte < 16 ? "0" + text : text
        }.joined()
    }

    private static func errnoText() -> String {
        String(cString: strerror(errno))
    }
}

/// A cache file that cannot be written or served, with what is wrong and where.
public struct ServedConfigurationCacheError: Error, Sendable, Equatable, CustomStringConvertible {
    public var path: String
    public var problem: String

    public var description: String {
        "configuration cache '\(self.path)': \(self.problem)"
    }
}
