import Testing

@testable import FicusCore

@Suite("RequestFacts")
struct RequestFactsParsingTests {
    @Test func splitsOriginFormTargets() {
        let facts = RequestFacts(
            method: "POST",
            target: "/orders/7?expand=1&x=2#frag",
            headers: [("Host", "API.example.com:8080"), ("X-A", "1")],
            clientAddress: IPAddress("10.0.0.1")
        )
        #expect(facts.method == "POST")
        #expect(facts.host == "API.example.com")
        #expect(facts.path == "/orders/7")
        #expect(facts.query == "expand=1&x=2")
        #expect(facts.header("x-a") == "1")
        #expect(facts.header("X-B") == nil)
        #expect(facts.clientAddress == IPAddress("10.0.0.1"))
    }

    @Test func readsTheHostOfAbsoluteTargets() {
        let facts = RequestFacts(target: "https://user@[::1]:8443?q", headers: [("Host", "ignored")])
        #expect(facts.host == "[::1]")
        #expect(facts.path == "/")
        #expect(facts.query == "q")
        #expect(RequestFacts(target: "/").host == nil)
        #expect(RequestFacts(target: "").path == "/")
    }

    @Test func looksUpHeadersWithoutRegardToASCIICase() {
        let facts = RequestFacts(
            target: "/",
            headers: [
                ("Accept", "a"), ("Accept-Encoding", "b"), ("X-Request-Id", "c"), ("x-request-ix", "d"),
                ("X-REQUEST-ID", "second"), ("Kelvin-\u{212A}", "k"), ("X-Ünï", "u"), ("e\u{301}", "decomposed"),
            ]
        )
        #expect(facts.header("accept") == "a")
        #expect(facts.header("ACCEPT-encoding") == "b")
        #expect(facts.header("accept-encodinG") == "b")
        #expect(facts.header("x-request-id") == "c")
        #expect(facts.header("X-Request-IX") == "d")
        #expect(facts.header("x-request-i") == nil)
        #expect(facts.header("x-request-idx") == nil)
        #expect(facts.header("") == nil)
        // Names are stored as `lowercased()` gives them and compared as `String`s when not ASCII.
        #expect(facts.header("kelvin-k") == "k")
        #expect(facts.header("KELVIN-K") == "k")
        #expect(facts.header("x-ünï") == "u")
        #expect(facts.header("X-ÜNÏ") == "u")
        #expect(facts.header("x-Ünï") == nil)
        #expect(facts.header("\u{e9}") == "decomposed")
    }

    @Test func readsCookies() {
        let facts = RequestFacts(target: "/", headers: [("Cookie", "a=1; b=\"two\";c="), ("cookie", "d=4")])
        #expect(facts.cookie("a") == "1")
        #expect(facts.cookie("b") == "two")
        #expect(facts.cookie("c") == "")
        #expect(facts.cookie("d") == "4")
        #expect(facts.cookie("A") == nil)
    }
}
