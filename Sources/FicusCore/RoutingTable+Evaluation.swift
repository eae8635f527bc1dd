/// Evaluates the rules of one route for one request.
///
/// Holds the per-request state (the current rule's bucket) on the stack and reads the compiled rules through the
/// plain buffers of `RuleProgram.Code`, so that with no recorder attached it retains nothing, builds no strings and
/// allocates nothing for the common conditions. A plain value throughout (a pointer to the code, an unmanaged
/// recorder that the caller keeps alive), so that copying it for a call costs a few words and no reference counts.
/// The request is passed to each method rather than stored, so that it is borrowed instead of copied.
struct Evaluation {
    private let program: UnsafePointer<RuleProgram.Code>
    private let trace: Unmanaged<TraceRecorder>?
    private var ruleBucket: Int?
    private var ruleBucketComputed = false
    /// The bucket of the last rule whose percentage condition computed one.
    private(set) var lastBucket: Int?
    /// The whole hash behind `lastBucket` (see `Decision.stickyHash`).
    private(set) var lastStickyHash: UInt32?

    /// Creates an evaluation over `program`; `recorder`, when given, must outlive it.
    init(program: UnsafePointer<RuleProgram.Code>, recorder: TraceRecorder?) {
        self.program = program
        self.trace = recorder.map { Unmanaged.passUnretained($0) }
    }

    @inline(__always)
    private var code: RuleProgram.Code {
        unsafeAddress {
            self.program
        }
    }

    @inline(__always)
    private var recorder: TraceRecorder? {
        self.trace?.takeUnretainedValue()
    }

    mutating func start() {
        self.ruleBucket = nil
        self.ruleBucketComputed = false
    }

    /// Whether the condition at `nodes[node]` holds for `request`, evaluated on behalf of `rules[rule]`.
    mutating func evaluate<R: RoutableRequest>(_ node: Int, _ rule: Int, _ request: R) -> Bool {
        self.recorder?.begin()
        let condition = self.code.nodes[node]
        var result: Bool
        switch condition.kind {
        case .all:
            result = true
            var child = node + 1
            while child < condition.end {
                if !self.evaluate(child, rule, request) {
                    result = false
                    break
                }
                child = self.code.nodes[child].end
            }
        case .any:
            result = false
            var child = node + 1
            while child < condition.end {
                if self.evaluate(child, rule, request) {
                    result = true
                    break
                }
                child = self.code.nodes[child].end
            }
        case .not:
            result = !self.evaluate(node + 1, rule, request)
        case .flag:
            result = true
        case .segment:
            result = true
            for constraint in self.code.segments[condition.operand] where !self.evaluate(constraint, request) {
                result = false
                break
            }
        case .version:
            result = self.matches(version: condition.operand, request)
        case .percentage:
            let bucket = self.bucket(rule, request)
            result = condition.operand >= 100 || (bucket.map { $0 <= condition.operand } ?? false)
        case .method:
            result = self.code.containsMethod(condition.methods, request.method)
        case .predicate:
            result = self.matches(predicate: condition.operand, request)
        }
        if let recorder = self.recorder {
            recorder.end(self.describe(node, result, request), result)
        }
        return result
    }

    /// Whether `request` is in the segment at `segments[segment]`, traced as one condition named `text`.
    ///
    /// For checks outside any rule (a blue-green preview segment); shares the constraint evaluation of rules.
    func matches<R: RoutableRequest>(segment: Int, text: String, _ request: R) -> Bool {
        self.recorder?.begin()
        var result = true
        for constraint in self.code.segments[segment] where !self.evaluate(constraint, request) {
            result = false
            break
        }
        self.recorder?.end(text, result)
        return result
    }

    private func evaluate<R: RoutableRequest>(_ predicate: Int, _ request: R) -> Bool {
        self.recorder?.begin()
        let result = self.matches(predicate: predicate, request)
        if let recorder = self.recorder {
            recorder.end(self.describe(predicate: predicate, request), result)
        }
        return result
    }

    // MARK: Attribute values

    /// Calls `body` with the bytes of `attribute`'s value, or with nil when the request lacks it.
    ///
    /// Header and cookie strings are read in place; a query value is percent-decoded into a stack buffer only when it
    /// contains escapes; a client address is formatted into a stack buffer.
    @inline(__always)
    func withValue<T, R: RoutableRequest>(
        _ attribute: AttributeCode,
        _ request: R,
        _ body: (UnsafeBufferPointer<UInt8>?) -> T
    ) -> T {
        switch attribute.kind {
        case .header:
            guard var value = request.header(self.code.names[attribute.name]) else {
                return body(nil)
            }
            return value.withUTF8 { body($0) }
        case .cookie:
            guard var value = request.cookie(self.code.names[attribute.name]) else {
                return body(nil)
            }
            return value.withUTF8 { body($0) }
        case .query:
            guard var query = request.query else {
                return body(nil)
            }
            let name = self.code.text(attribute.name)
            return query.withUTF8 { QueryString.withValue(named: name, in: $0, body) }
        case .clientIP:
            guard let address = request.clientAddress?.unmapped else {
                return body(nil)
            }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: IPAddress.maximumTextLength) { buffer in
                let count = address.writeText(into: buffer)
                return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        case .clientCertSubject:
            guard var subject = request.clientCertificateSubject else {
                return body(nil)
            }
            return subject.withUTF8 { body($0) }
        }
    }

    // MARK: Predicates

    func matches<R: RoutableRequest>(predicate index: Int, _ request: R) -> Bool {
        let predicate = self.code.predicates[index]
        if predicate.test == .cidr {
            guard let address = request.clientAddress else {
                return predicate.negated
            }
            return self.code.cidrs[predicate.operands].contains { $0.contains(address) } != predicate.negated
        }
        return self.withValue(predicate.attribute, request) { value in
            guard let value else {
                switch predicate.test {
                case .absent:
                    return true
                case .oneOf:
                    return predicate.negated
                default:
                    return false
                }
            }
            switch predicate.test {
            case .exists:
                return true
            case .absent:
                return false
            case .oneOf:
                let table = predicate.foldsCase ? 1 : 0
                return self.code.oneOf[table].contains(value, owner: index) != predicate.negated
            case .prefix:
                return predicate.operands.contains {
                    Bytes.hasPrefix(value, self.code.text($0), foldsCase: predicate.foldsCase)
                }
            case .suffix:
                return predicate.operands.contains {
                    Bytes.hasSuffix(value, self.code.text($0), foldsCase: predicate.foldsCase)
                }
            case .contains:
                return predicate.operands.contains {
                    Bytes.contains(value, self.code.text($0), foldsCase: predicate.foldsCase)
                }
            case .regex:
                let text = String(decoding: value, as: UTF8.self)
                return self.code.regexes[predicate.operands].contains { $0.matches(text) }
            case .number:
                guard let number = parseNumber(String(decoding: value, as: UTF8.self)) else {
                    return false
                }
                return Self.compare(number, predicate.number, predicate.op)
            case .semver:
                guard let version = SemanticVersion.parse(value) else {
                    return false
                }
                return Self.compare(version, self.code.semanticVersions[predicate.operands.lowerBound], predicate.op)
            case .semverRange:
                guard let version = SemanticVersion.parse(value) else {
                    return false
                }
                return self.code.semanticVersionRanges[predicate.operands.lowerBound].contains(version)
            case .cidr:
                return false
            }
        }
    }

    private static func compare<T: Comparable>(_ value: T, _ bound: T, _ op: Predicate.Operator) -> Bool {
        switch op {
        case .numberEquals, .semverEquals:
            return value == bound
        case .numberLessThan, .semverLessThan:
            return value < bound
        case .numberLessThanOrEqual, .semverLessThanOrEqual:
            return value <= bound
        case .numberGreaterThan, .semverGreaterThan:
            return value > bound
        case .numberGreaterThanOrEqual, .semverGreaterThanOrEqual:
            return value >= bound
        default:
            return false
        }
    }

    // MARK: Versions

    func matches<R: RoutableRequest>(version index: Int, _ request: R) -> Bool {
        let version = self.code.versions[index]
        guard var header = request.header(self.code.names[version.header]) else {
            return false
        }
        return header.withUTF8 { bytes in
            let range: Range<Int>
            if let parameter = version.parameter {
                guard let found = MediaType.parameterValue(named: self.code.text(parameter), in: bytes) else {
                    return false
                }
                range = found
            } else {
                range = Bytes.trimmed(bytes, 0..<bytes.count)
            }
            let value = Bytes.slice(bytes, range)
            if let exact = version.exact {
                return Bytes.equal(value, self.code.text(exact))
            }
            guard let parsed = SemanticVersion.parse(value) else {
                return false
            }
            return self.code.semanticVersionRanges[version.range].contains(parsed)
        }
    }

    // MARK: Buckets

    /// The current rule's sticky bucket, computed once per rule; nil when the request has no stickiness value.
    ///
    /// See `Rule.stickiness` for the value and its fallback.
    private mutating func bucket<R: RoutableRequest>(_ index: Int, _ request: R) -> Int? {
        if self.ruleBucketComputed {
            return self.ruleBucket
        }
        self.ruleBucketComputed = true
        let rule = self.code.rules[index]
        var hasher = rule.bucketHasher
        var source = ""
        var found = false
        if let stickiness = rule.stickiness {
            found = self.withValue(stickiness, request) { value in
                guard let value, !value.isEmpty else {
                    return false
                }
                hasher.combine(value)
                return true
            }
            if found, self.recorder != nil {
                source = self.withValue(stickiness, request) {
                    "\(self.code.stickinessLabels[index]) \"\(String(decoding: $0!, as: UTF8.self))\""
                }
            }
        }
        if !found, let address = request.clientAddress?.unmapped {
            withUnsafeTemporaryAllocation(of: UInt8.self, capacity: IPAddress.maximumTextLength) { buffer in
                let count = address.writeText(into: buffer)
                hasher.combine(UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
            found = true
            if self.recorder != nil {
                source = "client_ip \(address)"
            }
        }
        if found {
            let hash = hasher.finalize()
            let bucket = Int(hash % 100) + 1
            self.ruleBucket = bucket
            self.lastBucket = bucket
            self.lastStickyHash = hash
        }
        self.recorder?.bucketSource = source
        return self.ruleBucket
    }

    // MARK: Explanations

    private func describe<R: RoutableRequest>(_ node: Int, _ result: Bool, _ request: R) -> String {
        let condition = self.code.nodes[node]
        switch condition.kind {
        case .all:
            return condition.end == node + 1 ? "always" : "all"
        case .any:
            return condition.end == node + 1 ? "never" : "any"
        case .not:
            return "not"
        case .flag:
            return "flag '\(self.code.flagNames[condition.operand])' is on"
        case .segment:
            return "segment '\(self.code.segmentNames[condition.operand])'"
        case .version:
            let version = self.code.versions[condition.operand]
            let source = self.code.versionSources[condition.operand]
            guard var header = request.header(self.code.names[version.header]) else {
                return "version \(source): no \(source.header) header"
            }
            let value = header.withUTF8 { bytes -> String? in
                guard let parameter = version.parameter else {
                    return String(decoding: Bytes.slice(bytes, Bytes.trimmed(bytes, 0..<bytes.count)), as: UTF8.self)
                }
                return MediaType.parameterValue(named: self.code.text(parameter), in: bytes).map {
                    String(decoding: Bytes.slice(bytes, $0), as: UTF8.self)
                }
            }
            guard let value else {
                return "version \(source): no \(source.parameter ?? "") parameter"
            }
            return "version \(source): got \"\(value)\""
        case .percentage:
            let percentage = condition.operand
            guard let bucket = self.ruleBucket else {
                return percentage >= 100
                    ? "percentage \(percentage)"
                    : "percentage \(percentage): no bucket (no stickiness value and no client address)"
            }
            return "percentage \(percentage): bucket \(bucket) from \(self.recorder?.bucketSource ?? "")"
        case .method:
            let methods = condition.methods.map { String(decoding: self.code.text($0), as: UTF8.self) }
            return "method [\(methods.joined(separator: ", "))]: got \(request.method)"
        case .predicate:
            return self.describe(predicate: condition.operand, request)
        }
    }

    private func describe<R: RoutableRequest>(predicate index: Int, _ request: R) -> String {
        let attribute = self.code.predicates[index].attribute
        let value = self.withValue(attribute, request) { $0.map { String(decoding: $0, as: UTF8.self) } }
        return "\(self.code.predicateSources[index]): " + (value.map { "got \"\($0)\"" } ?? "missing")
    }
}
