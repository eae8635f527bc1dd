import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import NIOCore
import NIOSSL
import Testing

/// `https://` upstream addresses: verification, host names, client certificates, pooled reuse.
@Suite("TLS to upstreams through a real proxy", .serialized)
struct ProxyUpstreamTLSTests {
    /// Starts an HTTPS test upstream with `certificate` (demanding client certificates of `clientAuthority` if set)
    /// and a proxy whose only upstream is `upstream(address)`; runs `body`; stops both.
    private static func with(
        certificate: TestCertificate,
        clientAuthority: String? = nil,
        upstream: (String) -> Upstream,
        _ body: (ProxyHarness, TestUpstream) async throws -> Void
    ) async throws {
        let server = try await TestUpstream.start(
            .echo,
            group: testGroup,
            tls: try certificate.serverContext(clientAuthority: clientAuthority)
        )
        let configuration = Configuration.catchAll(upstreams: [upstream("\(server.port)")], defaultUpstream: "backend")
        let harness = try await ProxyHarness.start(configuration: configuration)
        do {
            try await body(harness, server)
        } catch {
            await harness.stop()
            try? await server.shutdown()
            throw error
        }
        await harness.stop()
        try? await server.shutdown()
    }

    /// A temporary directory with `authority`'s certificate in `ca.pem`.
    private static func caFile(_ authority: TestCertificateAuthority) throws -> (URL, String) {
        let directory = try TestTLS.temporaryDirectory()
        let path = directory.appendingPathComponent("ca.pem").path
        try Data(authority.certificatePEM.utf8).write(to: URL(fileURLWithPath: path))
        return (directory, path)
    }

    private static func upstream(_ address: String, caFile: String? = nil) -> Upstream {
        var upstream = Upstream(name: "backend", addresses: [Endpoint(parsing: address)!])
        upstream.caFile = caFile
        return upstream
    }

    @Test func httpsAddressesParseAndPrintWithTheirScheme() throws {
        let endpoint = try #require(Endpoint(parsing: "https://api.internal:8443"))
        #expect(endpoint == Endpoint(host: "api.internal", port: 8443, tls: true))
        #expect(endpoint.description == "https://api.internal:8443")
        #expect(Endpoint(parsing: "https://[::1]:443")?.description == "https://[::1]:443")
        #expect(Endpoint(parsing: "10.0.0.1:80")?.tls == false)
        #expect(Endpoint(parsing: "https://api.internal") == nil)
    }

    @Test func trustedUpstreamIsReachedAndItsConnectionReused() async throws {
        let authority = try TestCertificateAuthority()
        let (directory, ca) = try Self.caFile(authority)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.with(
            certificate: try authority.issue(commonName: "backend"),
            upstream: { Self.upstream("https://127.0.0.1:\($0)", caFile: ca) }
        ) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/one").status == 200)
            #expect(try await client.request(path: "/two").status == 200)
            #expect(try await server.waitForRequests(2, timeout: .seconds(5)).map(\.uri) == ["/one", "/two"])
            // Pooled like a plain connection: one handshake for both requests.
            #expect(server.connectionsAccepted == 1)
        }
    }

    @Test func hostNameIsSentAndChecked() async throws {
        let authority = try TestCertificateAuthority()
        let (directory, ca) = try Self.caFile(authority)
        defer { try? FileManager.default.removeItem(at: directory) }
        // The certificate names localhost: reached by that name, it is accepted.
        try await Self.with(
            certificate: try authority.issue(commonName: "backend", dnsNames: ["localhost"], ipAddresses: []),
            upstream: { Self.upstream("https://localhost:\($0)", caFile: ca) }
        ) { harness, _ in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 200)
        }
        // A certificate for another name is refused.
        try await Self.with(
            certificate: try authority.issue(commonName: "backend", dnsNames: ["other.example"], ipAddresses: []),
            upstream: { Self.upstream("https://localhost:\($0)", caFile: ca) }
        ) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 502)
            #expect(server.received.isEmpty)
        }
    }

    @Test func untrustedUpstreamIsRefused() async throws {
        let authority = try TestCertificateAuthority()
        // No ca_file: the system's roots, which do not include a test's CA.
        try await Self.with(
            certificate: try authority.issue(commonName: "backend"),
            upstream: { Self.upstream("https://127.0.0.1:\($0)") }
        ) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 502)
            #expect(server.received.isEmpty)
        }
        // A ca_file of another CA.
        let other = try TestCertificateAuthority(name: "Other CA")
        let (directory, ca) = try Self.caFile(other)
        defer { try? FileManager.default.removeItem(at: directory) }
        try await Self.with(
            certificate: try authority.issue(commonName: "backend"),
            upstream: { Self.upstream("https://127.0.0.1:\($0)", caFile: ca) }
        ) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 502)
            #expect(server.received.isEmpty)
        }
    }

    @Test func clientCertificateIsPresentedForMutualTLS() async throws {
        let authority = try TestCertificateAuthority()
        let clients = try TestCertificateAuthority(name: "Facade clients CA")
        let (directory, ca) = try Self.caFile(authority)
        defer { try? FileManager.default.removeItem(at: directory) }
        let facade = try clients.issue(commonName: "ficus").write(to: directory, name: "facade")
        let stranger = try TestCertificateAuthority(name: "Stranger CA").issue(commonName: "ficus")
            .write(to: directory, name: "stranger")
        for (paths, expected) in [(Optional(facade), 200), (Optional(stranger), 502), (nil, 502)] {
            try await Self.with(
                certificate: try authority.issue(commonName: "backend"),
                clientAuthority: clients.certificatePEM,
                upstream: { port in
                    var upstream = Self.upstream("https://127.0.0.1:\(port)", caFile: ca)
                    upstream.clientCert = paths?.certificate
                    upstream.clientKey = paths?.key
                    return upstream
                }
            ) { harness, server in
                let client = try await harness.client()
                defer { client.close() }
                #expect(try await client.request(path: "/mtls").status == expected)
                #expect(server.received.count == (expected == 200 ? 1 : 0))
            }
        }
    }

    @Test func unreadableCAFileFailsTheConnectWithItsName() async throws {
        let authority = try TestCertificateAuthority()
        try await Self.with(
            certificate: try authority.issue(commonName: "backend"),
            upstream: { Self.upstream("https://127.0.0.1:\($0)", caFile: "/nonexistent/ca.pem") }
        ) { harness, server in
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 502)
            #expect(server.connectionsAccepted == 0)
        }
    }
}
