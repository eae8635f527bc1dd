/// A hash table keyed by byte strings that is looked up with a borrowed buffer.
///
/// Route lookup happens on every request; hashing the request's own bytes (FNV-1a) and comparing them in place
/// avoids building a `String` or `Substring` key per path segment. Keys live in one byte pool and entries are plain
/// values, so a lookup touches no reference counts; an optional owner number lets one table hold the keys of many
/// small maps (the edges of every trie node, the values of every `in` predicate).
struct ByteKeyedTable<Value: Sendable & BitwiseCopyable>: Sendable {
    private struct Entry: Sendable {
        let hash: UInt64
        let owner: Int
        let keyStart: Int
        let keyCount: Int
        var value: Value
    }

    /// Whether keys are compared without regard to ASCII case; stored keys are lower-cased.
    let foldsCase: Bool
    /// Open addressing over the FNV hash itself: slot `hash & mask`, linear probing, `-1` for empty.
    ///
    /// Avoids re-hashing the 64-bit hash with SipHash as `Dictionary` would.
    private var slots: [Int] = []
    private var entries: [Entry] = []
    private var keys: [UInt8] = []

    init(foldsCase: Bool) {
        self.foldsCase = foldsCase
    }

    var isEmpty: Bool {
        self.entries.isEmpty
    }

    var count: Int {
        self.entries.count
    }

    /// FNV-1a 64 over the owner and the bytes, folding ASCII case when asked.
    @inline(__always)
    static func hash(_ bytes: UnsafeBufferPointer<UInt8>, owner: Int, foldsCase: Bool) -> UInt64 {
        var hash: UInt64 = 0xcbf2_9ce4_8422_2325 ^ UInt64(bitPattern: Int64(owner)) &* 0x9e37_79b9_7f4a_7c15
        if foldsCase {
            for byte in bytes {
                hash = (hash ^ UInt64(asciiLowercase(byte))) &* 0x0000_0100_0000_01B3
            }
        } else {
            for byte in bytes {
                hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
            }
        }
        return hash ^ hash >> 29
    }

    /// The value stored for the bytes of `key` under `owner`, or nil.
    @inline(__always)
    func value(for key: UnsafeBufferPointer<UInt8>, owner: Int = 0) -> Value? {
        guard !self.entries.isEmpty else {
            return nil
        }
        let hash = Self.hash(key, owner: owner, foldsCase: self.foldsCase)
        return self.slots.withUnsafeBufferPointer { slots in
            self.entries.withUnsafeBufferPointer { entries in
                self.keys.withUnsafeBufferPointer { keys in
                    let mask = slots.count - 1
                    var slot = Int(truncatingIfNeeded: hash) & mask
                    while true {
                        let index = slots[slot]
                        if index < 0 {
                            return nil
                        }
                        let entry = entries[index]
                        if entry.hash == hash, entry.owner == owner, entry.keyCount == key.count,
                            self.keyEquals(Bytes.slice(keys, entry.keyStart..<entry.keyStart + entry.keyCount), key)
                        {
                            return entry.value
                        }
                        slot = (slot + 1) & mask
                    }
                }
            }
        }
    }

    /// Whether the table holds `key` under `owner`.
    @inline(__always)
    func contains(_ key: UnsafeBufferPointer<UInt8>, owner: Int = 0) -> Bool {
        self.value(for: key, owner: owner) != nil
    }

    /// The value for `key` under `owner`, inserting `make()` first when it is missing.
    ///
    /// For building only; `key` is lower-cased here when the table folds case.
    mutating func value(for key: [UInt8], owner: Int = 0, orInsert make: () -> Value) -> Value {
        let key = self.foldsCase ? key.map(asciiLowercase) : key
        if let existing = key.withUnsafeBufferPointer({ self.value(for: $0, owner: owner) }) {
            return existing
        }
        let hash = key.withUnsafeBufferPointer { Self.hash($0, owner: owner, foldsCase: false) }
        let value = make()
        self.entries.append(
            Entry(hash: hash, owner: owner, keyStart: self.keys.count, keyCount: key.count, value: value)
        )
        self.keys += key
        if self.entries.count * 2 > self.slots.count {
            self.rebuildSlots(capacity: max(8, self.slots.count * 2))
        } else {
            self.place(self.entries.count - 1)
        }
        return value
    }

    private mutating func rebuildSlots(capacity: Int) {
        self.slots = Array(repeating: -1, count: capacity)
        for index in self.entries.indices {
            self.place(index)
        }
    }

    private mutating func place(_ index: Int) {
        let mask = self.slots.count - 1
        var slot = Int(truncatingIfNeeded: self.entries[index].hash) & mask
        while self.slots[slot] >= 0 {
            slot = (slot + 1) & mask
        }
        self.slots[slot] = index
    }

    /// Stores `value` for `key` under `owner` unless the key is already present.
    mutating func insert(_ key: [UInt8], owner: Int = 0, _ value: Value) {
        _ = self.value(for: key, owner: owner, orInsert: { value })
    }

    @inline(__always)
    private func keyEquals(_ stored: UnsafeBufferPointer<UInt8>, _ key: UnsafeBufferPointer<UInt8>) -> Bool {
        if self.foldsCase {
            for index in 0..<key.count where stored[index] != asciiLowercase(key[index]) {
                return false
            }
        } else {
            for index in 0..<key.count where stored[index] != key[index] {
                return false
            }
        }
        return true
    }
}

/// Byte-level helpers shared by the compiled predicates.
///
/// Kept free functions over buffers so that the request's own storage is compared in place.
enum Bytes {
    /// Whether `text` starts with `prefix` (stored lower-cased when `foldsCase`).
    @inline(__always)
    static func hasPrefix(
        _ text: UnsafeBufferPointer<UInt8>,
        _ prefix: UnsafeBufferPointer<UInt8>,
        foldsCase: Bool
    ) -> Bool {
        guard prefix.count <= text.count else {
            return false
        }
        return self.equal(text, from: 0, prefix, foldsCase: foldsCase)
    }

    /// Whether `text` ends with `suffix` (stored lower-cased when `foldsCase`).
    @inline(__always)
    static func hasSuffix(
        _ text: UnsafeBufferPointer<UInt8>,
        _ suffix: UnsafeBufferPointer<UInt8>,
        foldsCase: Bool
    ) -> Bool {
        guard suffix.count <= text.count else {
            return false
        }
        return self.equal(text, from: text.count - suffix.count, suffix, foldsCase: foldsCase)
    }

    /// Whether `text` contains `needle` (stored lower-cased when `foldsCase`).
    static func contains(
        _ text: UnsafeBufferPointer<UInt8>,
        _ needle: UnsafeBufferPointer<UInt8>,
        foldsCase: Bool
    ) -> Bool {
        guard needle.count <= text.count else {
            return false
        }
        for start in 0...(text.count - needle.count) where self.equal(text, from: start, needle, foldsCase: foldsCase) {
            return true
        }
        return false
    }

    /// Whether `text` equals `other` byte for byte.
    @inline(__always)
    static func equal(_ text: UnsafeBufferPointer<UInt8>, _ other: UnsafeBufferPointer<UInt8>) -> Bool {
        text.count == other.count && self.equal(text, from: 0, other, foldsCase: false)
    }

    @inline(__always)
    private static func equal(
        _ text: UnsafeBufferPointer<UInt8>,
        from start: Int,
        _ other: UnsafeBufferPointer<UInt8>,
        foldsCase: Bool
    ) -> Bool {
        if foldsCase {
            for index in 0..<other.count where asciiLowercase(text[start + index]) != other[index] {
                return false
            }
        } else {
            for index in 0..<other.count where text[start + index] != other[index] {
                return false
            }
        }
        return true
    }

    /// `buffer[range]` as a buffer of its own.
    @inline(__always)
    static func slice(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(rebasing: buffer[range])
    }

    /// The range of `buffer` without leading and trailing spaces and tabs.
    static func trimmed(_ buffer: UnsafeBufferPointer<UInt8>, _ range: Range<Int>) -> Range<Int> {
        var lower = range.lowerBound
        var upper = range.upperBound
        while lower < upper, buffer[lower] == UInt8(ascii: " ") || buffer[lower] == UInt8(ascii: "\t") {
            lower += 1
        }
        while upper > lower, buffer[upper - 1] == UInt8(ascii: " ") || buffer[upper - 1] == UInt8(ascii: "\t") {
            upper -= 1
        }
        return lower..<upper
    }
}
