import Testing

@testable import FicusCore

@Suite("IPAddress parsing and formatting")
struct IPAddressParsingTests {
    @Test(arguments: [
        ("127.0.0.1", "127.0.0.1"),
        ("0.0.0.0", "0.0.0.0"),
        ("255.255.255.255", "255.255.255.255"),
        ("::", "::"),
        ("::1", "::1"),
        ("2001:DB8::1", "2001:db8::1"),
        ("2001:0db8:0000:0000:0000:0000:0000:0001", "2001:db8::1"),
        ("2001:db8:0:0:1:0:0:1", "2001:db8::1:0:0:1"),
        ("2001:db8:0:1:1:1:1:1", "2001:db8:0:1:1:1:1:1"),
        ("fe80::", "fe80::"),
        ("1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7:8"),
        ("1::8", "1::8"),
        ("::ffff:10.0.0.1", "::ffff:10.0.0.1"),
        ("::FFFF:a00:1", "::ffff:10.0.0.1"),
        ("64:ff9b::192.0.2.33", "64:ff9b::c000:221"),
    ])
    func parsesAndFormatsCanonically(text: String, canonical: String) throws {
        let address = try #require(IPAddress(text))
        #expect(address.description == canonical)
        #expect(IPAddress(canonical) == address)
    }

    @Test(arguments: [
        "", "1.2.3", "1.2.3.4.5", "256.1.1.1", "01.2.3.4", "1.2.3.4 ", "a.b.c.d", "1..2.3",
        ":", ":::", "1:2:3:4:5:6:7:8:9", "1::2::3", ":1::", "1:", "12345::", "fe80::1%eth0", "[::1]",
        "::ffff:1.2.3", "1:2:3:4:5:6:7:1.2.3.4",
    ])
    func rejectsMalformedText(text: String) {
        #expect(IPAddress(text) == nil)
    }

    @Test func distinguishesFamiliesWithEqualBits() throws {
        let v4 = try #require(IPAddress("0.0.0.1"))
        let v6 = try #require(IPAddress("::1"))
        #expect(v4 != v6)
        #expect(v4.isIPv4)
        #expect(!v6.isIPv4)
        #expect(v4.ipv4Value == 1)
    }

    @Test func unmapsIPv4MappedAddresses() throws {
        let mapped = try #require(IPAddress("::ffff:192.168.1.2"))
        #expect(mapped.unmapped == IPAddress("192.168.1.2"))
        #expect(IPAddress("::1")?.unmapped == IPAddress("::1"))
    }

    @Test func parsesUTF8Bytes() {
        #expect(IPAddress(utf8: Array("10.1.2.3".utf8)) == IPAddress(ipv4: 0x0A01_0203))
        #expect(IPAddress(utf8: "2001:db8::".utf8[...]) == IPAddress(ipv6High: 0x2001_0db8_0000_0000, low: 0))
        #expect(IPAddress(utf8: Array("nope".utf8)) == nil)
    }
}
