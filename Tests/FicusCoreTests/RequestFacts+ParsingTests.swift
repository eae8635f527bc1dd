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

    @Test func readsCookies() {
        let facts = RequestFacts(target: "/", headers: [("Cookie", "a=1; b=\"two\";c="), ("cookie", "d=4")])
        #expect(facts.cookie("a") == "1")
        #expect(facts.cookie("b") == "two")
        #expect(facts.cookie("c") == "")
        #expect(facts.cookie("d") == "4")
        #expect(facts.cookie("A") == nil)
    }
}
