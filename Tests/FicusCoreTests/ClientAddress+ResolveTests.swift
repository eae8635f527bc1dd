import Testing

@testable import FicusCore

/// Resolves the client of a request from `peer` with `forwardedFor` fields behind `trusted` ranges.
private func resolve(_ peer: String, _ forwardedFor: [String], trusted: [String]) -> String {
    let ranges = trusted.compactMap(CIDR.init)
    let fields = forwardedFor.map { Array($0.utf8) }
    return withBuffers(fields) { buffers in
        ClientAddress.resolve(peer: IPAddress(peer)!, forwardedFor: buffers, trusted: ranges).description
    }
}

/// Calls `body` with raw buffers over each of `arrays`, kept alive for the call.
private func withBuffers<T>(_ arrays: [[UInt8]], _ body: ([UnsafeRawBufferPointer]) -> T) -> T {
    var pointers: [UnsafeMutableRawBufferPointer] = []
    defer { pointers.forEach { $0.deallocate() } }
    for array in arrays {
        let pointer = UnsafeMutableRawBufferPointer.allocate(byteCount: array.count, alignment: 1)
        pointer.copyBytes(from: array)
        pointers.append(pointer)
    }
    return body(pointers.map { UnsafeRawBufferPointer($0) })
}

@Suite("Client address behind trusted proxies (X-Forwarded-For walk)")
struct ClientAddressResolveTests {
    /// An untrusted peer is the client, whatever it claims.
    @Test func untrustedPeerIsTheClient() {
        #expect(resolve("203.0.113.7", ["10.0.0.1"], trusted: ["127.0.0.1"]) == "203.0.113.7")
        #expect(resolve("203.0.113.7", ["10.0.0.1"], trusted: []) == "203.0.113.7")
    }

    /// Behind one trusted load balancer, the last entry is the client.
    @Test func oneTrustedHop() {
        #expect(resolve("10.0.0.5", ["198.51.100.20"], trusted: ["10.0.0.0/8"]) == "198.51.100.20")
    }

    /// A chain of trusted proxies is walked from the right; the first untrusted address is the client.
    @Test func trustedChainIsWalkedFromTheRight() {
        let fields = ["198.51.100.20, 10.1.1.1, 10.2.2.2"]
        #expect(resolve("10.0.0.5", fields, trusted: ["10.0.0.0/8"]) == "198.51.100.20")
    }

    /// A client that writes its own entry on the left gets nothing for it: the right-most untrusted address wins.
    @Test func spoofedLeftMostEntriesAreNotBelieved() {
        let fields = ["1.2.3.4, 127.0.0.1, 198.51.100.20"]
        #expect(resolve("10.0.0.5", fields, trusted: ["10.0.0.0/8", "127.0.0.0/8"]) == "198.51.100.20")
        // A spoofed trusted-looking address beyond an untrusted one is never reached.
        #expect(resolve("10.0.0.5", ["10.9.9.9, 203.0.113.1"], trusted: ["10.0.0.0/8"]) == "203.0.113.1")
    }

    /// Several X-Forwarded-For fields form one list, in the order received.
    @Test func severalFieldsAreOneList() {
        let fields = ["198.51.100.20", "10.1.1.1"]
        #expect(resolve("10.0.0.5", fields, trusted: ["10.0.0.0/8"]) == "198.51.100.20")
        #expect(resolve("10.0.0.5", ["10.1.1.1", "198.51.100.20"], trusted: ["10.0.0.0/8"]) == "198.51.100.20")
    }

    /// When every entry is trusted, the left-most one is the client.
    @Test func allTrustedGivesTheLeftMost() {
        #expect(resolve("10.0.0.5", ["10.3.3.3, 10.4.4.4"], trusted: ["10.0.0.0/8"]) == "10.3.3.3")
    }

    /// Garbage ends the walk at the last address reached (a trusted proxy), as nginx does: it is never believed.
    @Test(arguments: [
        "unknown", "not-an-ip", "999.1.1.1", "1.2.3", "::g", "[::1", "1.2.3.4:99999", "1.2.3.4:", "01.2.3.4",
        "1.2.3.4 5.6.7.8", "\u{1}", String(repeating: "1", count: 100), "[]", "fe80::1%eth0",
    ])
    func garbageStopsTheWalk(entry: String) {
        #expect(resolve("10.0.0.5", [entry], trusted: ["10.0.0.0/8"]) == "10.0.0.5", "\(entry)")
        #expect(resolve("10.0.0.5", ["198.51.100.1, \(entry), 10.1.1.1"], trusted: ["10.0.0.0/8"]) == "10.1.1.1")
    }

    /// Addresses with ports and bracketed IPv6, as some proxies write them.
    @Test func portsAndBracketsAreUnderstood() {
        #expect(resolve("10.0.0.5", ["198.51.100.20:4711"], trusted: ["10.0.0.0/8"]) == "198.51.100.20")
        #expect(resolve("10.0.0.5", ["[2001:db8::7]:443"], trusted: ["10.0.0.0/8"]) == "2001:db8::7")
        #expect(resolve("10.0.0.5", ["[2001:db8::7]"], trusted: ["10.0.0.0/8"]) == "2001:db8::7")
        #expect(resolve("10.0.0.5", ["2001:db8::7"], trusted: ["10.0.0.0/8"]) == "2001:db8::7")
        #expect(resolve("::1", ["2001:db8::7, ::1"], trusted: ["::1/128"]) == "2001:db8::7")
    }

    /// Empty list elements and whitespace around entries are allowed (RFC 9110 5.6.1).
    @Test func emptyElementsAndSpacesAreSkipped() {
        #expect(resolve("10.0.0.5", [" 198.51.100.20 ,, \t"], trusted: ["10.0.0.0/8"]) == "198.51.100.20")
        #expect(resolve("10.0.0.5", [""], trusted: ["10.0.0.0/8"]) == "10.0.0.5")
    }
}
