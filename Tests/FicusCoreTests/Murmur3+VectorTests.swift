import Testing

@testable import FicusCore

@Suite("Murmur3 x86_32")
struct Murmur3VectorTests {
    /// Published vectors (SMHasher, and the test tables of Unleash and of the murmurhash npm package).
    @Test(arguments: [
        ("", UInt32(0), UInt32(0)),
        ("", 1, 0x514E_28B7),
        ("", 0xFFFF_FFFF, 0x81F1_6F39),
        ("hello", 0, 0x248B_FA47),
        ("Hello, world!", 1234, 0xFAF6_CDB3),
        ("The quick brown fox jumps over the lazy dog", 0, 0x2E4F_F723),
        ("a", 0x9747_B28C, 0x7FA0_9EA6),
        ("aaaa", 0x9747_B28C, 0x5A97_808A),
        ("abc", 0, 0xB3DD_93FA),
        ("abcd", 0x9747_B28C, 0xF047_8627),
        ("Hello, world!", 0x9747_B28C, 0x2488_4CBA),
    ])
    func matchesPublishedVectors(text: String, seed: UInt32, expected: UInt32) {
        #expect(Murmur3.hash32(Array(text.utf8), seed: seed) == expected)
        #expect(Murmur3.hash32(text, seed: seed) == expected)
    }

    @Test func streamingEqualsOneShotForEverySplit() {
        let text = Array("The quick brown fox jumps over the lazy dog".utf8)
        let expected = Murmur3.hash32(text)
        for split in 0...text.count {
            var hasher = Murmur3.Hasher()
            text[..<split].withUnsafeBufferPointer { hasher.combine($0) }
            for byte in text[split...] {
                hasher.combine(byte)
            }
            #expect(hasher.finalize() == expected, "split at \(split)")
        }
    }

    @Test func hashesNonContiguousCollections() {
        let text = "hello"
        #expect(Murmur3.hash32(text.utf8.lazy.map { $0 }) == 0x248B_FA47)
    }
}
