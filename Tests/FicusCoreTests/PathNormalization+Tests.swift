import Testing

@testable import FicusCore

private func normalize(_ path: String) -> String? {
    var bytes = Array(path.utf8)
    return bytes.withUnsafeMutableBytes { PathNormalization.normalize(UnsafeRawBufferPointer($0)) }
}

@Suite("Path normalization (dot-segments, RFC 3986)")
struct PathNormalizationTests {
    @Test(arguments: [
        ("/orders/../admin", "/admin"),
        ("/orders/./1", "/orders/1"),
        ("/../../etc/passwd", "/etc/passwd"),
        ("/a/b/..", "/a/"),
        ("/a/b/.", "/a/b/"),
        ("/a/..", "/"),
        ("/orders/%2e%2e/admin", "/admin"),
        ("/orders/%2E%2E/admin", "/admin"),
        ("/orders/.%2e/admin", "/admin"),
        ("/%7Euser/x", "/~user/x"),
        ("/a%2fb/../c", "/c"),
        ("/a%2fb", "/a%2Fb"),
    ])
    func dotSegmentsAreRemoved(input: String, expected: String) {
        #expect(normalize(input) == expected, "\(input)")
    }

    /// Paths that are already normal are left alone (nil: forwarded byte for byte).
    @Test(arguments: ["/", "/orders/1", "/a//b", "/a/.b", "/a/...", "/file.json", "/a%2Fb", "/%20", "*", "/100%", "/%zz"])
    func normalPathsAreLeftAlone(input: String) {
        #expect(normalize(input) == nil, "\(input)")
    }
}
