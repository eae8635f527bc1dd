import Testing

@testable import FicusDiff

@Suite("Structural JSON diff")
struct ResponseComparerJSONTests {
    @Test func seedIncidentIsATypeChangeAtTheAmount() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"amount":100}"#),
            shadow: DiffFixtures.json(#"{"amount":"100"}"#),
            options: CompareOptions()
        )
        #expect(comparison.bodyKind == .json)
        #expect(!comparison.identical)
        #expect(
            comparison.differences == [
                Difference(path: "$.amount", kind: .typeChanged, serving: "100", shadow: #""100""#)
            ]
        )
    }

    /// One case per difference kind found in a JSON body.
    @Test(arguments: [
        (#"{"a":1}"#, #"{"a":2}"#, [Difference(path: "$.a", kind: .valueChanged, serving: "1", shadow: "2")]),
        (
            #"{"a":"x"}"#, #"{"a":"y"}"#,
            [Difference(path: "$.a", kind: .valueChanged, serving: #""x""#, shadow: #""y""#)]
        ),
        (
            #"{"a":true}"#, #"{"a":false}"#,
            [Difference(path: "$.a", kind: .valueChanged, serving: "true", shadow: "false")]
        ),
        (#"{"a":true}"#, #"{"a":1}"#, [Difference(path: "$.a", kind: .typeChanged, serving: "true", shadow: "1")]),
        (#"{"a":null}"#, #"{"a":0}"#, [Difference(path: "$.a", kind: .typeChanged, serving: "null", shadow: "0")]),
        (#"{"a":{}}"#, #"{"a":[]}"#, [Difference(path: "$.a", kind: .typeChanged, serving: "{}", shadow: "[]")]),
        (#"{"a":1,"b":2}"#, #"{"a":1}"#, [Difference(path: "$.b", kind: .missing, serving: "2", shadow: nil)]),
        (#"{"a":1}"#, #"{"a":1,"c":[3]}"#, [Difference(path: "$.c", kind: .extra, serving: nil, shadow: "[3]")]),
        (#"[1,2,3]"#, #"[3,1,2]"#, [Difference(path: "$", kind: .arrayOrder, serving: "[1,2,3]", shadow: "[3,1,2]")]),
        (
            #"{"xs":[1,2,3]}"#, #"{"xs":[1,5]}"#,
            [
                Difference(path: "$.xs", kind: .arrayLength, serving: "3", shadow: "2"),
                Difference(path: "$.xs[1]", kind: .valueChanged, serving: "2", shadow: "5"),
            ]
        ),
        (
            #"[1,2]"#, #"[1,2,2]"#,
            [Difference(path: "$", kind: .arrayLength, serving: "2", shadow: "3")]
        ),
        (
            #"[1,2,3]"#, #"[1,2,4]"#,
            [Difference(path: "$[2]", kind: .valueChanged, serving: "3", shadow: "4")]
        ),
        (#""a""#, #"1"#, [Difference(path: "$", kind: .typeChanged, serving: #""a""#, shadow: "1")]),
    ])
    func classifiesEveryKind(serving: String, shadow: String, expected: [Difference]) {
        #expect(DiffFixtures.jsonDifferences(serving, shadow) == expected)
    }

    @Test func nestedObjectsAndArraysGetFullPaths() {
        let serving = #"{"order":{"items":[{"sku":"A1","qty":1},{"sku":"B2","qty":2}],"total":{"value":3}}}"#
        let shadow = #"{"order":{"items":[{"sku":"A1","qty":1},{"sku":"B3","qty":2,"gift":true}],"total":{}}}"#
        #expect(
            DiffFixtures.jsonDifferences(serving, shadow) == [
                Difference(path: "$.order.items[1].sku", kind: .valueChanged, serving: #""B2""#, shadow: #""B3""#),
                Difference(path: "$.order.items[1].gift", kind: .extra, serving: nil, shadow: "true"),
                Difference(path: "$.order.total.value", kind: .missing, serving: "3", shadow: nil),
            ]
        )
    }

    @Test func keysThatAreNotIdentifiersAreQuoted() {
        let differences = DiffFixtures.jsonDifferences(
            #"{"a b":{"it's":1},"1st":2,"x-y":[0,{"k":1}]}"#,
            #"{"a b":{"it's":2},"1st":3,"x-y":[0,{"k":2}]}"#
        )
        #expect(differences.map(\.path) == [#"$['a b']['it\'s']"#, "$['1st']", "$['x-y'][1].k"])
    }

    @Test func keyOrderAndWhitespaceDoNotMatter() {
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(#"{"a":1,"b":[1,{"c":2,"d":3}]}"#),
            shadow: DiffFixtures.json("{ \"b\" : [ 1 , { \"d\":3, \"c\":2 } ],\n \"a\" : 1 }"),
            options: CompareOptions()
        )
        #expect(comparison.identical)
        #expect(comparison.bodyKind == .json)
    }

    @Test func arrayOrderComparesElementsStructurally() {
        let differences = DiffFixtures.jsonDifferences(
            #"{"xs":[{"id":1,"n":1.0},{"id":2}]}"#,
            #"{"xs":[{"id":2},{"n":1,"id":1}]}"#
        )
        #expect(differences.map(\.kind) == [.arrayOrder])
        #expect(differences.map(\.path) == ["$.xs"])
    }

    @Test func sameLengthDifferentElementsAreDiffedByIndex() {
        let differences = DiffFixtures.jsonDifferences(#"[1,1,2]"#, #"[1,2,2]"#)
        #expect(differences == [Difference(path: "$[1]", kind: .valueChanged, serving: "1", shadow: "2")])
    }

    /// Numbers compare by decimal value, never through `Double`.
    @Test(arguments: [
        ("1", "1.0", true),
        ("1e2", "100", true),
        ("1E+2", "100.00", true),
        ("-0", "0", true),
        ("-0.0", "0e10", true),
        ("0.10", "1e-1", true),
        ("10e-1", "1", true),
        ("-12.5", "-1.25e1", true),
        ("1", "-1", false),
        ("1", "1.0000000000000001", false),
        ("9007199254740993", "9007199254740992", false),
        ("12345678901234567890", "12345678901234567891", false),
        ("1e400", "1e400", true),
        ("1e400", "1e401", false),
    ])
    func numbersCompareByExactValue(serving: String, shadow: String, equal: Bool) {
        let differences = DiffFixtures.jsonDifferences(#"{"n":\#(serving)}"#, #"{"n":\#(shadow)}"#)
        #expect(differences.isEmpty == equal)
        if !equal {
            #expect(differences == [Difference(path: "$.n", kind: .valueChanged, serving: serving, shadow: shadow)])
        }
    }

    @Test func stringsCompareByExactScalars() {
        // Precomposed é versus e + combining acute: equal to Swift's String, different bytes to a JSON consumer.
        let differences = DiffFixtures.jsonDifferences(#"{"s":"\u00e9"}"#, #"{"s":"e\u0301"}"#)
        #expect(differences.map(\.kind) == [.valueChanged])
    }

    @Test func renderedValuesAreCutToAboutTwoHundredCharacters() {
        let long = String(repeating: "x", count: 1000)
        let differences = DiffFixtures.jsonDifferences(#"{"s":"\#(long)"}"#, #"{"s":1}"#)
        let rendered = try! #require(differences.first?.serving)
        #expect(rendered.utf8.count <= 204)
        #expect(rendered.hasSuffix("…"))
        #expect(rendered.hasPrefix("\"xxx"))
    }
}

@Suite("Ignored paths")
struct IgnoredPathTests {
    @Test(arguments: [
        (
            ["$.meta.generatedAt"], #"{"meta":{"generatedAt":1,"v":1}}"#, #"{"meta":{"generatedAt":2,"v":1}}"#,
            [String]()
        ),
        (["$.meta.generatedAt"], #"{"meta":{"generatedAt":1}}"#, #"{"meta":{}}"#, []),
        (["$.meta"], #"{"meta":{"a":1},"x":1}"#, #"{"meta":[],"x":2}"#, ["$.x"]),
        (
            ["$.items[*].updatedAt"],
            #"{"items":[{"id":1,"updatedAt":"a"},{"id":2,"updatedAt":"b"}]}"#,
            #"{"items":[{"id":1,"updatedAt":"c"},{"id":3,"updatedAt":"d"}]}"#,
            ["$.items[1].id"]
        ),
        (
            ["$.items.*.updatedAt"],
            #"{"items":[{"id":1,"updatedAt":"a"}]}"#,
            #"{"items":[{"id":1,"updatedAt":"b"}]}"#,
            []
        ),
        (
            ["$..requestId"], #"{"requestId":1,"a":{"b":[{"requestId":2}]}}"#,
            #"{"requestId":3,"a":{"b":[{"requestId":4}]}}"#, []
        ),
        (["$.xs[0]"], #"{"xs":[1,2]}"#, #"{"xs":[9,3]}"#, ["$.xs[1]"]),
        (["$"], #"{"a":1}"#, #"{"a":2}"#, []),
        (["$['a b']"], #"{"a b":1,"c":1}"#, #"{"a b":2,"c":1}"#, []),
        (["not a path"], #"{"a":1}"#, #"{"a":2}"#, ["$.a"]),
    ])
    func ignoredPathsAreLeftOut(ignored: [String], serving: String, shadow: String, expected: [String]) {
        let options = CompareOptions(ignoredPaths: ignored)
        #expect(DiffFixtures.jsonDifferences(serving, shadow, options: options).map(\.path) == expected)
    }

    @Test func ignoredFieldsDoNotHideAReorder() {
        // Element updatedAt values differ too; once ignored, what is left is the same elements in another order.
        let options = CompareOptions(ignoredPaths: ["$.items[*].updatedAt"])
        let differences = DiffFixtures.jsonDifferences(
            #"{"items":[{"id":1,"updatedAt":"a"},{"id":2,"updatedAt":"b"}]}"#,
            #"{"items":[{"id":2,"updatedAt":"c"},{"id":1,"updatedAt":"d"}]}"#,
            options: options
        )
        #expect(differences.map(\.kind) == [.arrayOrder])
        #expect(differences.first?.serving == #"[{"id":1},{"id":2}]"#)
    }

    @Test func statusAndHeadersCanBeIgnoredByTheirReportedPaths() {
        let options = CompareOptions(ignoredPaths: ["status", "header:X-Version"])
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json("{}", status: 200, headers: [("X-Version", "1")]),
            shadow: DiffFixtures.json("{}", status: 201, headers: [("x-version", "2")]),
            options: options
        )
        #expect(comparison.identical)
    }
}

@Suite("Difference bound")
struct DifferenceBoundTests {
    @Test func differencesBeyondTheBoundAreCountedNotKept() {
        let serving = "[" + (0..<50).map { #"{"n":\#($0)}"# }.joined(separator: ",") + "]"
        let shadow = "[" + (0..<50).map { #"{"n":\#($0 + 1)}"# }.joined(separator: ",") + "]"
        let comparison = ResponseComparer.compare(
            serving: DiffFixtures.json(serving, status: 200),
            shadow: DiffFixtures.json(shadow, status: 200),
            options: CompareOptions(maxBodyDifferences: 10)
        )
        #expect(comparison.differences.count == 10)
        #expect(comparison.differences.first?.path == "$[0].n")
        #expect(comparison.differences.last?.path == "$[9].n")
        #expect(comparison.omittedDifferences == 40)
        #expect(!comparison.identical)
    }
}
