import Testing

@testable import FicusCore

@Suite("Endpoint")
struct EndpointParsingTests {
    @Test(arguments: [
        ("127.0.0.1:8080", "127.0.0.1", 8080),
        ("localhost:80", "localhost", 80),
        ("[::1]:8080", "::1", 8080),
        ("[2001:db8::1]:65535", "2001:db8::1", 65535),
        ("orders.internal:1", "orders.internal", 1),
    ])
    func parsesHostAndPort(text: String, host: String, port: Int) throws {
        let endpoint = try #require(Endpoint(parsing: text))
        #expect(endpoint == Endpoint(host: host, port: port))
        #expect(endpoint.description == text)
    }

    @Test(arguments: [
        "", "localhost", "localhost:", ":80", "localhost:0", "localhost:65536", "localhost:80x", "::1:80", "[::1]",
        "[::1]80", "[10.0.0.1]:80", "[nope]:80", "a b:80", "host:+80",
    ])
    func rejectsMalformedEndpoints(text: String) {
        #expect(Endpoint(parsing: text) == nil)
    }
}
