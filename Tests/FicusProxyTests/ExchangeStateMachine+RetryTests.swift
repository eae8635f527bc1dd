import NIOCore
import Testing

@testable import FicusProxy

/// The route's retry policy in the exchange machine: which failures are retried, for which methods, with which
/// back-off, what the budget's answer changes, and how retries and fallback follow each other.
@Suite("Exchange state machine: retries")
struct ExchangeStateMachineRetryTests {
    typealias Machine = ExchangeStateMachine
    typealias Event = ExchangeStateMachine.Event
    typealias T = ExchangeStateMachineTests

    static let policy = Machine.Retry(
        onConnectFailure: true, onReset: true, statuses: [502, 503, 504], attempts: 2,
        backoffBase: .milliseconds(25), backoffMax: .milliseconds(250))

    static func request(
        _ method: HTTPMethodKind = .get,
        framing: HTTPBodyFraming = .none,
        retry: Machine.Retry = Self.policy,
        fallback: Bool = false
    ) -> Event {
        .requestHead(
            .init(
                method: method,
                framing: framing,
                wantsKeepAlive: true,
                expectsContinue: false,
                clientMinorVersion: 1,
                target: .upstream(
                    name: "orders-v2", connectTimeout: .seconds(5), responseTimeout: .seconds(30),
                    fallback: fallback ? .init(upstream: "legacy", statuses: [502, 503, 504]) : nil,
                    retry: retry)
            )
        )
    }

    static func status(_ code: Int) throws -> HTTPHead {
        try T.head("HTTP/1.1 \(code) X\r\ncontent-length: 0\r\n\r\n")
    }

    /// A GET whose connect is refused asks the budget; granted with jitter 0.5, it is recorded as a failure against
    /// the upstream, waits half of the first ceiling (25 ms) and goes to the pool again.
    @Test func aRefusedConnectIsRetriedAfterItsBackoff() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil)])
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
            ["ask retry budget (connect_failure)"]
        ])
        #expect(T.run(&machine, [.retryGranted(jitter: 0.5)]) == [
            ["record failed attempt 502", "shadow abandon retry", "retry 1 (connect_failure)", "deadline 12ms"]
        ])
        #expect(T.run(&machine, [.deadline(upstreamWritable: true)]) == [["deadline 5000ms", "lease"]])
        #expect(T.run(&machine, [.connectionReady(reused: false)])[0] == [
            "clear deadline", "forward head", "shadow sent", "forward end", "flush upstream",
        ])
    }

    /// The ceiling doubles per retry up to the maximum; jitter 0 retries at once.
    @Test func theBackoffHasFullJitterUnderADoublingCeiling() {
        let retry = Machine.Retry(
            onConnectFailure: true, onReset: true, statuses: [], attempts: 5, backoffBase: .milliseconds(25),
            backoffMax: .milliseconds(250))
        #expect(retry.backoff(retry: 1, jitter: 1) == .milliseconds(25))
        #expect(retry.backoff(retry: 2, jitter: 1) == .milliseconds(50))
        #expect(retry.backoff(retry: 4, jitter: 1) == .milliseconds(200))
        #expect(retry.backoff(retry: 5, jitter: 1) == .milliseconds(250))
        #expect(retry.backoff(retry: 60, jitter: 1) == .milliseconds(250), "no overflow past 2^62")
        #expect(retry.backoff(retry: 3, jitter: 0.5) == .milliseconds(50))
        #expect(retry.backoff(retry: 3, jitter: 0) == .nanoseconds(0))
        #expect(retry.backoff(retry: 3, jitter: .nan) == .nanoseconds(0))

        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil), .connectionFailed(.connectTimeout)])
        #expect(T.run(&machine, [.retryGranted(jitter: 0)]) == [
            ["record failed attempt 503", "shadow abandon retry", "retry 1 (connect_timeout)", "deadline 5000ms", "lease"]
        ])
    }

    /// A retried status: the answer is not forwarded; the connection goes and the request is sent again.
    @Test func aRetriedStatusIsNotForwarded() throws {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil), .connectionReady(reused: false)])
        #expect(T.run(&machine, [.upstreamHead(try Self.status(503))]) == [["ask retry budget (status)"]])
        #expect(T.run(&machine, [.retryGranted(jitter: 0)]) == [
            ["abort upstream", "record failed attempt 503", "shadow abandon retry", "retry 1 (status)",
             "deadline 5000ms", "lease"]
        ])
    }

    /// Refused by the budget, a status is forwarded as the upstream sent it, and a connect failure is answered.
    @Test func aRefusedRetryGoesOnAsWithoutAPolicy() throws {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil), .connectionReady(reused: false)])
        _ = machine.handle(.upstreamHead(try Self.status(503)))
        #expect(T.run(&machine, [.retryRefused])[0].first == "answer head 503 keep-alive")

        var refused = T.machine()
        _ = T.run(&refused, [Self.request(), .requestEnd(nil), .connectionFailed(.connectFailed("refused"))])
        let steps = T.run(&refused, [.retryRefused])[0]
        #expect(steps.contains("answer 502 upstream_unavailable keep-alive"), "\(steps)")
        #expect(!steps.contains { $0.hasPrefix("retry") })
    }

    /// After the last attempt, the failure is the answer; retries never exceed `attempts`.
    @Test func attemptsBoundTheRetries() throws {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil)])
        for number in 1...2 {
            #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
                ["ask retry budget (connect_failure)"]
            ])
            #expect(T.run(&machine, [.retryGranted(jitter: 0)])[0].contains("retry \(number) (connect_failure)"))
        }
        let last = T.run(&machine, [.connectionFailed(.connectFailed("refused"))])[0]
        #expect(last.contains("answer 502 upstream_unavailable keep-alive"), "\(last)")
    }

    /// A POST that reached the upstream is never retried (it may have been processed); a POST whose connect failed
    /// is, with its whole body; a status the policy does not list is the answer.
    @Test func onlyWhatIsSafeIsRetried() throws {
        var post = T.machine()
        _ = T.run(&post, [
            Self.request(.post, framing: .contentLength(3)), .connectionReady(reused: false), .requestBody(T.body(3)),
            .requestEnd(nil),
        ])
        let reset = T.run(&post, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: false)])[0]
        #expect(reset.contains("answer 502 upstream_reset keep-alive"), "\(reset)")
        var unsent = T.machine()
        _ = T.run(&unsent, [Self.request(.post, framing: .contentLength(3)), .requestBody(T.body(3)), .requestEnd(nil)])
        #expect(T.run(&unsent, [.connectionFailed(.connectFailed("refused"))]) == [
            ["ask retry budget (connect_failure)"]
        ])
        _ = unsent.handle(.retryGranted(jitter: 0))
        #expect(T.run(&unsent, [.connectionReady(reused: false)])[0] == [
            "clear deadline", "forward head", "shadow sent", "forward body 3", "forward end", "flush upstream",
        ])
        var unlisted = T.machine()
        _ = T.run(&unlisted, [Self.request(), .requestEnd(nil), .connectionReady(reused: false)])
        #expect(T.run(&unlisted, [.upstreamHead(try Self.status(500))])[0].first == "answer head 500 keep-alive")
    }

    /// A PUT with a body re-sent after a reset carries the whole body again; one over the kept size is not retried.
    @Test func aRetryCarriesTheWholeBodyOrDoesNotHappen() {
        var put = T.machine()
        _ = T.run(&put, [
            Self.request(.put, framing: .contentLength(4)), .connectionReady(reused: false), .requestBody(T.body(4)),
            .requestEnd(nil), .upstreamFailed(.closedBeforeHead, sawResponseBytes: false), .retryGranted(jitter: 0),
        ])
        #expect(T.run(&put, [.connectionReady(reused: false)])[0] == [
            "clear deadline", "forward head", "shadow sent", "forward body 4", "forward end", "flush upstream",
        ])
        var long = T.machine()
        let size = Machine.retainLimit + 1
        _ = T.run(&long, [
            Self.request(.put, framing: .contentLength(Int64(size))), .connectionReady(reused: false),
            .requestBody(T.body(size)), .requestEnd(nil),
        ])
        let steps = T.run(&long, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: false)])[0]
        #expect(!steps.contains { $0.hasPrefix("ask retry") }, "\(steps)")
    }

    /// Once any byte of an answer reached the client, nothing is retried.
    @Test func nothingIsRetriedAfterTheAnswerStarted() throws {
        var machine = T.machine()
        _ = T.run(&machine, [
            Self.request(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(try Self.status(200)),
        ])
        let steps = T.run(&machine, [.upstreamFailed(.closedAfterHead, sawResponseBytes: true)])[0]
        #expect(!steps.contains { $0.hasPrefix("ask retry") } && steps.last == "close", "\(steps)")
    }

    /// Retries come first; when they are spent, the fallback still protects the user, and the fallback gets no
    /// retries of its own.
    @Test func retriesComeBeforeTheFallback() throws {
        var machine = T.machine()
        let once = Machine.Retry(
            onConnectFailure: true, onReset: true, statuses: [503], attempts: 1, backoffBase: .milliseconds(25),
            backoffMax: .milliseconds(250))
        _ = T.run(&machine, [Self.request(retry: once, fallback: true), .requestEnd(nil)])
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
            ["ask retry budget (connect_failure)"]
        ])
        _ = machine.handle(.retryGranted(jitter: 0))
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
            ExchangeStateMachineTests.fellBack("connect_failure", 502)
        ])
        _ = machine.handle(.connectionReady(reused: false))
        // Legacy's 503 is the answer: the policy's retries were for the new side.
        #expect(T.run(&machine, [.upstreamHead(try Self.status(503))])[0].first == "answer head 503 keep-alive")
    }

    /// A budget refusal with a fallback configured still falls back.
    @Test func aRefusedRetryStillFallsBack() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(fallback: true), .requestEnd(nil), .connectionFailed(.connectTimeout)])
        #expect(T.run(&machine, [.retryRefused]) == [
            ExchangeStateMachineTests.fellBack("connect_timeout", 503)
        ])
    }

    /// The client leaving during a back-off finishes the exchange once, with nothing to cancel.
    @Test func aClientThatLeavesDuringTheBackoffIsRecordedOnce() {
        var machine = T.machine()
        _ = T.run(&machine, [
            Self.request(), .requestEnd(nil), .connectionFailed(.connectFailed("refused")), .retryGranted(jitter: 1),
        ])
        #expect(T.run(&machine, [.clientClosed]) == [["clear deadline", "shadow abandon client_gone", "finish (gone)"]])
        #expect(T.run(&machine, [.deadline(upstreamWritable: true)]) == [[]], "a late back-off deadline does nothing")
    }

    /// An overloaded pool is never retried (retries would add to the overload).
    @Test func anOverloadedPoolIsNotRetried() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil)])
        let steps = T.run(&machine, [.connectionFailed(.poolExhausted)])[0]
        #expect(steps.contains("answer 503 upstream_overloaded keep-alive"), "\(steps)")
    }

    /// The budget: at most `percent` of active requests retrying, or `minConcurrent`, whichever is more.
    @Test(arguments: [
        (0, 0, true), (2, 2, true), (3, 3, false), (100, 19, true), (100, 20, false), (10, 3, false),
    ])
    func theBudgetAllowsTwentyPercentOrThree(_ active: Int, _ retrying: Int, _ allowed: Bool) {
        let counts = RetryBudgetCounts(active: active, retrying: retrying)
        #expect(counts.allows(percent: 20, minConcurrent: 3) == allowed)
    }

    /// The shared budget counts requests and outstanding retries, and forgets an idle upstream.
    @Test func theSharedBudgetCountsSlots() {
        let budget = RetryBudget()
        for _ in 0..<10 { budget.requestStarted("u") }
        for _ in 0..<3 { #expect(budget.tryAcquire("u", percent: 20, minConcurrent: 3)) }
        #expect(!budget.tryAcquire("u", percent: 20, minConcurrent: 3), "three of ten")
        budget.retryEnded("u")
        #expect(budget.tryAcquire("u", percent: 20, minConcurrent: 3), "an ended retry frees its slot")
        budget.requestFinished("u", heldRetry: true)
        #expect(budget.counts("u") == RetryBudgetCounts(active: 9, retrying: 2))
        #expect(budget.tryAcquire("u", percent: 20, minConcurrent: 3))
        for index in 0..<9 { budget.requestFinished("u", heldRetry: index < 3) }
        #expect(budget.counts("u") == RetryBudgetCounts())
        #expect(budget.counts("other") == RetryBudgetCounts())
    }
}
