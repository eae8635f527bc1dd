import NIOConcurrencyHelpers
import NIOCore

/// A copy of a recent 200 answer to a GET, kept to stand in when its upstream fails (`stale_if_error`).
struct StaleAnswer: Sendable {
    /// The answer's reason phrase and fields as they went to the client, minus framing, hop-by-hop fields and `Age`.
    var reason: String
    var fields: [(String, String)]
    var body: ByteBuffer
    /// When the answer arrived (the event loop's clock).
    var stored: NIODeadline
    /// The request fields the answer varies on (its `Vary`), lower-cased, and the request's values of them.
    var vary: [(String, String?)]

    /// What the copy costs the cache: its body and a rough size of its fields.
    var bytes: Int {
        self.body.readableBytes + self.fields.reduce(64) { $0 + $1.0.utf8.count + $1.1.utf8.count + 4 }
    }

    /// The answer as Ficus sends it: status 200, its fields, `Age` (whole seconds since it arrived) and
    /// `X-Ficus-Stale: 1`, framed by length, with `Connection: close` when the connection closes after it.
    func response(now: NIODeadline, keepAlive: Bool, clientMinorVersion: UInt8) -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(self.body.readableBytes + 256)
        out.writeStaticString("HTTP/1.1 200 ")
        out.writeString(self.reason.isEmpty ? "OK" : self.reason)
        out.writeStaticString("\r\n")
        for (name, value) in self.fields {
            out.writeString(name)
            out.writeStaticString(": ")
            out.writeString(value)
            out.writeStaticString("\r\n")
        }
        out.writeStaticString("age: ")
        out.writeString(String(max(0, (now - self.stored).nanoseconds / 1_000_000_000)))
        out.writeStaticString("\r\nx-ficus-stale: 1\r\ncontent-length: ")
        out.writeString(String(self.body.readableBytes))
        out.writeStaticString("\r\n")
        if !keepAlive {
            out.writeStaticString("connection: close\r\n")
        } else if clientMinorVersion == 0 {
            out.writeStaticString("connection: keep-alive\r\n")
        }
        out.writeStaticString("\r\n")
        out.writeImmutableBuffer(self.body)
        return out
    }

    /// Whether an answer with `head` may be kept: a 200 that is not `no-store` or `private`, does not vary on
    /// everything (`Vary: *`) and sets no cookie (a copy would hand one user's cookie to another).
    static func mayKeep(_ head: HTTPHead) -> Bool {
        guard head.status == 200 else { return false }
        for value in head.values("cache-control") {
            let directives = value.lowercased().split(separator: ",").map {
                $0.split(separator: "=", maxSplits: 1).first.map { String(Self.trimmedOWS($0)) } ?? ""
            }
            if directives.contains("no-store") || directives.contains("private") { return false }
        }
        if head.values("vary").contains(where: { $0.contains("*") }) { return false }
        return head.firstValue("set-cookie") == nil
    }

    /// Field names a copy never keeps: framing, hop-by-hop fields and `Age`.
    ///
    /// Built once: building the set per answer was a measurable part of what `stale_if_error` costs a request.
    private static let droppedFields: Set<String> = [
        "connection", "keep-alive", "te", "upgrade", "proxy-connection", "transfer-encoding", "content-length",
        "age", "trailer",
    ]

    /// The fields of `head` a copy keeps: all but framing, hop-by-hop fields, those `Connection` names, and `Age`.
    static func keptFields(_ head: HTTPHead) -> [(String, String)] {
        let named = Set(
            head.values("connection").flatMap { $0.lowercased().split(separator: ",") }.map {
                String(Self.trimmedOWS($0))
            })
        return head.fieldPairs.filter { name, _ in
            let lower = name.lowercased()
            return !Self.droppedFields.contains(lower) && !named.contains(lower)
        }
    }

    /// The field names of `head`'s `Vary`, lower-cased.
    static func varyNames(_ head: HTTPHead) -> [String] {
        head.values("vary").flatMap { $0.split(separator: ",") }.map {
            Self.trimmedOWS($0).lowercased()
        }.filter { !$0.isEmpty }
    }

    /// `text` without the spaces and tabs around it (HTTP's optional whitespace around list elements).
    ///
    /// Foundation's `trimmingCharacters(in: .whitespaces)` took over a third of `stale_if_error`'s cost per request
    /// (a `Connection: keep-alive` on every answer); field values are ASCII, so two characters are enough.
    static func trimmedOWS(_ text: Substring) -> Substring {
        var text = text
        while let first = text.first, first == " " || first == "\t" { text.removeFirst() }
        while let last = text.last, last == " " || last == "\t" { text.removeLast() }
        return text
    }
}

/// One answer being copied while it streams to the client; given up when it grows past the entry limit.
///
/// A class: the exchange record asks after it on every part of every answer of a route with `stale_if_error`, and as
/// an optional struct in a class's property each question copied and destroyed the whole copy (about 2 % of a
/// request's CPU in the profile of docs/BENCHMARKS.md, session 10).
final class StaleCapture {
    private(set) var answer: StaleAnswer
    let limit: Int

    init(answer: StaleAnswer, limit: Int) {
        self.answer = answer
        self.limit = limit
    }

    /// Appends a part of the body; false once the copy is over the limit (and is to be given up).
    func append(_ body: ByteBuffer) -> Bool {
        guard self.answer.body.readableBytes + body.readableBytes <= self.limit else { return false }
        var part = body
        self.answer.body.writeBuffer(&part)
        return true
    }
}

/// Where a request's answer is kept for `stale_if_error`: its route, its host (lower-cased, without the port) and its
/// target (path and query, as received).
///
/// Made for every GET of a route with `stale_if_error`, idle or not, so it is made of the request head's own bytes:
/// the host and target are slices of the head (no copy, no string), hashed once when the key is made. Building a
/// string key and hashing it per request was most of what `stale_if_error` cost an idle route (docs/BENCHMARKS.md,
/// "Issue 17 on a quiet machine"). A kept key owns copies of its bytes (`detached()`), so the cache never holds a
/// connection's read buffer.
struct StaleKey: Hashable, Sendable {
    let route: String
    let host: ByteBuffer
    let target: ByteBuffer
    /// The hash of the three, with the process's random seed (as `Hasher` always is): a client chooses the target,
    /// so the cache's dictionary must not be open to chosen collisions.
    private let hash: Int

    /// The key's hash, for `StaleFreshness`'s slots.
    var hashBits: UInt64 { UInt64(bitPattern: Int64(self.hash)) }

    init(route: String, host: ByteBuffer, target: ByteBuffer) {
        self.route = route
        self.host = host
        self.target = target
        var hasher = Hasher()
        hasher.combine(route)
        // The lengths keep the parts apart: ("ab", "c") and ("a", "bc") hash differently.
        hasher.combine(host.readableBytes)
        host.withUnsafeReadableBytes { hasher.combine(bytes: $0) }
        hasher.combine(target.readableBytes)
        target.withUnsafeReadableBytes { hasher.combine(bytes: $0) }
        self.hash = hasher.finalize()
    }

    /// The key of a request routed by `route`: its host and target as slices of its head.
    init(route: String, view: RequestView) {
        let head = view.head
        let target =
            head.bytes.getSlice(at: head.bytes.readerIndex + head.targetRange.lowerBound, length: head.targetRange.count)
            ?? ByteBuffer()
        self.init(route: route, host: view.hostBytes, target: target)
    }

    /// A key from strings; `host` is lower-cased (tests and tools).
    init(route: String, host: String, target: String) {
        self.init(route: route, host: ByteBuffer(string: host.lowercased()), target: ByteBuffer(string: target))
    }

    /// The same key over copies of just its own bytes, to be kept.
    func detached() -> StaleKey {
        let allocator = ByteBufferAllocator()
        return StaleKey(
            route: self.route, host: allocator.buffer(buffer: self.host), target: allocator.buffer(buffer: self.target),
            hash: self.hash)
    }

    private init(route: String, host: ByteBuffer, target: ByteBuffer, hash: Int) {
        self.route = route
        self.host = host
        self.target = target
        self.hash = hash
    }

    static func == (lhs: StaleKey, rhs: StaleKey) -> Bool {
        lhs.hash == rhs.hash && lhs.route == rhs.route && lhs.host == rhs.host && lhs.target == rhs.target
    }

    func hash(into hasher: inout Hasher) {
        hasher.combine(self.hash)
    }
}

/// The recent answers of every route with `stale_if_error`, shared by a proxy's event loops: bounded in bytes, the
/// least recently used given up first (docs/PROXY.md, Stale answers).
///
/// One lock around a `RecencyList`: touched once per answer kept (routes without `stale_if_error` never touch it)
/// and once per failure that asks for a copy. A key holds one answer, the latest; an answer whose `Vary` fields the
/// asking request does not match is not served.
final class StaleAnswers: Sendable {
    /// The bounds: all answers together, and one answer's body.
    struct Limits: Sendable {
        var maxBytes: Int
        var maxEntryBytes: Int
    }

    private struct State {
        var answers = RecencyList<StaleKey, StaleAnswer>()
        var bytes = 0
    }

    let limits: Limits
    private let state = NIOLockedValueBox(State())

    init(limits: Limits) {
        self.limits = limits
    }

    /// Keeps `answer` under `key`, replacing what was there; the least recently used answers go until it fits. False
    /// when the answer alone is larger than the cache.
    @discardableResult
    func store(_ key: StaleKey, _ answer: StaleAnswer) -> Bool {
        let size = answer.bytes
        guard size <= self.limits.maxBytes else { return false }
        return self.state.withLockedValue { state in
            if let old = state.answers.set(key.detached(), answer) {
                state.bytes -= old.bytes
            }
            state.bytes += size
            while state.bytes > self.limits.maxBytes, let (_, evicted) = state.answers.removeLeastRecent() {
                state.bytes -= evicted.bytes
            }
            return true
        }
    }

    /// How long a kept copy is fresh enough not to be replaced: under load the same URLs are answered thousands of
    /// times a second, and copying each answer over an identical copy was most of `stale_if_error`'s cost.
    static let refreshAfter = TimeAmount.seconds(1)

    /// When a fresh copy of `key` was kept, wrapped in a second optional that is nil when the copy varies on request
    /// fields (a memo of it would have to know them); nil without a fresh copy. A copy is fresh when it is younger
    /// than `refreshAfter` and was kept for the request's values of its `Vary` fields (`value(name)`): then the answer
    /// streaming now need not be copied.
    ///
    /// Reads the copy in place under the lock instead of copying it out (a copy retains and releases its fields, body
    /// and `Vary` list); `value` is a lookup in the request's fields.
    private func freshCopy(_ key: StaleKey, now: NIODeadline, value: (String) -> String?) -> NIODeadline?? {
        self.state.withLockedValue { state in
            state.answers.withPeek(key) { answer -> NIODeadline?? in
                guard now - answer.stored < Self.refreshAfter,
                    answer.vary.allSatisfy({ name, kept in value(name) == kept })
                else { return nil }
                return .some(answer.vary.isEmpty ? answer.stored : nil)
            } ?? nil
        }
    }

    /// A capture for the answer with `head` to the request `view`, to be kept under `key` once it is complete; nil
    /// when it is not to be copied: a fresh copy is there already (asked first, of the event loop's `freshness` and
    /// then of the cache: under load it is the usual answer), or the answer may not be kept (`StaleAnswer.mayKeep`).
    func capture(
        _ head: HTTPHead, key: StaleKey, view: RequestView, freshness: StaleFreshness, now: NIODeadline = .now()
    ) -> StaleCapture? {
        if freshness.isFresh(key, now: now) { return nil }
        if let stored = self.freshCopy(key, now: now, value: { view.header($0) }) {
            if let stored { freshness.remember(key, stored: stored) }
            return nil
        }
        guard StaleAnswer.mayKeep(head) else { return nil }
        let vary = StaleAnswer.varyNames(head).map { ($0, view.header($0)) }
        return StaleCapture(
            answer: StaleAnswer(
                reason: head.string(head.reasonRange), fields: StaleAnswer.keptFields(head), body: ByteBuffer(),
                stored: now, vary: vary),
            limit: self.limits.maxEntryBytes)
    }

    /// Keeps a complete capture under `key`; the event loop's `freshness` remembers it (when it varies on nothing).
    func store(_ key: StaleKey, _ answer: StaleAnswer, freshness: StaleFreshness) {
        if self.store(key, answer), answer.vary.isEmpty { freshness.remember(key, stored: answer.stored) }
    }

    /// The answer kept under `key` if it arrived at most `maxAge` before `now` and the request's values of its
    /// `Vary` fields (`value(name)`) are the ones it was kept for.
    func lookup(
        _ key: StaleKey, now: NIODeadline, maxAge: TimeAmount, value: (String) -> String?
    ) -> StaleAnswer? {
        guard let answer = self.state.withLockedValue({ $0.answers.value(key) }) else { return nil }
        guard now - answer.stored <= maxAge else { return nil }
        for (name, kept) in answer.vary where value(name) != kept {
            return nil
        }
        return answer
    }

    /// Forgets every answer (a harness starts each run from nothing).
    func removeAll() {
        self.state.withLockedValue { $0 = State() }
    }

    /// Bytes and answers held, for tests and metrics.
    var usage: (bytes: Int, answers: Int) {
        self.state.withLockedValue { ($0.bytes, $0.answers.count) }
    }
}

/// Which keys one event loop knows to have a fresh copy in the cache, and since when: a first look that spares the
/// shared cache's lock, dictionary lookup and key comparison on the answers of a busy URL (every one of them asks
/// whether to copy itself, and all but about one a second are told no).
///
/// Loop-confined (`LoopResources`), so plain memory: a fixed table of slots indexed by the key's hash, each holding
/// the rest of the hash as a tag and when the copy was kept. A slot shared by two keys holds the later one; the other
/// is asked of the cache as before. Only copies that vary on no request field are remembered. What the memo may get
/// wrong is bounded by `StaleAnswers.refreshAfter`: a copy the cache gave up (least recently used) within that second
/// is not replaced until the second is over.
final class StaleFreshness {
    static let slotCount = 1024
    private static let timeBits: UInt64 = 24
    private static let timeMask: UInt64 = (1 << timeBits) - 1
    /// Time is kept in units of 2^24 ns (about 16.8 ms); a copy is fresh for fewer units than `refreshAfter` holds,
    /// so the memo never calls fresh what the cache would not.
    private static let unitShift: UInt64 = 24
    private static let freshUnits = UInt64(StaleAnswers.refreshAfter.nanoseconds) >> unitShift - 1

    private let slots: UnsafeMutablePointer<UInt64>

    init() {
        self.slots = .allocate(capacity: Self.slotCount)
        self.slots.initialize(repeating: 0, count: Self.slotCount)
    }

    deinit {
        self.slots.deallocate()
    }

    /// Whether this loop knows `key` to have a copy kept less than `refreshAfter` before `now`.
    func isFresh(_ key: StaleKey, now: NIODeadline) -> Bool {
        let bits = key.hashBits
        let slot = self.slots[Int(bits % UInt64(Self.slotCount))]
        guard slot != 0, slot & ~Self.timeMask == bits & ~Self.timeMask else { return false }
        let elapsed = (Self.units(now) &- slot) & Self.timeMask
        return elapsed < Self.freshUnits
    }

    /// `key` has a copy kept at `stored`.
    func remember(_ key: StaleKey, stored: NIODeadline) {
        let bits = key.hashBits
        self.slots[Int(bits % UInt64(Self.slotCount))] = (bits & ~Self.timeMask) | (Self.units(stored) & Self.timeMask)
    }

    private static func units(_ time: NIODeadline) -> UInt64 {
        time.uptimeNanoseconds >> Self.unitShift
    }
}
