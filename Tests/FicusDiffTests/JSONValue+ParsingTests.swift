import Testing

@testable import FicusDiff

@Suite("Strict JSON parser")
struct JSONValueParsingTests {
    @Test(arguments: [
        "null", "true", "false", "0", "-0", "1.5e-3", "\"\"", "[]", "{}", " \n\t[1, {\"a\": [null]}]\r\n",
        "\u{FEFF}{\"bom\":1}", #""\"\\\/\b\f\n\r\t\u00e9\ud83d\ude00""#, "\"é😀\"", "1E+2", "[-1,0.0,10]",
    ])
    func acceptsValidDocuments(text: String) throws {
        _ = try JSONValue.parse(text)
    }

    @Test(arguments: [
        "", " ", "nul", "tru", "01", "1.", ".5", "-", "+1", "1e", "1e+", "0x10", "NaN", "Infinity", "[1,]",
        "{\"a\":1,}", "{a:1}", "{'a':1}", "[1 2]", "{\"a\" 1}", "\"abc", "\"a\nb\"", #""\x""#, #""\u12""#,
        #""\ud83d""#, #""\ude00""#, "[1] [2]", "{} x", "[", "{\"a\":", "// comment\n1",
    ])
    func rejectsInvalidDocuments(text: String) {
        #expect(throws: JSONParseError.self) { try JSONValue.parse(text) }
    }

    @Test func rejectsInvalidUTF8() {
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0xC3, 0x28, 0x22]) }
        #expect(throws: JSONParseError.self) { try JSONValue.parse([0x22, 0x5C, 0x6E, 0xFF, 0x22]) }
    }

    @Test func nestingIsBounded() throws {
        let deep = String(repeating: "[", count: 100_000) + String(repeating: "]", count: 100_000)
        #expect(throws: JSONParseError.self) { try JSONValue.parse(deep) }
        let allowed =
            String(repeating: "[", count: JSONValue.maximumDepth)
            + String(repeating: "]", count: JSONValue.maximumDepth)
        _ = try JSONValue.parse(allowed)
    }

    @Test func decodesEscapesAndSurrogatePairs() throws {
        #expect(try JSONValue.parse(#""a\u00e9\ud83d\ude00\n""#) == .string("aé😀\n"))
    }

    @Test func duplicateKeysKeepTheLastValueAtTheFirstPosition() throws {
        let value = try JSONValue.parse(#"{"a":1,"b":2,"a":3}"#)
        guard case .object(let object) = value else {
            Issue.record("not an object")
            return
        }
        #expect(object.keys == ["a", "b"])
        #expect(object["a"] == .number(JSONNumber("3")!))
    }

    @Test func serializationRoundTripsAndKeepsLiterals() throws {
        let text = #"{"b":[1.50,-0,1e2,true,null],"a":"q\"\\\n\u0001é","c":{}}"#
        let value = try JSONValue.parse(text)
        let serialized = String(decoding: value.serialized(), as: UTF8.self)
        #expect(serialized == #"{"b":[1.50,-0,1e2,true,null],"a":"q\"\\\n\u0001é","c":{}}"#)
        #expect(try JSONValue.parse(serialized) == value)
    }

    @Test func numberLiteralsValidateLikeTheParser() {
        #expect(JSONNumber("1.0e5") != nil)
        #expect(JSONNumber("1.") == nil)
        #expect(JSONNumber("1.0") == JSONNumber("1"))
        #expect(JSONNumber("1.0")?.literal == "1.0")
        #expect(Set([JSONNumber("100")!, JSONNumber("1e2")!, JSONNumber("1.00E2")!]).count == 1)
    }

    @Test func equalValuesHashEqually() throws {
        let left = try JSONValue.parse(#"{"a":1,"b":[1.0,{"c":"d"}]}"#)
        let right = try JSONValue.parse(#"{"b":[1,{"c":"d"}],"a":1e0}"#)
        #expect(left == right)
        #expect(left.hashValue == right.hashValue)
    }
}
