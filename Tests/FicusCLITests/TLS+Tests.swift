import FicusTesting
import Foundation
import NIOCore
import NIOPosix
import NIOSSL
import Testing

#if canImport(Glibc)
    import Glibc
#endif

extension CLITests {
    /// `ficus serve --tls-cert/--tls-key` and `https://` upstreams, end to end through the executable.
    @Suite(.serialized) struct TLSServe {
        /// GETs `/` over TLS with `context` until the answer is 200, for up to 10 s; false if it never is.
        static func servedOverTLS(port: Int, context: NIOSSLContext, group: any EventLoopGroup) async -> Bool {
            let deadline = ContinuousClock.now + .seconds(10)
            while ContinuousClock.now < deadline {
                if let client = try? await RawClient.connect(
                    port: port, group: group, tls: context, serverHostname: "localhost"
                ) {
                    let status = try? await client.request(path: "/", timeout: .seconds(2)).status
                    client.close()
                    if status == 200 { return true }
                }
                try? await Task.sleep(for: .milliseconds(50))
            }
            return false
        }

        @Test func servesHTTPSToAnHTTPSUpstreamAndReloadsOnSIGHUP() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let sandbox = try Sandbox()
            let authority = try TestCertificateAuthority()
            let serverFiles = try authority.issue(commonName: "localhost")
                .write(to: sandbox.directory, name: "listener")
            let caPath = try sandbox.write("ca.pem", authority.certificatePEM)
            let upstream = try await TestUpstream.start(
                .echo,
                group: group,
                tls: try authority.issue(commonName: "backend").serverContext()
            )
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "backend", "https://127.0.0.1:\(upstream.port)", "--ca-file", caPath)
            try sandbox.ok("route", "add", "all", "--prefix", "/", "--to", "backend")
            let listed = try sandbox.ok("upstream", "list")
            #expect(listed.stdout.contains("https://127.0.0.1:\(upstream.port)"))
            #expect(listed.stdout.contains("ca=\(caPath)"))

            let server = try AgainstServe.Server(
                store: sandbox.store,
                directory: sandbox.directory,
                extraArguments: ["--tls-cert", serverFiles.certificate, "--tls-key", serverFiles.key]
            )
            defer { server.stop() }
            let trusting = try TestTLS.clientContext(trusting: authority.certificatePEM)
            #expect(await Self.servedOverTLS(port: server.port, context: trusting, group: group))
            let received = try await upstream.waitForRequests(1, timeout: .seconds(5))
            #expect(received[0].header("x-forwarded-proto") == "https")

            // A renewal from another CA, then SIGHUP: new connections get the new certificate.
            let renewed = try TestCertificateAuthority(name: "Renewed CA")
            try renewed.issue(commonName: "localhost").write(to: sandbox.directory, name: "listener")
            kill(server.process.processIdentifier, SIGHUP)
            let trustingRenewed = try TestTLS.clientContext(trusting: renewed.certificatePEM)
            #expect(await Self.servedOverTLS(port: server.port, context: trustingRenewed, group: group))
            #expect(server.process.isRunning)

            server.stop()
            try await upstream.shutdown()
            try await group.shutdownGracefully()
        }

        /// GETs `/` on `port` until the status is `expected`, for up to 15 s (the TLS files are checked every 5 s);
        /// the last status seen.
        static func waitForStatus(_ expected: Int, port: Int, group: any EventLoopGroup) async -> Int {
            let deadline = ContinuousClock.now + .seconds(15)
            var last = 0
            while ContinuousClock.now < deadline {
                let response = try? await HTTPTestClient.get(port: port, path: "/", group: group, timeout: .seconds(2))
                last = response?.status ?? 0
                if last == expected { return last }
                try? await Task.sleep(for: .milliseconds(100))
            }
            return last
        }

        @Test func serveChecksAnHTTPSUpstreamOverTLSAndReloadsItsCAFileWithoutARestart() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let sandbox = try Sandbox()
            let authority = try TestCertificateAuthority()
            let caPath = try sandbox.write("ca.pem", try TestCertificateAuthority(name: "Other CA").certificatePEM)
            let upstream = try await TestUpstream.start(
                .fixed(status: 200, headers: [], body: Array("tls".utf8)),
                group: group,
                tls: try authority.issue(commonName: "backend").serverContext()
            )
            let address = "https://127.0.0.1:\(upstream.port)"
            try sandbox.ok("init")
            try sandbox.ok("upstream", "add", "backend", address, "--ca-file", caPath)
            try sandbox.ok(
                "upstream", "set", "backend", "--health-check", "/healthz", "--health-check-interval", "200ms",
                "--healthy", "1", "--unhealthy", "1")
            try sandbox.ok("route", "add", "all", "--prefix", "/", "--to", "backend")
            // A plain listener: the upstream TLS files are watched without --tls-cert.
            let server = try ServeLogging.Server(["--store", sandbox.store], directory: sandbox.directory)
            defer { server.stop() }
            // Another CA's file: the checks fail over TLS, and the address is out of rotation.
            #expect(await Self.waitForStatus(503, port: server.port, group: group) == 503)

            // The right CA is written: the periodic check picks it up, no signal, no restart.
            _ = try sandbox.write("ca.pem", authority.certificatePEM)
            #expect(await Self.waitForStatus(200, port: server.port, group: group) == 200)

            // A broken file and SIGHUP: the proxy keeps running with the last good CA.
            _ = try sandbox.write("ca.pem", "not a certificate\n")
            kill(server.process.processIdentifier, SIGHUP)
            #expect(await server.waitForLog("upstream TLS file cannot be used"), "the broken file is reported")
            #expect(server.process.isRunning)
            let fresh = try await HTTPTestClient.get(port: server.port, path: "/", group: group, timeout: .seconds(2))
            #expect(fresh.status == 200 && fresh.bodyString == "tls")
            #expect(upstream.received.contains { $0.uri == "/healthz" }, "checks pass over TLS")

            let log = server.stop()
            #expect(log.contains("address unhealthy") && log.contains("TLS handshake with \(address) failed"), "\(log)")
            #expect(log.contains("upstream TLS files reloaded"), "\(log)")
            #expect(log.contains("upstream TLS file cannot be used") && log.contains(caPath), "\(log)")
            try await upstream.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func curlSpeaksHTTP2ToServe() async throws {
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let sandbox = try Sandbox()
            let authority = try TestCertificateAuthority()
            let files = try authority.issue(commonName: "localhost").write(to: sandbox.directory, name: "listener")
            let caPath = try sandbox.write("ca.pem", authority.certificatePEM)
            let upstream = try await TestUpstream.start(.echo, group: group)
            let port = try freePort()
            let process = Process()
            process.executableURL = FicusProcess.binary
            process.arguments = [
                "serve", "--upstream", "backend=\(upstream.address)", "--default", "backend",
                "--listen", "127.0.0.1:\(port)", "--admin", "127.0.0.1:\(try freePort())", "--threads", "1",
                "--access-log", "off", "--tls-cert", files.certificate, "--tls-key", files.key,
            ]
            process.standardOutput = FileHandle.nullDevice
            process.standardError = FileHandle.nullDevice
            try process.run()
            defer {
                if process.isRunning { process.terminate() }
                process.waitUntilExit()
            }
            // curl retries until the listener is up, then prints the protocol it used and the answer's header.
            let curl = Process()
            curl.executableURL = URL(fileURLWithPath: "/usr/bin/curl")
            curl.arguments = [
                "--silent", "--show-error", "--http2", "--cacert", caPath, "--retry", "20", "--retry-connrefused",
                "--retry-delay", "0", "--max-time", "20", "--include", "--write-out", "\\nversion=%{http_version}",
                "https://localhost:\(port)/h2/path?x=1",
            ]
            let output = Pipe()
            curl.standardOutput = output
            curl.standardError = FileHandle.nullDevice
            try curl.run()
            let data = output.fileHandleForReading.readDataToEndOfFile()
            curl.waitUntilExit()
            let text = String(decoding: data, as: UTF8.self)
            #expect(curl.terminationStatus == 0, "\(text)")
            #expect(text.contains("version=2"), "\(text)")
            #expect(text.lowercased().contains("x-echo-uri: /h2/path?x=1"), "\(text)")
            try await upstream.shutdown()
            try await group.shutdownGracefully()
        }

        @Test func tlsOptionsAreCheckedTogether() throws {
            let sandbox = try Sandbox()
            let base = ["serve", "--upstream", "a=127.0.0.1:1", "--default", "a"]
            let onlyCert = try sandbox.bare(base + ["--tls-cert", "x"])
            #expect(onlyCert.status != 0)
            #expect(onlyCert.stderr.contains("--tls-cert and --tls-key go together"))
            let onlyCA = try sandbox.bare(base + ["--tls-client-ca", "x"])
            #expect(onlyCA.status != 0)
            #expect(onlyCA.stderr.contains("--tls-client-ca needs --tls-cert"))
            let missing = try sandbox.bare(
                base + [
                    "--listen", "127.0.0.1:\(try freePort())", "--admin", "127.0.0.1:\(try freePort())",
                    "--tls-cert", "/nonexistent.pem", "--tls-key", "/nonexistent.key",
                ]
            )
            #expect(missing.status != 0)
            #expect(missing.stderr.contains("/nonexistent.pem"))
        }
    }
}

extension CLITests.TLSServe {
    @Test func explainTakesAClientCertificateSubject() throws {
        let sandbox = try Sandbox()
        let rules = try sandbox.write(
            "rules.yaml",
            """
            upstreams:
              - name: legacy
                addresses: ["127.0.0.1:9001"]
              - name: partners
                addresses: ["https://partners.internal:8443"]
                ca_file: /etc/ficus/ca.pem
            routes:
              - name: api
                legacy: legacy
                rules:
                  - name: partner
                    condition:
                      match: {attribute: client_cert_subject, op: prefix, values: ["CN=partner-"]}
                    upstream: partners
            """
        )
        try sandbox.ok("init", "--from", rules)
        let partner = try sandbox.ok(
            "explain", "GET", "/orders", "--client-cert-subject", "CN=partner-7,O=Example", "--json")
        let partnerJSON = try #require(try decodeJSON(partner.stdout) as? [String: Any])
        #expect(partnerJSON["upstream"] as? String == "partners")
        let anyone = try sandbox.ok("explain", "GET", "/orders", "--json")
        let anyoneJSON = try #require(try decodeJSON(anyone.stdout) as? [String: Any])
        #expect(anyoneJSON["upstream"] as? String == "legacy")
        let exported = try sandbox.ok("export")
        #expect(exported.stdout.contains("ca_file"))
        #expect(exported.stdout.contains("https://partners.internal:8443"))
    }
}
