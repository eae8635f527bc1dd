/// Who the client of a request is, behind any number of trusted proxies.
///
/// A peer that is a trusted proxy reports the addresses it saw in `X-Forwarded-For`; the client is the right-most
/// address of that list that is not itself a trusted proxy (nginx's `real_ip_recursive on`). Everything left of it
/// was written by the client or by proxies nobody vouches for, so it is never believed: a client that sends
/// `X-Forwarded-For: 10.0.0.1` through a trusted load balancer is still seen as itself.
public enum ClientAddress {
    /// The client address of a request that arrived from `peer` with the `X-Forwarded-For` values `forwardedFor`
    /// (every field, in the order received), given the trusted proxy ranges.
    ///
    /// An untrusted peer is the client, whatever it sent. Walking from the right, each trusted address lets the walk
    /// continue; the first address that is not trusted is the client. An entry that is not an address (garbage, a
    /// name, `unknown`) ends the walk at the last address reached, which is a trusted proxy, as nginx does: the
    /// garbage is not believed, and the proxy that forwarded it is the best that is known. When every entry is
    /// trusted, the left-most is the client.
    public static func resolve(
        peer: IPAddress,
        forwardedFor: [UnsafeRawBufferPointer],
        trusted: [CIDR]
    ) -> IPAddress {
        guard !trusted.isEmpty, Self.isTrusted(peer, trusted) else { return peer }
        var current = peer
        for value in forwardedFor.reversed() {
            var end = value.count
            while end > 0 {
                // One entry: the bytes after the last comma before `end`.
                var start = end
                while start > 0 && value[start - 1] != 0x2C { start -= 1 }
                let entry = UnsafeRawBufferPointer(rebasing: value[start..<end])
                end = start > 0 ? start - 1 : 0
                guard let trimmed = Self.trim(entry) else { continue }  // empty list elements are allowed
                guard let address = Self.parseEntry(trimmed) else { return current }
                current = address
                if !Self.isTrusted(address, trusted) { return address }
            }
        }
        return current
    }

    /// Whether `address` lies in one of the trusted ranges.
    public static func isTrusted(_ address: IPAddress, _ trusted: [CIDR]) -> Bool {
        for range in trusted where range.contains(address) { return true }
        return false
    }

    /// The entry without surrounding spaces and tabs, or nil when nothing is left.
    private static func trim(_ entry: UnsafeRawBufferPointer) -> UnsafeRawBufferPointer? {
        var start = 0
        var end = entry.count
        while start < end && (entry[start] == 0x20 || entry[start] == 0x09) { start += 1 }
        while end > start && (entry[end - 1] == 0x20 || entry[end - 1] == 0x09) { end -= 1 }
        return start < end ? UnsafeRawBufferPointer(rebasing: entry[start..<end]) : nil
    }

    /// An address as proxies write it: `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]` or
    /// `[2001:db8::1]:4711`; nil for anything else.
    static func parseEntry(_ entry: UnsafeRawBufferPointer) -> IPAddress? {
        guard entry.count <= 64 else { return nil }
        let bytes = entry.assumingMemoryBound(to: UInt8.self)
        if bytes.first == 0x5B {
            guard let close = bytes.firstIndex(of: 0x5D), close > 1 else { return nil }
            if close + 1 < bytes.count {
                guard bytes[close + 1] == 0x3A, Self.isPort(bytes, from: close + 2) else { return nil }
            }
            return IPAddress.parseIPv6(UnsafeBufferPointer(rebasing: bytes[1..<close]))
        }
        var colons = 0
        var lastColon = 0
        for index in bytes.indices where bytes[index] == 0x3A {
            colons += 1
            lastColon = index
        }
        if colons == 1 {
            guard Self.isPort(bytes, from: lastColon + 1),
                let value = IPAddress.parseIPv4(bytes, from: 0, to: lastColon)
            else { return nil }
            return IPAddress(ipv4: value)
        }
        return IPAddress.parse(bytes)
    }

    /// Whether `bytes[start...]` is a port: one to five digits, at most 65535.
    private static func isPort(_ bytes: UnsafeBufferPointer<UInt8>, from start: Int) -> Bool {
        let count = bytes.count - start
        guard count >= 1, count <= 5 else { return false }
        var value = 0
        for index in start..<bytes.count {
            guard bytes[index] >= 0x30, bytes[index] <= 0x39 else { return false }
            value = value * 10 + Int(bytes[index] - 0x30)
        }
        return value <= 65535
    }
}
