/// The 64-bit FNV-1a hash of a body, fed in pieces as the proxy sees them.
///
/// A body longer than the capture bound is compared by length and hash only, so the proxy hashes every chunk as it
/// streams past instead of keeping the bytes; FNV-1a needs no buffering and eight bytes of state.
public struct FNV1a64: Sendable, Hashable {
    /// The FNV-1a 64-bit offset basis.
    ///
    /// The hash of an empty body, and the state every hash starts from.
    public static let offsetBasis: UInt64 = 0xcbf2_9ce4_8422_2325

    /// The FNV-1a 64-bit prime.
    ///
    /// Multiplying by it after every byte is what spreads one changed byte over the whole state.
    public static let prime: UInt64 = 0x0000_0100_0000_01b3

    /// The hash of everything fed so far.
    ///
    /// Reading it does not end the hash: more bytes can still be fed afterwards.
    public private(set) var value: UInt64 = FNV1a64.offsetBasis

    /// Starts an empty hash.
    ///
    /// Its value is the offset basis until bytes are fed.
    public init() {}

    /// Feeds `bytes`.
    ///
    /// Contiguous collections are hashed in place; others are streamed without copying.
    public mutating func combine(_ bytes: some Sequence<UInt8>) {
        var state = self.value
        let done: Void? = bytes.withContiguousStorageIfAvailable { buffer in
            for byte in buffer {
                state = (state ^ UInt64(byte)) &* FNV1a64.prime
            }
        }
        if done == nil {
            for byte in bytes {
                state = (state ^ UInt64(byte)) &* FNV1a64.prime
            }
        }
        self.value = state
    }

    /// Feeds raw bytes, as a `ByteBuffer` hands them out.
    ///
    /// A concrete overload so that the proxy's per-chunk call on the response path runs a tight loop instead of a
    /// generic one that is not specialized across modules.
    public mutating func combine(_ bytes: UnsafeRawBufferPointer) {
        var state = self.value
        for byte in bytes {
            state = (state ^ UInt64(byte)) &* FNV1a64.prime
        }
        self.value = state
    }

    /// The hash of `bytes` in one call.
    ///
    /// Equal to feeding the same bytes in any number of pieces.
    public static func hash(_ bytes: some Sequence<UInt8>) -> UInt64 {
        var hasher = FNV1a64()
        hasher.combine(bytes)
        return hasher.value
    }
}
