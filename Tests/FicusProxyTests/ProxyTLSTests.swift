import FicusCore
import FicusProxy
import FicusTesting
import Foundation
import NIOCore
import NIOSSL
import Testing

/// A proxy listening with TLS: its certificate, ALPN, reloads, client certificates.
@Suite("TLS termination through a real proxy", .serialized)
struct ProxyTLSTests {
    /// A CA, a server certificate for `localhost`/127.0.0.1 written to a temporary directory, and the settings that
    /// point the proxy at them.
    struct ListenerFiles {
        let authority: TestCertificateAuthority
        let directory: URL
        let paths: (certificate: String, key: String)

        init() throws {
            self.authority = try TestCertificateAuthority()
            self.directory = try TestTLS.temporaryDirectory()
            self.paths = try self.authority.issue(commonName: "localhost").write(to: self.directory, name: "server")
        }

        func configuration(clientCA: String? = nil) -> ServerTLSConfiguration {
            ServerTLSConfiguration(
                certificatePath: self.paths.certificate,
                keyPath: self.paths.key,
                clientCAPath: clientCA
            )
        }

        func client(certificate: TestCertificate? = nil) throws -> NIOSSLContext {
            try TestTLS.clientContext(trusting: self.authority.certificatePEM, certificate: certificate)
        }
    }

    @Test func requestOverTLSIsForwardedWithForwardedProtoHTTPS() async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        try await ProxyHarness.with(.echo, configure: { $0.tls = files.configuration() }) { harness, upstream in
            let client = try await RawClient.connect(
                port: harness.port, group: testGroup, tls: try files.client(), serverHostname: "localhost"
            )
            defer { client.close() }
            let response = try await client.request(path: "/secure")
            #expect(response.status == 200)
            // Keep-alive holds over TLS as over plain TCP.
            #expect(try await client.request(path: "/again").status == 200)
            let received = try await upstream.waitForRequests(2, timeout: .seconds(5))
            #expect(received[0].header("x-forwarded-proto") == "https")
            #expect(received.map(\.uri) == ["/secure", "/again"])
        }
    }

    @Test func plainHTTPToATLSListenerIsNotServed() async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        try await ProxyHarness.with(.echo, configure: { $0.tls = files.configuration() }) { harness, upstream in
            let client = try await harness.client()
            defer { client.close() }
            try await client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
            #expect(await client.isClosed(within: .seconds(5)))
            #expect(upstream.received.isEmpty)
        }
    }

    @Test func certificateFilesThatCannotBeUsedStopTheStart() async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        // The key of another certificate.
        let other = try files.authority.issue(commonName: "other").write(to: files.directory, name: "other")
        let mismatched = ServerTLSConfiguration(certificatePath: files.paths.certificate, keyPath: other.key)
        #expect(throws: TLSFileError.self) { try ServerTLSContext(configuration: mismatched) }
        let missing = ServerTLSConfiguration(certificatePath: "/nonexistent/cert.pem", keyPath: files.paths.key)
        #expect(throws: TLSFileError(file: "/nonexistent/cert.pem", reason: "cannot be read")) {
            try ServerTLSContext(configuration: missing)
        }
    }

    @Test func reloadServesTheNewCertificateToNewConnectionsAndKeepsOpenOnes() async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        try await ProxyHarness.with(.echo, configure: { $0.tls = files.configuration() }) { harness, _ in
            let before = try await RawClient.connect(
                port: harness.port, group: testGroup, tls: try files.client(), serverHostname: "localhost"
            )
            defer { before.close() }
            #expect(try await before.request(path: "/before").status == 200)
            // Nothing changed: nothing is swapped.
            #expect(try harness.proxy.reloadTLS() == false)

            // A renewal from another CA, written over the same files.
            let renewed = try TestCertificateAuthority(name: "Renewed CA")
            try renewed.issue(commonName: "localhost").write(to: files.directory, name: "server")
            #expect(try harness.proxy.reloadTLS() == true)

            // The open connection keeps its session.
            #expect(try await before.request(path: "/still").status == 200)
            // A new connection gets the new certificate: a client trusting only the old CA refuses it...
            await #expect(throws: (any Error).self) {
                let stale = try await RawClient.connect(
                    port: harness.port, group: testGroup, tls: try files.client(), serverHostname: "localhost"
                )
                stale.close()
            }
            // ...and one trusting the new CA is served.
            let after = try await RawClient.connect(
                port: harness.port,
                group: testGroup,
                tls: try TestTLS.clientContext(trusting: renewed.certificatePEM),
                serverHostname: "localhost"
            )
            defer { after.close() }
            #expect(try await after.request(path: "/after").status == 200)
        }
    }

    @Test func aBrokenRenewalKeepsTheCertificateInForce() async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        try await ProxyHarness.with(.echo, configure: { $0.tls = files.configuration() }) { harness, _ in
            try Data("not a key".utf8).write(to: URL(fileURLWithPath: files.paths.key))
            #expect(throws: TLSFileError.self) { try harness.proxy.reloadTLS() }
            let client = try await RawClient.connect(
                port: harness.port, group: testGroup, tls: try files.client(), serverHostname: "localhost"
            )
            defer { client.close() }
            #expect(try await client.request(path: "/").status == 200)
        }
    }

    /// A proxy demanding client certificates from `clientAuthority`, with a rule that sends the subject
    /// `CN=alice,O=Ficus tests` to `alice` and everything else to `backend`.
    private static func withClientCertificates(
        _ body: (ProxyHarness, ListenerFiles, TestUpstream, TestUpstream) async throws -> Void,
        clientAuthority: TestCertificateAuthority
    ) async throws {
        let files = try ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        let caPath = files.directory.appendingPathComponent("clients.pem").path
        try Data(clientAuthority.certificatePEM.utf8).write(to: URL(fileURLWithPath: caPath))
        let backend = try await TestUpstream.start(.echo, group: testGroup)
        let alice = try await TestUpstream.start(.echo, group: testGroup)
        let configuration = Configuration(
            upstreams: [
                Upstream(name: "backend", addresses: [Endpoint(parsing: backend.address)!]),
                Upstream(name: "alice", addresses: [Endpoint(parsing: alice.address)!]),
            ],
            routes: [
                Route(
                    name: "default",
                    legacy: "backend",
                    rules: [
                        Rule(
                            name: "alice",
                            condition: .match(Predicate(.clientCertSubject, .equals, ["CN=alice,O=Ficus tests"])),
                            upstream: "alice"
                        )
                    ]
                )
            ]
        )
        let harness = try await ProxyHarness.start(
            configuration: configuration,
            configure: { $0.tls = files.configuration(clientCA: caPath) }
        )
        do {
            try await body(harness, files, backend, alice)
        } catch {
            await harness.stop()
            try? await backend.shutdown()
            try? await alice.shutdown()
            throw error
        }
        await harness.stop()
        try? await backend.shutdown()
        try? await alice.shutdown()
    }

    @Test func verifiedClientSubjectIsARuleAttribute() async throws {
        let clients = try TestCertificateAuthority(name: "Clients CA")
        try await Self.withClientCertificates(
            { harness, files, backend, alice in
                let aliceClient = try await RawClient.connect(
                    port: harness.port,
                    group: testGroup,
                    tls: try files.client(certificate: try clients.issue(commonName: "alice")),
                    serverHostname: "localhost"
                )
                defer { aliceClient.close() }
                #expect(try await aliceClient.request(path: "/a").status == 200)
                let bob = try await RawClient.connect(
                    port: harness.port,
                    group: testGroup,
                    tls: try files.client(certificate: try clients.issue(commonName: "bob")),
                    serverHostname: "localhost"
                )
                defer { bob.close() }
                #expect(try await bob.request(path: "/b").status == 200)
                #expect(try await alice.waitForRequests(1, timeout: .seconds(5)).map(\.uri) == ["/a"])
                #expect(try await backend.waitForRequests(1, timeout: .seconds(5)).map(\.uri) == ["/b"])
            },
            clientAuthority: clients
        )
    }

    @Test func clientWithoutOrWithAWrongCertificateIsRefused() async throws {
        let clients = try TestCertificateAuthority(name: "Clients CA")
        let strangers = try TestCertificateAuthority(name: "Strangers CA")
        try await Self.withClientCertificates(
            { harness, files, backend, alice in
                for certificate in [nil, try strangers.issue(commonName: "alice")] {
                    // With TLS 1.3 the client finishes its handshake before the server has judged its certificate:
                    // the refusal may come at the connect or at the first read.
                    do {
                        let client = try await RawClient.connect(
                            port: harness.port,
                            group: testGroup,
                            tls: try files.client(certificate: certificate),
                            serverHostname: "localhost"
                        )
                        defer { client.close() }
                        try? await client.send("GET / HTTP/1.1\r\nhost: x\r\n\r\n")
                        #expect(try await client.readResponse() == nil)
                    } catch {
                        // Refused during the handshake.
                    }
                }
                #expect(backend.received.isEmpty)
                #expect(alice.received.isEmpty)
            },
            clientAuthority: clients
        )
    }
}

/// A client that opens a TLS connection and never finishes its handshake is not kept.
@Suite("TLS handshake deadline", .serialized)
struct ProxyTLSHandshakeDeadlineTests {
    @Test func aHandshakeThatNeverEndsIsClosedAtTheHeadDeadline() async throws {
        let files = try ProxyTLSTests.ListenerFiles()
        defer { try? FileManager.default.removeItem(at: files.directory) }
        try await ProxyHarness.with(
            .echo,
            configure: {
                $0.tls = files.configuration()
                $0.timeouts.clientHeader = .milliseconds(200)
            }
        ) { harness, _ in
            // A plain TCP connection that sends nothing: no ClientHello, no handshake.
            let client = try await harness.client()
            defer { client.close() }
            #expect(await client.isClosed(within: .seconds(5)))
        }
    }
}
