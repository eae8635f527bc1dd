/// Every fuzz target by name: one function per target, each taking the fuzzer's bytes.
///
/// The libFuzzer executables in Fuzz/ and the replay suite in the main package call the same functions, so a crash
/// input kept under Fuzz/Regressions fails `swift test` exactly as it failed the fuzzer. Each function checks the
/// invariants of what it drives and traps when one fails: a fuzzer then finds wrong answers, not only crashes.
public enum FuzzTargets {
    /// The targets in a fixed order; the names are the directory names under Fuzz/Corpus and Fuzz/Regressions.
    public static let all: [(name: String, run: @Sendable ([UInt8]) -> Void)] = [
        ("request-parser", FuzzTargets.requestParser),
        ("response-parser", FuzzTargets.responseParser),
        ("proxy-exchange", FuzzTargets.proxyExchange),
        ("json-diff", FuzzTargets.jsonDiff),
        ("endpoint-template", FuzzTargets.endpointTemplate),
        ("rules-loader", FuzzTargets.rulesLoader),
        ("routing-decision", FuzzTargets.routingDecision),
    ]

    /// The target called `name`, or nil.
    public static func named(_ name: String) -> (@Sendable ([UInt8]) -> Void)? {
        self.all.first { $0.name == name }?.run
    }
}

/// Traps with `message` unless `condition` holds, in every build configuration.
///
/// `assert` is compiled out of the release builds that fuzzers run, and `precondition` prints no message there;
/// `fatalError` does both, so a failed invariant is a crash with its reason in the fuzzer's log.
@inline(__always)
func invariant(
    _ condition: @autoclosure () -> Bool,
    _ message: @autoclosure () -> String,
    file: StaticString = #fileID,
    line: UInt = #line
) {
    if !condition() {
        fatalError("fuzz invariant failed: \(message())", file: file, line: line)
    }
}

/// A cursor over the fuzzer's bytes that never runs out: past the end every read is zero.
///
/// Targets take their choices (split sizes, lengths, methods) from the input itself, so that the fuzzer can steer
/// them and every input replays the same way.
struct FuzzInput {
    private(set) var bytes: ArraySlice<UInt8>

    init(_ bytes: [UInt8]) {
        self.bytes = bytes[...]
    }

    mutating func byte() -> UInt8 {
        self.bytes.popFirst() ?? 0
    }

    /// A little-endian 16-bit number from the next two bytes.
    mutating func uint16() -> Int {
        Int(self.byte()) | Int(self.byte()) << 8
    }

    /// The next `count` bytes, or fewer at the end.
    mutating func take(_ count: Int) -> [UInt8] {
        let taken = self.bytes.prefix(max(0, count))
        self.bytes = self.bytes.dropFirst(taken.count)
        return Array(taken)
    }

    /// Everything left.
    mutating func rest() -> [UInt8] {
        defer { self.bytes = [] }
        return Array(self.bytes)
    }
}

/// Piece sizes for feeding a message in parts, derived from one seed byte: seed 0 means one piece.
///
/// A small linear congruential sequence gives sizes from 1 to 64 bytes that differ from piece to piece, so
/// boundaries fall inside start lines, field names, CRLFs and chunk sizes.
func pieceSizes(seed: UInt8, total: Int) -> [Int] {
    guard seed != 0 else {
        return []
    }
    var sizes: [Int] = []
    var state = UInt32(seed)
    var covered = 0
    while covered < total {
        state = state &* 1_103_515_245 &+ 12_345
        let size = Int((state >> 16) % 64) + 1
        sizes.append(size)
        covered += size
    }
    return sizes
}


