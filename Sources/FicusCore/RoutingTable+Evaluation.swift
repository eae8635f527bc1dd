/// Evaluates the rules of one route for one request.
///
/// Holds the per-request state (the current rule's bucket) on the stack; with no recorder attached it builds no
/// strings and allocates nothing for the common conditions. The request is passed to each method rather than
/// stored, so that it is borrowed instead of copied.
struct Evaluation {
    let segments: [CompiledSegment]
    let recorder: TraceRecorder?
    private var ruleBucket: Int?
    private var ruleBucketComputed = false
    private var bucketSource = ""
    /// The bucket of the last rule whose percentage condition computed one.
    private(set) var lastBucket: Int?

    init(segments: [CompiledSegment], recorder: TraceRecorder?) {
        self.segments = segments
        self.recorder = recorder
    }

    mutating func start() {
        self.ruleBucket = nil
        self.ruleBucketComputed = false
    }

    mutating func evaluate<R: RoutableRequest>(_ condition: CompiledCondition, _ rule: CompiledRule, _ request: R)
        -> Bool
    {
        self.recorder?.begin()
        var result: Bool
        switch condition {
        case .all(let conditions):
            result = true
            for condition in conditions where !self.evaluate(condition, rule, request) {
                result = false
                break
            }
        case .any(let conditions):
            result = false
            for condition in conditions where self.evaluate(condition, rule, request) {
                result = true
                break
            }
        case .not(let condition):
            result = !self.evaluate(condition, rule, request)
        case .flag:
            result = true
        case .segment(let index):
            result = true
            for constraint in self.segments[index].constraints where !self.evaluate(constraint, request) {
                result = false
                break
            }
        case .version(let version):
            result = self.matches(version, request)
        case .percentage(let percentage):
            let bucket = self.bucket(rule, request)
            result = percentage >= 100 || (bucket.map { $0 <= percentage } ?? false)
        case .method(let methods):
            result = methods.contains(request.method)
        case .predicate(let predicate):
            result = self.matches(predicate, request)
        }
        if let recorder = self.recorder {
            recorder.end(self.describe(condition, result, request), result)
        }
        return result
    }

    private func evaluate<R: RoutableRequest>(_ predicate: CompiledPredicate, _ request: R) -> Bool {
        self.recorder?.begin()
        let result = self.matches(predicate, request)
        if let recorder = self.recorder {
            recorder.end(self.describe(predicate, request), result)
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
        _ attribute: CompiledAttribute,
        _ request: R,
        _ body: (UnsafeBufferPointer<UInt8>?) -> T
    ) -> T {
        switch attribute {
        case .header(let name):
            guard var value = request.header(name) else {
                return body(nil)
            }
            return value.withUTF8 { body($0) }
        case .cookie(let name):
            guard var value = request.cookie(name) else {
                return body(nil)
            }
            return value.withUTF8 { body($0) }
        case .query(let name):
            guard var query = request.query else {
                return body(nil)
            }
            return query.withUTF8 { QueryString.withValue(named: name, in: $0, body) }
        case .clientIP:
            guard let address = request.clientAddress?.unmapped else {
                return body(nil)
            }
            return withUnsafeTemporaryAllocation(of: UInt8.self, capacity: IPAddress.maximumTextLength) { buffer in
                let count = address.writeText(into: buffer)
                return body(UnsafeBufferPointer(rebasing: buffer[..<count]))
            }
        }
    }

    // MARK: Predicates

    func matches<R: RoutableRequest>(_ predicate: CompiledPredicate, _ request: R) -> Bool {
        if case .cidr(let ranges, let negated) = predicate.test {
            guard let address = request.clientAddress else {
                return negated
            }
            return ranges.contains { $0.contains(address) } != negated
        }
        return self.withValue(predicate.attribute, request) { value in
            guard let value else {
                switch predicate.test {
                case .absent, .oneOf(_, negated: true):
                    return true
                default:
                    return false
                }
            }
            switch predicate.test {
            case .exists:
                return true
            case .absent:
                return false
            case .oneOf(let table, let negated):
                return table.contains(value) != negated
            case .prefix(let prefixes, let folds):
                return prefixes.contains { Bytes.hasPrefix(value, $0, foldsCase: folds) }
            case .suffix(let suffixes, let folds):
                return suffixes.contains { Bytes.hasSuffix(value, $0, foldsCase: folds) }
            case .contains(let needles, let folds):
                return needles.contains { Bytes.contains(value, $0, foldsCase: folds) }
            case .regex(let regexes):
                let text = String(decoding: value, as: UTF8.self)
                return regexes.contains { $0.matches(text) }
            case .number(let op, let bound):
                guard let number = parseNumber(String(decoding: value, as: UTF8.self)) else {
                    return false
                }
                return Self.compare(number, bound, op)
            case .semver(let op, let bound):
                guard let version = SemanticVersion.parse(value) else {
                    return false
                }
                return Self.compare(version, bound, op)
            case .semverRange(let range):
                return SemanticVersion.parse(value).map(range.contains) ?? false
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

    func matches<R: RoutableRequest>(_ version: CompiledVersion, _ request: R) -> Bool {
        guard var header = request.header(version.header) else {
            return false
        }
        return header.withUTF8 { bytes in
            let range: Range<Int>
            if let parameter = version.parameter {
                guard let found = MediaType.parameterValue(named: parameter, in: bytes) else {
                    return false
                }
                range = found
            } else {
                range = Bytes.trimmed(bytes, 0..<bytes.count)
            }
            let value = Bytes.slice(bytes, range)
            switch version.requirement {
            case .exact(let expected):
                return Bytes.equal(value, expected)
            case .range(let semverRange):
                return SemanticVersion.parse(value).map(semverRange.contains) ?? false
            }
        }
    }

    // MARK: Buckets

    /// The current rule's sticky bucket, computed once per rule; nil when the request has no stickiness value.
    ///
    /// See `Rule.stickiness` for the value and its fallback.
    private mutating func bucket<R: RoutableRequest>(_ rule: CompiledRule, _ request: R) -> Int? {
        if self.ruleBucketComputed {
            return self.ruleBucket
        }
        self.ruleBucketComputed = true
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
                    "\(rule.stickinessLabel) \"\(String(decoding: $0!, as: UTF8.self))\""
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
            let bucket = Int(hasher.finalize() % 100) + 1
            self.ruleBucket = bucket
            self.lastBucket = bucket
        }
        self.bucketSource = source
        return self.ruleBucket
    }

    // MARK: Explanations

    private func describe<R: RoutableRequest>(_ condition: CompiledCondition, _ result: Bool, _ request: R) -> String {
        switch condition {
        case .all(let conditions):
            return conditions.isEmpty ? "always" : "all"
        case .any(let conditions):
            return conditions.isEmpty ? "never" : "any"
        case .not:
            return "not"
        case .flag(let name):
            return "flag '\(name)' is on"
        case .segment(let index):
            return "segment '\(self.segments[index].name)'"
        case .version(let version):
            guard var header = request.header(version.header) else {
                return "version \(version.source): no \(version.source.header) header"
            }
            let value = header.withUTF8 { bytes -> String? in
                guard let parameter = version.parameter else {
                    return String(decoding: Bytes.slice(bytes, Bytes.trimmed(bytes, 0..<bytes.count)), as: UTF8.self)
                }
                return MediaType.parameterValue(named: parameter, in: bytes).map {
                    String(decoding: Bytes.slice(bytes, $0), as: UTF8.self)
                }
            }
            guard let value else {
                return "version \(version.source): no \(version.source.parameter ?? "") parameter"
            }
            return "version \(version.source): got \"\(value)\""
        case .percentage(let percentage):
            guard let bucket = self.ruleBucket else {
                return percentage >= 100
                    ? "percentage \(percentage)"
                    : "percentage \(percentage): no bucket (no stickiness value and no client address)"
            }
            return "percentage \(percentage): bucket \(bucket) from \(self.bucketSource)"
        case .method(let methods):
            return "method [\(methods.joined(separator: ", "))]: got \(request.method)"
        case .predicate(let predicate):
            return self.describe(predicate, request)
        }
    }

    private func describe<R: RoutableRequest>(_ predicate: CompiledPredicate, _ request: R) -> String {
        let value = self.withValue(predicate.attribute, request) { $0.map { String(decoding: $0, as: UTF8.self) } }
        return "\(predicate.source): " + (value.map { "got \"\($0)\"" } ?? "missing")
    }
}
