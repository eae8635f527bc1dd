import Crypto
import Foundation
import NIOSSL
import SwiftASN1
import X509

/// A certificate authority made by a test, with the key to sign leaf certificates.
///
/// TLS tests must not depend on files from outside the repository or on the system's trust store: each test makes
/// its own CA, trusts it (or deliberately does not) and issues the server and client certificates it needs.
public struct TestCertificateAuthority: Sendable {
    /// The CA certificate, PEM.
    ///
    /// What a trusting peer is given as its trust root (`--tls-client-ca`, an upstream's `ca_file`).
    public let certificatePEM: String

    private let certificate: Certificate
    private let key: Certificate.PrivateKey

    /// Makes a self-signed CA named `name`, valid from an hour ago for a day.
    ///
    /// The hour before now keeps a peer with a slightly different clock from refusing it as not yet valid.
    public init(name: String = "Ficus Test CA") throws {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Ficus tests")
            CommonName(name)
        }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(86_400),
            issuer: subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.isCertificateAuthority(maxPathLength: nil))
                Critical(KeyUsage(digitalSignature: true, keyCertSign: true, cRLSign: true))
            },
            issuerPrivateKey: Certificate.PrivateKey(key)
        )
        self.certificate = certificate
        self.key = Certificate.PrivateKey(key)
        self.certificatePEM = try certificate.serializeAsPEM().pemString
    }

    /// Issues a leaf certificate for `commonName`, valid for the DNS names and IP addresses given.
    ///
    /// Leaves can authenticate both servers and clients, so one helper serves listeners, upstreams and mTLS clients.
    public func issue(
        commonName: String,
        dnsNames: [String] = ["localhost"],
        ipAddresses: [[UInt8]] = [[127, 0, 0, 1]]
    ) throws -> TestCertificate {
        let key = P256.Signing.PrivateKey()
        let subject = try DistinguishedName {
            OrganizationName("Ficus tests")
            CommonName(commonName)
        }
        let names = dnsNames.map { GeneralName.dnsName($0) }
            + ipAddresses.map { GeneralName.ipAddress(ASN1OctetString(contentBytes: ArraySlice($0))) }
        let now = Date()
        let certificate = try Certificate(
            version: .v3,
            serialNumber: Certificate.SerialNumber(),
            publicKey: Certificate.PublicKey(key.publicKey),
            notValidBefore: now.addingTimeInterval(-3600),
            notValidAfter: now.addingTimeInterval(86_400),
            issuer: self.certificate.subject,
            subject: subject,
            signatureAlgorithm: .ecdsaWithSHA256,
            extensions: try Certificate.Extensions {
                Critical(BasicConstraints.notCertificateAuthority)
                Critical(KeyUsage(digitalSignature: true))
                try ExtendedKeyUsage([.serverAuth, .clientAuth])
                SubjectAlternativeNames(names)
            },
            issuerPrivateKey: self.key
        )
        return TestCertificate(
            certificatePEM: try certificate.serializeAsPEM().pemString,
            privateKeyPEM: key.pemRepresentation,
            authorityPEM: self.certificatePEM,
            subject: certificate.subject.description
        )
    }
}

/// A leaf certificate and its private key, issued by a `TestCertificateAuthority`.
///
/// Kept as PEM text because that is what Ficus reads from files, and what a test writes to a temporary directory.
public struct TestCertificate: Sendable {
    /// The leaf certificate alone, PEM.
    public let certificatePEM: String
    /// The leaf's private key, PEM (PKCS#8).
    public let privateKeyPEM: String
    /// The issuing CA's certificate, PEM.
    public let authorityPEM: String
    /// The subject as RFC 4514 text (`CN=…,O=…`), as the proxy reports a verified client's subject.
    public let subject: String

    /// The leaf followed by its CA: a chain file as servers are usually given.
    public var chainPEM: String { self.certificatePEM + "\n" + self.authorityPEM + "\n" }

    /// A TLS server context presenting this certificate (and its chain), for loopback upstreams.
    ///
    /// With `clientAuthority`, the server demands a client certificate issued by it (mTLS).
    public func serverContext(clientAuthority: String? = nil) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeServerConfiguration(
            certificateChain: try NIOSSLCertificate.fromPEMBytes(Array(self.chainPEM.utf8)).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(bytes: Array(self.privateKeyPEM.utf8), format: .pem))
        )
        configuration.applicationProtocols = ["http/1.1"]
        if let clientAuthority {
            configuration.certificateVerification = .noHostnameVerification
            configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(clientAuthority.utf8)))
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// Writes the chain and the key to `directory` as `NAME.pem` and `NAME.key`, and returns both paths.
    ///
    /// Ficus is configured with files; tests make them in a temporary directory of their own.
    @discardableResult
    public func write(to directory: URL, name: String) throws -> (certificate: String, key: String) {
        let certificate = directory.appendingPathComponent("\(name).pem")
        let key = directory.appendingPathComponent("\(name).key")
        try Data(self.chainPEM.utf8).write(to: certificate)
        try Data((self.privateKeyPEM + "\n").utf8).write(to: key)
        return (certificate.path, key.path)
    }
}

/// TLS client contexts for tests.
public enum TestTLS {
    /// A client context trusting `authorityPEM` only, presenting `certificate` when given (mTLS).
    ///
    /// ALPN offers `http/1.1`, as a browser falling back from HTTP/2 would.
    public static func clientContext(
        trusting authorityPEM: String,
        certificate: TestCertificate? = nil
    ) throws -> NIOSSLContext {
        var configuration = TLSConfiguration.makeClientConfiguration()
        configuration.trustRoots = .certificates(try NIOSSLCertificate.fromPEMBytes(Array(authorityPEM.utf8)))
        configuration.applicationProtocols = ["http/1.1"]
        if let certificate {
            configuration.certificateChain = try NIOSSLCertificate.fromPEMBytes(Array(certificate.certificatePEM.utf8))
                .map { .certificate($0) }
            configuration.privateKey = .privateKey(
                try NIOSSLPrivateKey(bytes: Array(certificate.privateKeyPEM.utf8), format: .pem)
            )
        }
        return try NIOSSLContext(configuration: configuration)
    }

    /// A fresh temporary directory for a test's certificate files.
    public static func temporaryDirectory() throws -> URL {
        let url = FileManager.default.temporaryDirectory.appendingPathComponent("ficus-tls-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
        return url
    }
}
