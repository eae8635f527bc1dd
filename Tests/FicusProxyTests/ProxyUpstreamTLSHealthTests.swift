import FicusCore
import FicusTesting
import Foundation
import NIOCore
import Testing

@testable import FicusProxy

/// Health checks of `https://` upstreams and reloads of upstream TLS files (issue 19 item 2: "Shadow and
/// health-check pools use the same settings"), through a real proxy and real TLS upstreams.
@Suite("Health checks and reloads of TLS upstreams through a real proxy", .serialized)
struct ProxyUpstreamTLSHealthTests {
    typealias Backend = ProxyHealthCheckTests.Backend

    /// A CA and a temporary directory with its certificate in `ca.pem`, for HTTPS backends it issues certificates to.
    struct Fixture {
        let authority: TestCertificateAuthority
        let directory: URL
        let ca: String

        init() throws {
            self.authority = try TestCertificateAuthority()
            self.directory = try TestTLS.temporaryDirectory()
            self.ca = self.directory.appendingPathComponent("ca.pem").path
            try self.write("ca.pem", self.authority.certificatePEM)
        }

        /// Writes `text` to `name` in the directory (replacing it) and returns its path.
        @discardableResult
        func write(_ name: String, _ text: String) throws -> String {
            let url = self.directory.appendingPathComponent(name)
            try Data(text.utf8).write(to: url, options: .atomic)
            return url.path
        }

        /// A backend presenting `certificate` (one of the CA's for `backend`, 127.0.0.1 and localhost by default),
        /// demanding client certificates of `clientAuthority` when given.
        func backend(
            _ name: String, certificate: TestCertificate? = nil, clientAuthority: String? = nil
        ) async throws -> Backend {
            let certificate = try certificate ?? self.authority.issue(commonName: "backend")
            return try await Backend(name, tls: try certificate.serverContext(clientAuthority: clientAuthority))
        }

        /// `orders` at `https://HOST:PORT` of `backend` with `caFile` (the CA's file by default) and, unless
        /// `checked` is false, a health check every 100 ms with one answer deciding either way; and the address.
        func upstream(
            _ backend: Backend, host: String = "127.0.0.1", caFile: String? = nil, checked: Bool = true
        ) -> (Upstream, String) {
            let address = "https://\(host):\(backend.upstream.port)"
            var upstream = Upstream(name: "orders", addresses: [Endpoint(parsing: address)!])
            upstream.caFile = caFile ?? self.ca
            if checked {
                upstream.healthCheck = HealthCheckPolicy(
                    path: "/healthz", interval: TimeSpan(milliseconds: 100), healthy: 1, unhealthy: 1)
            }
            return (upstream, address)
        }

        func remove() { try? FileManager.default.removeItem(at: self.directory) }
    }

    /// Runs `body` against a proxy whose only upstream is `upstream`, then stops it and `backend`.
    static func with(
        _ upstream: Upstream, _ backend: Backend, _ body: (ProxyHarness) async throws -> Void
    ) async throws {
        let configuration = Configuration.catchAll(upstreams: [upstream], defaultUpstream: upstream.name)
        try await ProxyHealthCheckTests.with(configuration, backends: [backend], body)
    }

    /// The state `/upstreams` reports for `address`.
    static func state(_ harness: ProxyHarness, _ address: String) -> UpstreamAddressState? {
        harness.proxy.upstreamStates().first { $0.address == address }
    }

    /// Whether `address` has `health` (`healthy`, `unhealthy`) within 10 s.
    static func turns(_ health: String, _ harness: ProxyHarness, _ address: String) async throws -> Bool {
        try await ProxyHealthCheckTests.eventually { Self.state(harness, address)?.healthCheck == health }
    }

    @Test func anHTTPSAddressIsCheckedOverTLSAndStaysInRotation() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let backend = try await fixture.backend("tls")
        let (upstream, address) = fixture.upstream(backend)
        try await Self.with(upstream, backend) { harness async throws in
            #expect(try await ProxyHealthCheckTests.eventually { backend.checks.count >= 3 })
            let check = try #require(backend.checks.first)
            #expect(check.uri == "/healthz")
            // The Host field names the address without its scheme.
            #expect(check.header("host") == "127.0.0.1:\(backend.upstream.port)")
            #expect(Self.state(harness, address)?.healthCheck == "healthy")
            #expect(Self.state(harness, address)?.healthCheckFailure == nil)
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/o/1").bodyString == "tls")
        }
    }

    @Test func anAddressWhoseCertificateFailsVerificationIsUnhealthyWithTheReason() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let otherCA = try fixture.write("other.pem", try TestCertificateAuthority(name: "Other CA").certificatePEM)
        let otherName = try fixture.authority.issue(commonName: "backend", dnsNames: ["other.example"], ipAddresses: [])
        // Another CA's file; then the right CA but a certificate for another host name.
        for (certificate, host, ca) in [(nil, "127.0.0.1", otherCA), (otherName, "localhost", fixture.ca)] {
            let backend = try await fixture.backend("tls", certificate: certificate)
            let (upstream, address) = fixture.upstream(backend, host: host, caFile: ca)
            try await Self.with(upstream, backend) { harness async throws in
                #expect(try await Self.turns("unhealthy", harness, address), "\(host)")
                let failure = Self.state(harness, address)?.healthCheckFailure ?? ""
                #expect(failure.hasPrefix("GET /healthz: TLS handshake with \(address) failed"), "\(failure)")
                #expect(harness.proxy.upstreamStatesJSON().contains("\"health_check_failure\""))
                // Nothing of a check is sent before the handshake: the upstream saw no request at all.
                #expect(backend.upstream.received.isEmpty)
                let client = try await harness.client()
                defer { client.close() }
                #expect(try await client.request(path: "/o/1").status == 503, "every address is out of rotation")
            }
        }
    }

    @Test func aRefusedConnectIsTheReasonOfAnHTTPSAddressWithNothingListening() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let backend = try await fixture.backend("gone")
        let (upstream, address) = fixture.upstream(backend)
        try await backend.upstream.shutdown()
        try await Self.with(upstream, backend) { harness async throws in
            #expect(try await Self.turns("unhealthy", harness, address))
            let failure = Self.state(harness, address)?.healthCheckFailure ?? ""
            #expect(failure.contains("onnection refused") && !failure.contains("TLS handshake"), "\(failure)")
        }
    }

    @Test func checksPresentTheClientCertificateAnUpstreamDemands() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let clients = try TestCertificateAuthority(name: "Facade clients CA")
        let facade = try clients.issue(commonName: "ficus").write(to: fixture.directory, name: "facade")
        for presented in [true, false] {
            let backend = try await fixture.backend("mtls", clientAuthority: clients.certificatePEM)
            var (upstream, address) = fixture.upstream(backend)
            upstream.clientCert = presented ? facade.certificate : nil
            upstream.clientKey = presented ? facade.key : nil
            try await Self.with(upstream, backend) { harness async throws in
                #expect(try await Self.turns(presented ? "healthy" : "unhealthy", harness, address))
                if presented {
                    #expect(try await ProxyHealthCheckTests.eventually { backend.checks.count >= 2 })
                    #expect(Self.state(harness, address)?.healthCheck == "healthy")
                } else {
                    #expect(backend.checks.isEmpty)
                }
            }
        }
    }

    @Test func aFailingCheckOverTLSTakesTheAddressOutAndAPassingOneBringsItBack() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let backend = try await fixture.backend("tls")
        let (upstream, address) = fixture.upstream(backend)
        try await Self.with(upstream, backend) { harness async throws in
            backend.health.withLockedValue { $0 = 503 }
            #expect(try await Self.turns("unhealthy", harness, address))
            #expect(Self.state(harness, address)?.healthCheckFailure == "GET /healthz: status 503")
            backend.health.withLockedValue { $0 = 200 }
            #expect(try await Self.turns("healthy", harness, address))
            #expect(Self.state(harness, address)?.healthCheckFailure == nil)
        }
    }

    // MARK: - Reloads of upstream TLS files

    @Test func aRotatedCAFileIsUsedByNewConnectionsWhilePooledOnesStay() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let other = try TestCertificateAuthority(name: "Other CA")
        let ca = try fixture.write("ca.pem", other.certificatePEM)
        let backend = try await fixture.backend("tls")
        let (upstream, _) = fixture.upstream(backend, checked: false)
        try await Self.with(upstream, backend) { harness async throws in
            let client = try await harness.client()
            defer { client.close() }
            // The file trusts another CA: refused.
            #expect(try await client.request(path: "/before").status == 502)
            #expect(harness.proxy.reloadUpstreamTLS().replaced.isEmpty, "nothing changed yet")

            // The right CA is written: the next connection trusts it, without a restart.
            try fixture.write("ca.pem", fixture.authority.certificatePEM)
            let reload = harness.proxy.reloadUpstreamTLS()
            #expect(reload.replaced == [[ca]] && reload.failures.isEmpty, "\(reload)")
            #expect(try await client.request(path: "/after").status == 200)
            let accepted = backend.upstream.connectionsAccepted

            // Rotated away again: the pooled connection is not dropped (it keeps its session) ...
            try fixture.write("ca.pem", other.certificatePEM)
            #expect(harness.proxy.reloadUpstreamTLS().replaced == [[ca]])
            backend.upstream.setBehavior(.closeAfterResponse(.echo))
            #expect(try await client.request(path: "/pooled").status == 200)
            #expect(backend.upstream.connectionsAccepted == accepted, "served on the pooled connection")
            // ... and the next new connection uses the new file.
            #expect(try await client.request(path: "/new").status == 502)

            // A file that cannot be used keeps the last good context, and the reload names it (once).
            try fixture.write("ca.pem", fixture.authority.certificatePEM)
            #expect(harness.proxy.reloadUpstreamTLS().replaced == [[ca]])
            try fixture.write("ca.pem", "-----BEGIN CERTIFICATE-----\nhalf written\n")
            let failed = harness.proxy.reloadUpstreamTLS()
            #expect(failed.replaced.isEmpty)
            #expect(failed.failures.map(\.file) == [ca], "\(failed)")
            #expect(harness.proxy.reloadUpstreamTLS().failures.isEmpty, "the same failure is reported once")
            #expect(try await client.request(path: "/last-good").status == 200)
            try FileManager.default.removeItem(atPath: ca)
            #expect(harness.proxy.reloadUpstreamTLS().failures.first?.reason == "cannot be read")
            #expect(try await client.request(path: "/still").status == 200)
            #expect(backend.upstream.received.map(\.uri) == ["/after", "/pooled", "/last-good", "/still"])

            // A revision that no longer names the file: its context is dropped, and the missing file is no error.
            var plain = upstream
            plain.caFile = nil
            let configuration = Configuration.catchAll(upstreams: [plain], defaultUpstream: "orders")
            harness.routing.replace(with: try RoutingTable(configuration: configuration, revision: 2))
            #expect(harness.proxy.reloadUpstreamTLS(force: true) == UpstreamTLSReload(replaced: [], failures: []))
        }
    }

    @Test func aRotatedClientCertificateIsPresentedByNewConnectionsAndChecks() async throws {
        let fixture = try Fixture()
        defer { fixture.remove() }
        let clients = try TestCertificateAuthority(name: "Facade clients CA")
        let paths = try TestCertificateAuthority(name: "Stranger CA").issue(commonName: "ficus")
            .write(to: fixture.directory, name: "facade")
        let backend = try await fixture.backend("mtls", clientAuthority: clients.certificatePEM)
        var (upstream, address) = fixture.upstream(backend)
        upstream.clientCert = paths.certificate
        upstream.clientKey = paths.key
        try await Self.with(upstream, backend) { harness async throws in
            #expect(try await Self.turns("unhealthy", harness, address))
            // Renewed by the upstream's CA: after the reload, checks and requests present the new certificate.
            try clients.issue(commonName: "ficus").write(to: fixture.directory, name: "facade")
            #expect(harness.proxy.reloadUpstreamTLS().replaced == [[fixture.ca, paths.certificate, paths.key]])
            #expect(try await Self.turns("healthy", harness, address))
            let client = try await harness.client()
            defer { client.close() }
            #expect(try await client.request(path: "/o/1").bodyString == "mtls")
        }
    }
}
