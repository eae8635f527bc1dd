import Testing

@testable import FicusDiff

@Suite("JSON paths and patterns")
struct JSONPathPatternParsingTests {
    @Test(arguments: [
        "$", "$.a", "$.a.b[3].c", "$.items[*].updatedAt", "$.*.id", "$['a b']", #"$["a b"]"#, #"$['it\'s']"#,
        "$..password", "$..[0]", "$..*", "$.a-b",
    ])
    func parsesPatterns(text: String) {
        #expect(JSONPathPattern(text) != nil)
    }

    @Test(arguments: ["", "a.b", "status", "header:date", "$.", "$a", "$[", "$[x]", "$['a'", "$.a[1", "$..", "$.[0]"])
    func rejectsNonPatterns(text: String) {
        #expect(JSONPathPattern(text) == nil)
    }

    @Test(arguments: [
        ("$.items[*].sku", "$.items[2].sku", true),
        ("$.items[*].sku", "$.items[2].name", false),
        ("$.items.*.sku", "$.items[0].sku", true),
        ("$.*", "$.anything", true),
        ("$..password", "$.password", true),
        ("$..password", "$.a[3].b.password", true),
        ("$..password", "$.password.x", false),
        ("$..a..b", "$.x.a.y.z.b", true),
        ("$..a..b", "$.x.b", false),
        ("$['a b'].c", "$['a b'].c", true),
        ("$.a[1]", "$.a[1]", true),
        ("$.a[1]", "$.a[2]", false),
        ("$", "$", true),
    ])
    func matchesConcretePaths(pattern: String, path: String, matches: Bool) throws {
        let matcher = PathMatcher(patterns: [try #require(JSONPathPattern(pattern))])
        #expect(matcher.matches(try #require(Self.components(path))) == matches)
    }

    @Test func renderedPathsParseBackAsPatterns() {
        let components: [JSONPathComponent] = [.key("a b"), .key("it's"), .index(3), .key("ok"), .key(#"back\slash"#)]
        let rendered = JSONPath.render(components)
        #expect(rendered == #"$['a b']['it\'s'][3].ok['back\\slash']"#)
        let pattern = JSONPathPattern(rendered)
        #expect(pattern != nil)
        #expect(PathMatcher(patterns: [pattern!]).matches(components))
    }

    @Test(arguments: [
        ("$.items[2].sku", "$.items[*].sku"),
        ("$[0][10]", "$[*][*]"),
        ("$['[3]'][4]", "$['[3]'][*]"),
        (#"$['it\'s[1]'].a"#, #"$['it\'s[1]'].a"#),
        ("header:x-id", "header:x-id"),
        ("status", "status"),
    ])
    func fieldPathsGeneralizeIndices(path: String, expected: String) {
        #expect(Difference(path: path, kind: .valueChanged).fieldPath == expected)
    }

    /// Components of a concrete path, reusing the pattern parser: a path is a pattern without wildcards.
    private static func components(_ path: String) -> [JSONPathComponent]? {
        guard let pattern = JSONPathPattern(path) else {
            return nil
        }
        var components: [JSONPathComponent] = []
        for step in pattern.steps {
            switch step {
            case .child(.key(let key)): components.append(.key(key))
            case .child(.index(let index)): components.append(.index(index))
            default: return nil
            }
        }
        return components
    }
}
