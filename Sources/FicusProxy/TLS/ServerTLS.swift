import Foundation
import NIOConcurrencyHelpers
import NIOSSL
import X509

/// Where the listener finds its certificate, its key and, optionally, the CA that client certificates must chain to.
///
/// Paths rather than contents, because the files are re-read when they change (certificates are renewed while the
/// proxy runs); `ServerTLSContext` reads them.
public struct ServerTLSConfiguration: Sendable, Equatable {
    /// The certificate chain, PEM: the leaf first, then intermediates (a chain file as ACME clients write it).
    public var certificatePath: String
    /// The private key of the leaf, PEM.
    public var keyPath: String
    /// A PEM file of CA certificates; when set, every client must present a certificate that chains to one of them.
    public var clientCAPath: String?
    /// The protocols ALPN offers, most preferred first; `ProxyServer` puts `h2` first when HTTP/2 is enabled.
    public var applicationProtocols = ["http/1.1"]

    /// Creates a listener TLS configuration; nothing is read until a `ServerTLSContext` is made from it.
    public init(certificatePath: String, keyPath: String, clientCAPath: String? = nil) {
        self.certificatePath = certificatePath
        self.keyPath = keyPath
        self.clientCAPath = clientCAPath
    }
}

/// Why TLS files could not be used; names the file so that a person can act on it.
public struct TLSFileError: Error, CustomStringConvertible, Equatable {
    /// The file at fault (or both, for a key that does not match its certificate).
    public var file: String
    /// What is wrong with it.
    public var reason: String

    /// Creates an error about `file`.
    public init(file: String, reason: String) {
        self.file = file
        self.reason = reason
    }

    /// `FILE: REASON`, as `ficus serve` prints it.
    public var description: String { "\(self.file): \(self.reason)" }
}

/// The TLS context new client connections are handshaken with, replaced atomically when the files change.
///
/// A connection takes the context once, when it is accepted, and keeps it: a renewal never disturbs a connection in
/// progress. Reading the files is blocking I/O, so `reload` must be called off the event loops (the runtime does it
/// from a task, on a timer and on SIGHUP); a reload that fails leaves the context in force untouched.
public final class ServerTLSContext: Sendable {
    /// The context in force and the file contents it was made from (to tell a change from a touch).
    private struct Loaded {
        var context: NIOSSLContext
        var contents: [[UInt8]]
    }

    /// The files read.
    public let configuration: ServerTLSConfiguration
    private let loaded: NIOLockedValueBox<Loaded>

    /// Reads the files and builds the first context; throws `TLSFileError` when they cannot be used.
    public init(configuration: ServerTLSConfiguration) throws {
        self.configuration = configuration
        let contents = try Self.read(configuration)
        self.loaded = NIOLockedValueBox(Loaded(context: try Self.context(configuration, contents), contents: contents))
    }

    /// The context a connection accepted now is handshaken with.
    var current: NIOSSLContext { self.loaded.withLockedValue { $0.context } }

    /// Re-reads the files and, if their contents changed (or `force`), swaps in a context made from them.
    ///
    /// Returns whether the context was replaced. Comparing contents rather than modification times means a renewal
    /// tool that rewrites identical files costs nothing, and one that keeps the times still takes effect.
    @discardableResult
    public func reload(force: Bool = false) throws -> Bool {
        let contents = try Self.read(self.configuration)
        if !force, self.loaded.withLockedValue({ $0.contents == contents }) { return false }
        let context = try Self.context(self.configuration, contents)
        self.loaded.withLockedValue { $0 = Loaded(context: context, contents: contents) }
        return true
    }

    /// The certificate, key and client CA files' bytes, in that order.
    private static func read(_ configuration: ServerTLSConfiguration) throws -> [[UInt8]] {
        var paths = [configuration.certificatePath, configuration.keyPath]
        if let ca = configuration.clientCAPath { paths.append(ca) }
        return try paths.map { path in
            guard let data = FileManager.default.contents(atPath: path) else {
                throw TLSFileError(file: path, reason: "cannot be read")
            }
            return Array(data)
        }
    }

    /// A server context from the files' bytes: TLS 1.2 at least, ALPN as configured, client certificates demanded
    /// and verified against the client CA when there is one.
    private static func context(
        _ configuration: ServerTLSConfiguration,
        _ contents: [[UInt8]]
    ) throws -> NIOSSLContext {
        let chain = try Self.certificates(contents[0], file: configuration.certificatePath)
        let key: NIOSSLPrivateKey
        do {
            key = try NIOSSLPrivateKey(bytes: contents[1], format: .pem)
        } catch {
            throw TLSFileError(file: configuration.keyPath, reason: "holds no PEM private key (\(error))")
        }
        var tls = TLSConfiguration.makeServerConfiguration(
            certificateChain: chain.map { .certificate($0) },
            privateKey: .privateKey(key)
        )
        tls.minimumTLSVersion = .tlsv12
        tls.applicationProtocols = configuration.applicationProtocols
        if let caPath = configuration.clientCAPath {
            // Client certificates are checked against the CA, not against a host name: clients have none to match.
            tls.certificateVerification = .noHostnameVerification
            tls.trustRoots = .certificates(try Self.certificates(contents[2], file: caPath))
            tls.sendCANameList = true
        }
        do {
            return try NIOSSLContext(configuration: tls)
        } catch {
            throw TLSFileError(
                file: "\(configuration.certificatePath), \(configuration.keyPath)",
                reason: "cannot be used together (\(error)); is the key the certificate's?"
            )
        }
    }

    /// The PEM certificates in `bytes`; at least one, or an error naming `file`.
    static func certificates(_ bytes: [UInt8], file: String) throws -> [NIOSSLCertificate] {
        let certificates: [NIOSSLCertificate]
        do {
            certificates = try NIOSSLCertificate.fromPEMBytes(bytes)
        } catch {
            throw TLSFileError(file: file, reason: "holds no PEM certificate (\(error))")
        }
        guard !certificates.isEmpty else {
            throw TLSFileError(file: file, reason: "holds no PEM certificate")
        }
        return certificates
    }
}

extension NIOSSLCertificate {
    /// The subject as RFC 4514 text (`CN=alice,O=Example`), or nil when the certificate cannot be parsed.
    ///
    /// The form operators know from `openssl x509 -subject -nameopt RFC2253`; what rules match and logs show.
    var subjectText: String? {
        guard let der = try? self.toDERBytes(), let certificate = try? Certificate(derEncoded: der) else { return nil }
        return certificate.subject.description
    }
}
