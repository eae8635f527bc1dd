import Testing

@testable import FicusDiff

@Suite("Endpoint templates")
struct EndpointTemplateTests {
    @Test(arguments: [
        ("/orders/123/items/550e8400-e29b-41d4-a716-446655440000", "/orders/{id}/items/{id}"),
        ("/orders/123", "/orders/{id}"),
        ("/orders/123/", "/orders/{id}/"),
        ("/orders/", "/orders/"),
        ("/", "/"),
        ("", "/"),
        ("/orders?page=2&id=7", "/orders"),
        ("/orders/42?x=1#frag", "/orders/{id}"),
        ("/users/550E8400-E29B-41D4-A716-446655440000", "/users/{id}"),
        ("/commits/9fceb02d0ae598e95dc970b74767f19372d61af8", "/commits/{id}"),
        ("/blobs/deadbeefcafebabe", "/blobs/{id}"),
        ("/blobs/deadbeefcafebab", "/blobs/deadbeefcafebab"),
        ("/tokens/dGhpcyBpcyBhIHRva2VuMTIz", "/tokens/{id}"),
        ("/tokens/aGVsbG8gd29ybGQ_MTIz-x", "/tokens/{id}"),
        ("/files/abcdefghijklmnopqrstuvwxyz", "/files/abcdefghijklmnopqrstuvwxyz"),
        ("/users/42/avatar/v2", "/users/{id}/avatar/v2"),
        ("/api/v1/orders/7/refunds", "/api/v1/orders/{id}/refunds"),
        ("/health", "/health"),
        ("//double//slash", "//double//slash"),
        ("http://example.com/orders/5?x=1", "/orders/{id}"),
        ("/orders/12ab", "/orders/12ab"),
        ("http://example.com", "/"),
        ("http://example.com?x=1", "/"),
        ("*", "*"),
        ("123", "{id}"),
        ("/orders/123/7", "/orders/{id}/{id}"),
        ("/ordens/ação/9", "/ordens/ação/{id}"),
        ("/a:b/7", "/a:b/{id}"),
        // The query starts at the `?` byte even when a combining mark makes `?\u{301}` one Character.
        ("/t\u{301}?\u{301}/7/8", "/t\u{301}"),
    ])
    func templates(path: String, expected: String) {
        #expect(EndpointTemplate.template(path: path) == expected)
    }
}
