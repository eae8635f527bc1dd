/// Every rule condition of a table compiled into flat arrays of plain values.
///
/// A decision evaluates up to ten rules with a few conditions each; walking a tree of enums, classes and arrays cost
/// about two hundred reference-count operations per decision, more than the tests themselves. Here conditions are
/// nodes in prefix order that refer to predicates, versions, segments and byte strings by index, and the arrays are
/// copied into memory the program owns, so a decision reads them through plain pointers without retaining anything.
/// Nothing is written after `init`, which is why sharing it across threads is safe.
final class RuleProgram: @unchecked Sendable {
    /// The program's arrays as buffers, valid while the program is alive.
    ///
    /// Held through a pointer to memory the program owns, so that an evaluation carries one word instead of the
    /// buffers themselves and reads them without reference counting.
    let code: UnsafePointer<Code>

    init(_ parts: Parts) {
        let code = Code(
            routes: Self.copy(parts.routes),
            rules: Self.copy(parts.rules),
            nodes: Self.copy(parts.nodes),
            predicates: Self.copy(parts.predicates),
            segments: Self.copy(parts.segments),
            versions: Self.copy(parts.versions),
            texts: Self.copy(parts.texts),
            bytes: Self.copy(parts.bytes),
            cidrs: Self.copy(parts.cidrs),
            names: Self.copy(parts.names),
            oneOf: Self.copy([parts.oneOfExact, parts.oneOfFolded]),
            semanticVersions: Self.copy(parts.semanticVersions),
            semanticVersionRanges: Self.copy(parts.semanticVersionRanges),
            regexes: Self.copy(parts.regexes),
            predicateSources: Self.copy(parts.predicateSources),
            versionSources: Self.copy(parts.versionSources),
            segmentNames: Self.copy(parts.segmentNames),
            flagNames: Self.copy(parts.flagNames),
            stickinessLabels: Self.copy(parts.stickinessLabels)
        )
        let storage = UnsafeMutablePointer<Code>.allocate(capacity: 1)
        storage.initialize(to: code)
        self.code = UnsafePointer(storage)
    }

    deinit {
        let code = self.code.pointee
        Self.free(code.routes)
        Self.free(code.rules)
        Self.free(code.nodes)
        Self.free(code.predicates)
        Self.free(code.segments)
        Self.free(code.versions)
        Self.free(code.texts)
        Self.free(code.bytes)
        Self.free(code.cidrs)
        Self.free(code.names)
        Self.free(code.oneOf)
        Self.free(code.semanticVersions)
        Self.free(code.semanticVersionRanges)
        Self.free(code.regexes)
        Self.free(code.predicateSources)
        Self.free(code.versionSources)
        Self.free(code.segmentNames)
        Self.free(code.flagNames)
        Self.free(code.stickinessLabels)
        UnsafeMutablePointer(mutating: self.code).deinitialize(count: 1).deallocate()
    }

    private static func copy<T>(_ array: [T]) -> UnsafeBufferPointer<T> {
        let buffer = UnsafeMutableBufferPointer<T>.allocate(capacity: max(1, array.count))
        _ = buffer.initialize(fromContentsOf: array)
        return UnsafeBufferPointer(start: buffer.baseAddress, count: array.count)
    }

    private static func free<T>(_ buffer: UnsafeBufferPointer<T>) {
        let buffer = UnsafeMutableBufferPointer(mutating: buffer)
        buffer.deinitialize()
        buffer.deallocate()
    }
}

extension RuleProgram {
    /// The arrays of a program under construction.
    ///
    /// Filled by `RoutingTableCompiler` and copied once into the program's own memory.
    struct Parts {
        /// Per route of the table, in configuration order: the range of its rules in `rules`.
        var routes: [Range<Int>] = []
        var rules: [RuleCode] = []
        var nodes: [ConditionNode] = []
        var predicates: [PredicateCode] = []
        /// Per segment of the configuration: the range of its constraints in `predicates`.
        var segments: [Range<Int>] = []
        var versions: [VersionCode] = []
        /// Byte strings as ranges of `bytes`.
        var texts: [Range<Int>] = []
        var bytes: [UInt8] = []
        var cidrs: [CIDR] = []
        /// Header names (lower-cased) and cookie names, as the request is asked for them.
        var names: [String] = []
        /// The values of every case-sensitive `in`, `not_in` and `equals` predicate, keyed by predicate index.
        var oneOfExact = ByteKeyedTable<Bool>(foldsCase: false)
        /// The values of every case-insensitive `in`, `not_in` and `equals` predicate, keyed by predicate index.
        var oneOfFolded = ByteKeyedTable<Bool>(foldsCase: true)
        var semanticVersions: [SemanticVersion] = []
        var semanticVersionRanges: [SemanticVersionRange] = []
        var regexes: [CompiledRegex] = []
        /// Per predicate: the predicate as configured, for explanations.
        var predicateSources: [Predicate] = []
        /// Per version: the version match as configured, for explanations.
        var versionSources: [VersionMatch] = []
        var segmentNames: [String] = []
        var flagNames: [String] = []
        /// Per rule: the stickiness attribute as configured, for explanations.
        var stickinessLabels: [String] = []

        /// Appends `bytes` to the byte pool and returns the index of its range in `texts`.
        mutating func text(_ bytes: some Sequence<UInt8>) -> Int {
            let start = self.bytes.count
            self.bytes.append(contentsOf: bytes)
            self.texts.append(start..<self.bytes.count)
            return self.texts.count - 1
        }
    }

    /// Buffers over a program's arrays; see `Parts` for what each holds.
    ///
    /// Only valid while the `RuleProgram` that made it is alive; the routing table keeps its program for its own
    /// lifetime and evaluates only within its own methods.
    struct Code {
        let routes: UnsafeBufferPointer<Range<Int>>
        let rules: UnsafeBufferPointer<RuleCode>
        let nodes: UnsafeBufferPointer<ConditionNode>
        let predicates: UnsafeBufferPointer<PredicateCode>
        let segments: UnsafeBufferPointer<Range<Int>>
        let versions: UnsafeBufferPointer<VersionCode>
        let texts: UnsafeBufferPointer<Range<Int>>
        let bytes: UnsafeBufferPointer<UInt8>
        let cidrs: UnsafeBufferPointer<CIDR>
        let names: UnsafeBufferPointer<String>
        /// The case-sensitive table, then the case-insensitive one.
        let oneOf: UnsafeBufferPointer<ByteKeyedTable<Bool>>
        let semanticVersions: UnsafeBufferPointer<SemanticVersion>
        let semanticVersionRanges: UnsafeBufferPointer<SemanticVersionRange>
        let regexes: UnsafeBufferPointer<CompiledRegex>
        let predicateSources: UnsafeBufferPointer<Predicate>
        let versionSources: UnsafeBufferPointer<VersionMatch>
        let segmentNames: UnsafeBufferPointer<String>
        let flagNames: UnsafeBufferPointer<String>
        let stickinessLabels: UnsafeBufferPointer<String>

        /// The bytes of text `index`.
        @inline(__always)
        func text(_ index: Int) -> UnsafeBufferPointer<UInt8> {
            Bytes.slice(self.bytes, self.texts[index])
        }

        /// Whether `method` is one of the texts `methods`, compared exactly as `String` equality compares.
        ///
        /// Configured methods are ASCII tokens, so an ASCII method compares byte for byte; anything else falls back
        /// to `String` equality, which also treats canonically equivalent Unicode as equal.
        func containsMethod(_ methods: Range<Int>, _ method: String) -> Bool {
            MethodList.contains(method, methods.lazy.map { self.text($0) })
        }
    }
}

/// Compares a request method with a list of configured methods.
///
/// Shared by method conditions and by route lookup, which must agree with `String` equality on every input.
enum MethodList {
    /// Whether `method` equals one of `methods` (UTF-8 bytes) as `String` equality decides.
    ///
    /// A byte comparison is exact for ASCII; a method with other bytes is compared as `String`s.
    @inline(__always)
    static func contains(_ method: String, _ methods: some Sequence<UnsafeBufferPointer<UInt8>>) -> Bool {
        var bytes = method
        return bytes.withUTF8 { bytes in
            guard !bytes.contains(where: { $0 >= 0x80 }) else {
                return methods.contains { String(decoding: $0, as: UTF8.self) == method }
            }
            return methods.contains { Bytes.equal(bytes, $0) }
        }
    }
}

/// One node of a compiled condition; the nodes of a rule are stored in prefix order.
///
/// The children of `all`, `any` and `not` follow their node, each child's subtree ending where the next child
/// starts, so evaluation short-circuits by jumping to `end`.
struct ConditionNode: Sendable {
    enum Kind: UInt8, Sendable {
        case all
        case any
        case not
        /// Always true: a rule naming an off flag is disabled at compile time.
        case flag
        case segment
        case version
        case percentage
        case method
        case predicate
    }

    let kind: Kind
    /// The index one past the last node of this node's subtree.
    let end: Int
    /// The index in `flagNames`, `segments`, `versions` or `predicates`, or the percentage.
    let operand: Int
    /// The range of a method node's (upper-case) methods in `texts`; empty otherwise.
    let methods: Range<Int>

    init(_ kind: Kind, end: Int, operand: Int = 0, methods: Range<Int> = 0..<0) {
        self.kind = kind
        self.end = end
        self.operand = operand
        self.methods = methods
    }
}

/// A rule's evaluation data, without its name, upstream and rewrite.
///
/// Those are read from `CompiledRule` only for the rule that wins or when explaining.
struct RuleCode: Sendable {
    /// The index of the rule's condition in `nodes`.
    let condition: Int
    /// Whether a flag the rule names is off, so the rule is skipped.
    let disabled: Bool
    let stickiness: AttributeCode?
    /// Has already consumed `"<rule name>:"`, so bucketing hashes only the stickiness value.
    let bucketHasher: Murmur3.Hasher
}

/// A request attribute with its name stored in the program.
///
/// Header names are lower-cased (`RoutableRequest.header` receives lower case); query names are kept as bytes.
struct AttributeCode: Sendable {
    enum Kind: UInt8, Sendable {
        case header
        case cookie
        case query
        case clientIP
        case clientCertSubject
    }

    let kind: Kind
    /// The index in `names` for a header or cookie, in `texts` for a query parameter.
    let name: Int
}

/// A predicate with its values pre-processed for the operator.
///
/// Sets become hash-table entries, texts become (lower-cased) bytes; numbers, versions, ranges and regexes are
/// parsed.
struct PredicateCode: Sendable {
    enum Test: UInt8, Sendable {
        case exists
        case absent
        /// Values in `oneOf[foldsCase ? 1 : 0]` under the predicate's index.
        case oneOf
        /// `operands` in `texts`.
        case prefix
        case suffix
        case contains
        /// `operands` in `regexes`.
        case regex
        /// `op` against `number`.
        case number
        /// `op` against `semanticVersions[operands.lowerBound]`.
        case semver
        /// `semanticVersionRanges[operands.lowerBound]`.
        case semverRange
        /// `operands` in `cidrs`.
        case cidr
    }

    let attribute: AttributeCode
    let test: Test
    let op: Predicate.Operator
    let negated: Bool
    let foldsCase: Bool
    let operands: Range<Int>
    let number: Double
}

/// A version match with its names and requirement pre-processed.
///
/// Parsed once so that a decision only parses the request's version.
struct VersionCode: Sendable {
    /// The index of the lower-cased header name in `names`.
    let header: Int
    /// The index of the lower-cased parameter name in `texts`, or nil for the whole header value.
    let parameter: Int?
    /// The index of the exact value in `texts`, or nil when `range` applies.
    let exact: Int?
    /// The index in `semanticVersionRanges` when `exact` is nil.
    let range: Int
}
