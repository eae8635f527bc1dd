import Testing

@testable import FicusCore

@Suite("PathRewrite")
struct PathRewriteApplyTests {
    @Test(arguments: [
        ("/api", "", "/api/orders/1", "/orders/1"),
        ("/api", "", "/api", "/"),
        ("/api/", "", "/api/", "/"),
        ("/api", "", "/apix/orders", "/apix/orders"),
        ("/api", "", "/other", "/other"),
        ("/api/v1/orders", "/orders", "/api/v1/orders/42", "/orders/42"),
        ("/api/v1/orders", "/orders/", "/api/v1/orders", "/orders"),
        ("/", "/v2", "/orders", "/v2/orders"),
        ("/", "", "/orders", "/orders"),
        ("/old", "/new", "/old//x", "/new//x"),
    ])
    func rewritesPrefixesOnSegmentBoundaries(prefix: String, replacement: String, path: String, expected: String) {
        #expect(PathRewrite(prefix: prefix, replacement: replacement).apply(to: path) == expected)
    }

    @Test func rewriteWithoutPathKeepsThePath() {
        #expect(RequestRewrite(removeHeaders: ["Cookie"]).rewritePath("/a/b") == "/a/b")
        #expect(RequestRewrite(path: .strip("/a")).rewritePath("/a/b") == "/b")
    }
}
