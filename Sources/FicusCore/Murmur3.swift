/// MurmurHash3 x86_32, the hash behind sticky percentage buckets.
///
/// Unleash and its SDKs bucket gradual rollouts with this exact function (`hash % 100 + 1`), so applications that
/// evaluate the same rule name and stickiness value land every user on the same side as the proxy does.
public enum Murmur3 {
    /// Hashes `bytes` with `seed`.
    ///
    /// Contiguous collections are hashed in place; others are streamed byte by byte without copying.
    public static func hash32(_ bytes: some Collection<UInt8>, seed: UInt32 = 0) -> UInt32 {
        var hasher = Hasher(seed: seed)
        if bytes.withContiguousStorageIfAvailable({ hasher.combine($0) }) == nil {
            for byte in bytes {
                hasher.combine(byte)
            }
        }
        return hasher.finalize()
    }

    /// Hashes the UTF-8 bytes of `text` with `seed`.
    ///
    /// A convenience for the common case of hashing a rule name and stickiness value.
    public static func hash32(_ text: String, seed: UInt32 = 0) -> UInt32 {
        self.hash32(text.utf8, seed: seed)
    }

    /// An incremental MurmurHash3 x86_32 over bytes fed in pieces.
    ///
    /// Bucketing hashes `"<rule name>:<value>"`; feeding the precomputed rule prefix and then the value avoids
    /// building the concatenated string on every request.
    public struct Hasher: Sendable {
        private static let c1: UInt32 = 0xcc9e_2d51
        private static let c2: UInt32 = 0x1b87_3593

        private var state: UInt32
        private var pending: UInt32 = 0
        private var pendingCount: UInt32 = 0
        private var length: UInt32 = 0

        /// Starts a hash with `seed`.
        ///
        /// Seed 0 is what Unleash uses for gradual rollouts.
        public init(seed: UInt32 = 0) {
            self.state = seed
        }

        /// Feeds one byte.
        ///
        /// Bytes are gathered into little-endian 32-bit blocks exactly as the one-shot algorithm reads them.
        @inline(__always)
        public mutating func combine(_ byte: UInt8) {
            self.pending |= UInt32(byte) << (8 * self.pendingCount)
            self.pendingCount += 1
            self.length &+= 1
            if self.pendingCount == 4 {
                self.mixBlock(self.pending)
                self.pending = 0
                self.pendingCount = 0
            }
        }

        /// Feeds a buffer of bytes.
        ///
        /// Whole blocks are read straight from the buffer once any pending bytes are filled up.
        public mutating func combine(_ bytes: UnsafeBufferPointer<UInt8>) {
            var index = 0
            let count = bytes.count
            while self.pendingCount != 0, index < count {
                self.combine(bytes[index])
                index += 1
            }
            while count - index >= 4 {
                let block =
                    UInt32(bytes[index]) | UInt32(bytes[index + 1]) << 8 | UInt32(bytes[index + 2]) << 16
                    | UInt32(bytes[index + 3]) << 24
                self.mixBlock(block)
                self.length &+= 4
                index += 4
            }
            while index < count {
                self.combine(bytes[index])
                index += 1
            }
        }

        /// Feeds the UTF-8 bytes of a string.
        ///
        /// Native strings are read in place; others are streamed.
        public mutating func combine(_ text: some StringProtocol) {
            if text.utf8.withContiguousStorageIfAvailable({ self.combine($0) }) == nil {
                for byte in text.utf8 {
                    self.combine(byte)
                }
            }
        }

        /// Returns the hash of everything fed so far.
        ///
        /// Consumes a copy, so the hasher may keep being fed for a longer input.
        /// The Unleash-normalised bucket of the bytes fed so far, in 1...100 (see `Murmur3.bucket(group:value:)`).
        public func bucket() -> Int {
            Int(self.finalize() % 100) + 1
        }

        public func finalize() -> UInt32 {
            var hash = self.state
            if self.pendingCount > 0 {
                var k = self.pending
                k &*= Self.c1
                k = k << 15 | k >> 17
                k &*= Self.c2
                hash ^= k
            }
            hash ^= self.length
            hash ^= hash >> 16
            hash &*= 0x85eb_ca6b
            hash ^= hash >> 13
            hash &*= 0xc2b2_ae35
            hash ^= hash >> 16
            return hash
        }

        @inline(__always)
        private mutating func mixBlock(_ block: UInt32) {
            var k = block
            k &*= Self.c1
            k = k << 15 | k >> 17
            k &*= Self.c2
            self.state ^= k
            self.state = self.state << 13 | self.state >> 19
            self.state = self.state &* 5 &+ 0xe654_6b64
        }
    }

    /// The Unleash-normalised bucket of `"<group>:<value>"`: `hash % 100 + 1`, in 1...100.
    ///
    /// A user is inside a percentage rollout of `p` when the bucket is at most `p`, so growing `p` only ever adds
    /// users and never moves one out.
    public static func bucket(group: String, value: String) -> Int {
        var hasher = Hasher()
        hasher.combine(group)
        hasher.combine(UInt8(ascii: ":"))
        hasher.combine(value)
        return hasher.bucket()
    }
}
