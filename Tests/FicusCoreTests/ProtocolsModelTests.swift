import Foundation
import Testing

@testable import FicusCore

/// The configuration model of issue 19: `https://` addresses, upstream TLS files, the client certificate attribute.
@Suite("TLS and client certificate model")
struct ProtocolsModelTests {
    @Test func upstreamTLSFieldsRoundTripAndOldSnapshotsStillDecode() throws {
        let old = #"{"name":"orders","addresses":["10.0.0.1:80"]}"#
        let decoded = try JSONDecoder().decode(Upstream.self, from: Data(old.utf8))
        #expect(decoded.caFile == nil && decoded.clientCert == nil && decoded.clientKey == nil)
        // Unchanged bytes for an upstream without TLS settings: stored hashes stay valid.
        let encoder = JSONEncoder()
        encoder.outputFormatting = .sortedKeys
        let encoded = String(decoding: try encoder.encode(decoded), as: UTF8.self)
        #expect(encoded == #"{"addresses":["10.0.0.1:80"],"name":"orders"}"#)

        var upstream = Upstream(name: "orders", addresses: [Endpoint(host: "orders.internal", port: 8443, tls: true)])
        upstream.caFile = "/etc/ficus/ca.pem"
        upstream.clientCert = "/etc/ficus/facade.pem"
        upstream.clientKey = "/etc/ficus/facade.key"
        let json = String(decoding: try encoder.encode(upstream), as: UTF8.self)
        #expect(json.contains(#""ca_file":"\/etc\/ficus\/ca.pem""#))
        #expect(json.contains(#""https:\/\/orders.internal:8443""#))
        #expect(try JSONDecoder().decode(Upstream.self, from: Data(json.utf8)) == upstream)
    }

    @Test func endpointObjectFormMayNameTLS() throws {
        let endpoint = try JSONDecoder().decode(Endpoint.self, from: Data(#"{"host":"a","port":1,"tls":true}"#.utf8))
        #expect(endpoint == Endpoint(host: "a", port: 1, tls: true))
    }

    @Test func clientCertificateWithoutKeyIsReported() {
        var upstream = Upstream(name: "orders", addresses: [Endpoint(host: "orders.internal", port: 8443, tls: true)])
        upstream.clientCert = "/etc/ficus/facade.pem"
        upstream.caFile = ""
        let configuration = Configuration.catchAll(upstreams: [upstream], defaultUpstream: "orders")
        let messages = configuration.validate().map(\.description)
        #expect(messages.count == 2)
        #expect(messages.contains { $0.contains("client_cert") && $0.contains("go together") })
        #expect(messages.contains { $0.contains("ca_file") && $0.contains("must not be empty") })
    }

    @Test func clientCertSubjectIsAnAttribute() throws {
        let attribute = try #require(Attribute("client_cert_subject"))
        #expect(attribute == .clientCertSubject)
        #expect(attribute.description == "client_cert_subject")

        let table = try RoutingTable(
            configuration: Configuration(
                upstreams: [
                    Upstream(name: "legacy", addresses: [Endpoint(host: "10.0.0.1", port: 80)]),
                    Upstream(name: "partners", addresses: [Endpoint(host: "10.0.0.2", port: 80)]),
                ],
                routes: [
                    Route(
                        name: "api",
                        legacy: "legacy",
                        rules: [
                            Rule(
                                name: "partner",
                                condition: .match(Predicate(.clientCertSubject, .prefix, ["CN=partner-"])),
                                upstream: "partners"
                            )
                        ]
                    )
                ]
            ),
            revision: 1
        )
        var request = RequestFacts(target: "/orders")
        #expect(table.decide(request).upstream == "legacy")
        request.clientCertificateSubject = "CN=partner-7,O=Example"
        #expect(table.decide(request).upstream == "partners")
        request.clientCertificateSubject = "CN=someone,O=Example"
        #expect(table.decide(request).upstream == "legacy")
    }

    @Test func previewUpstreamKeepsTheTLSSettings() throws {
        var upstream = Upstream(
            name: "orders",
            slots: BlueGreenSlots(
                blue: [Endpoint(host: "blue", port: 443, tls: true)],
                green: [Endpoint(host: "green", port: 443, tls: true)],
                active: .blue
            )
        )
        upstream.caFile = "/ca.pem"
        upstream.healthCheck = HealthCheckPolicy(path: "/healthz")
        let table = try RoutingTable(
            configuration: .catchAll(upstreams: [upstream], defaultUpstream: "orders"),
            revision: 1
        )
        #expect(table.upstream(named: "orders@green")?.caFile == "/ca.pem")
        // The idle slot is health-checked as the upstream is, under the upstream's name.
        #expect(table.upstream(named: "orders@green")?.healthCheck == HealthCheckPolicy(path: "/healthz"))
        #expect(Upstream.configuredName("orders@green") == "orders" && Upstream.configuredName("orders") == "orders")
        #expect(upstream.addressesOfEverySlot.map(\.host) == ["blue", "green"])
    }
}
