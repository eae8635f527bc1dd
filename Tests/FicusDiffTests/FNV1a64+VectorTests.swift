import Testing

@testable import FicusDiff

@Suite("FNV-1a 64")
struct FNV1a64Tests {
    @Test(arguments: [
        ("", UInt64(0xcbf2_9ce4_8422_2325)),
        ("a", 0xaf63_dc4c_8601_ec8c),
        ("foobar", 0x8594_4171_f739_67e8),
    ])
    func matchesPublishedVectors(text: String, expected: UInt64) {
        #expect(FNV1a64.hash(Array(text.utf8)) == expected)
        #expect(FNV1a64.hash(text.utf8) == expected)
        var raw = FNV1a64()
        Array(text.utf8).withUnsafeBytes { raw.combine($0) }
        #expect(raw.value == expected)
    }

    @Test func incrementalEqualsOneShot() {
        let bytes = Array("The quick brown fox jumps over the lazy dog".utf8)
        for split in 0...bytes.count {
            var hasher = FNV1a64()
            hasher.combine(bytes[..<split])
            hasher.combine(bytes[split...])
            #expect(hasher.value == FNV1a64.hash(bytes))
        }
    }
}
