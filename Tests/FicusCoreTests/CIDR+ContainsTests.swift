import Testing

@testable import FicusCore

@Suite("CIDR")
struct CIDRContainsTests {
    @Test(arguments: [
        ("10.0.0.0/8", "10.255.1.2", true),
        ("10.0.0.0/8", "11.0.0.1", false),
        ("10.1.2.3/8", "10.9.9.9", true),
        ("192.168.1.0/24", "192.168.1.255", true),
        ("192.168.1.0/24", "192.168.2.0", false),
        ("0.0.0.0/0", "203.0.113.9", true),
        ("0.0.0.0/0", "::1", false),
        ("127.0.0.1", "127.0.0.1", true),
        ("127.0.0.1", "127.0.0.2", false),
        ("::1/128", "::1", true),
        ("::1", "::2", false),
        ("2001:db8::/32", "2001:db8:ffff::1", true),
        ("2001:db8::/32", "2001:db9::1", false),
        ("2001:db8::/64", "2001:db8::ffff:1", true),
        ("2001:db8::/65", "2001:db8::8000:0:0:1", false),
        ("::/0", "::1", true),
        ("10.0.0.0/8", "::ffff:10.2.3.4", true),
        ("::ffff:0:0/96", "10.2.3.4", true),
    ])
    func containsAddresses(range: String, address: String, expected: Bool) throws {
        let cidr = try #require(CIDR(range))
        let ip = try #require(IPAddress(address))
        #expect(cidr.contains(ip) == expected)
    }

    @Test func clearsHostBitsAndPrints() throws {
        #expect(CIDR("10.1.2.3/8")?.description == "10.0.0.0/8")
        #expect(CIDR("10.1.2.3/8") == CIDR("10.0.0.0/8"))
        #expect(CIDR("::1")?.description == "::1/128")
        #expect(CIDR("2001:db8::1/32")?.description == "2001:db8::/32")
    }

    @Test(arguments: ["", "10.0.0.0/33", "::/129", "10.0.0.0/", "10.0.0.0/-1", "10.0.0.0/8/8", "x/8", "10.0.0/8"])
    func rejectsMalformedRanges(text: String) {
        #expect(CIDR(text) == nil)
    }
}
