import NIOCore
import Testing

@testable import FicusProxy

extension ExchangeStateMachine.Action {
    /// A short name for tables: what a reader of the test expects to see.
    var label: String {
        switch self {
        case .setDeadline(let amount): "deadline \(amount.nanoseconds / 1_000_000)ms"
        case .clearDeadline: "clear deadline"
        case .leaseConnection(let fresh): fresh ? "lease fresh" : "lease"
        case .cancelLease: "cancel lease"
        case .releaseConnection: "release connection"
        case .write100Continue: "100 continue"
        case .forwardHead(let watch): watch ? "forward head (watched)" : "forward head"
        case .forwardBody(let body): "forward body \(body.readableBytes)"
        case .forwardEnd: "forward end"
        case .flushUpstream: "flush upstream"
        case .abortUpstream: "abort upstream"
        case .pauseUpstreamReads: "pause upstream reads"
        case .resumeUpstreamReads: "resume upstream reads"
        case .answerHead(let status, _, let keepAlive): "answer head \(status) \(keepAlive ? "keep-alive" : "close")"
        case .answerBody(let body, _): "answer body \(body.readableBytes)"
        case .answerEnd: "answer end"
        case .answerLocally(let answer, let keepAlive, let headOnly):
            "answer \(answer.status) \(answer.error) \(keepAlive ? "keep-alive" : "close")\(headOnly ? " head-only" : "")"
        case .flushClient: "flush client"
        case .shadow(let step):
            switch step {
            case .requestBody(let body): "shadow request body \(body.readableBytes)"
            case .requestComplete: "shadow request complete"
            case .primarySent: "shadow sent"
            case .primaryHead: "shadow head"
            case .primaryBody(let body): "shadow body \(body.readableBytes)"
            case .primaryEnd: "shadow end"
            case .abandon(let reason): "shadow abandon \(reason)"
            }
        case .reportUpstreamFailure(let failure): "report \(failure)"
        case .recordFailedAttempt(let status): "record failed attempt \(status)"
        case .fallBack(let name, let reason): "fall back to \(name) (\(reason.rawValue))"
        case .requestRetry(let reason): "ask retry budget (\(reason.rawValue))"
        case .retrying(let number, let reason): "retry \(number) (\(reason.rawValue))"
        case .requestStale(let status): "ask stale (\(status))"
        case .answerStale(let status, let keepAlive): "answer stale for \(status) \(keepAlive ? "keep-alive" : "close")"
        case .reportStall(let stalled): "report stall: \(stalled)"
        case .finish(let gone): gone ? "finish (gone)" : "finish"
        case .resumeParsing: "resume parsing"
        case .closeAfterFlush: "close after flush"
        case .close: "close"
        case .startTunnel: "start tunnel"
        }
    }
}

/// Every transition of the exchange state machine, as tables of events and the actions they produce: no socket, no
/// channel, no clock.
@Suite("Exchange state machine")
struct ExchangeStateMachineTests {
    typealias Machine = ExchangeStateMachine
    typealias Event = ExchangeStateMachine.Event

    static func machine() -> Machine {
        var machine = Machine(timeouts: .init(clientHeader: .seconds(10), clientIdle: .seconds(60)))
        _ = machine.start()
        return machine
    }

    static func forward(
        _ method: HTTPMethodKind = .get,
        framing: HTTPBodyFraming = .none,
        keepAlive: Bool = true,
        expectsContinue: Bool = false
    ) -> Event {
        .requestHead(
            .init(
                method: method,
                framing: framing,
                wantsKeepAlive: keepAlive,
                expectsContinue: expectsContinue,
                clientMinorVersion: 1,
                target: .upstream(name: "backend", connectTimeout: .seconds(5), responseTimeout: .seconds(30))
            )
        )
    }

    static func local(_ method: HTTPMethodKind = .get, framing: HTTPBodyFraming = .none) -> Event {
        .requestHead(
            .init(
                method: method,
                framing: framing,
                wantsKeepAlive: true,
                expectsContinue: false,
                clientMinorVersion: 1,
                target: .local(.init(status: 404, error: "no_route", detail: "no route"))
            )
        )
    }

    /// A response head as the upstream parser produces it.
    static func head(_ text: String = "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\n") throws -> HTTPHead {
        var parser = HTTP1Parser(kind: .response, limits: .response)
        parser.expectResponse(to: .get)
        var buffer = ByteBuffer(string: text)
        guard case .head(let head)? = try parser.next(&buffer) else {
            throw HTTPFramingError(.badStartLine, "not a head")
        }
        return head
    }

    static func body(_ count: Int) -> ByteBuffer {
        ByteBuffer(repeating: 0x61, count: count)
    }

    /// Feeds `events` and returns the labels of each event's actions.
    static func run(_ machine: inout Machine, _ events: [Event]) -> [[String]] {
        events.map { machine.handle($0).all.map(\.label) }
    }

    // MARK: Idle and heads

    @Test func aNewConnectionWaitsForTheKeepAliveDeadline() {
        var machine = Machine(timeouts: .init(clientHeader: .seconds(10), clientIdle: .seconds(60)))
        #expect(machine.start().all.map(\.label) == ["deadline 60000ms"])
        #expect(machine.phase == .idle)
        #expect(machine.acceptsInput)
    }

    @Test func partOfAHeadArmsTheHeadDeadlineOnce() {
        var machine = Self.machine()
        #expect(Self.run(&machine, [.headStarted, .headStarted]) == [["deadline 10000ms"], []])
        #expect(machine.phase == .readingHead)
    }

    @Test(arguments: [
        (Machine.Phase.idle, ["clear deadline", "close"]),
        (Machine.Phase.readingHead, [
            "clear deadline", "shadow abandon serving_failed", "answer 408 request_timeout close", "finish",
            "clear deadline", "close after flush", "flush client",
        ]),
    ])
    func aDeadlineWhileWaitingForARequest(_ phase: Machine.Phase, _ expected: [String]) {
        var machine = Self.machine()
        if phase == .readingHead { _ = machine.handle(.headStarted) }
        #expect(machine.handle(.deadline(upstreamWritable: true)).all.map(\.label).filter { $0 != "clear deadline" }
            == expected.filter { $0 != "clear deadline" })
        #expect(machine.phase == .closing)
        #expect(machine.exchangesBegun == (phase == .readingHead ? 1 : 0), "a late head is an exchange of its own")
    }

    // MARK: A forwarded request

    @Test func aGETFromHeadToAnswer() throws {
        var machine = Self.machine()
        let steps = Self.run(&machine, [
            Self.forward(),
            .requestEnd(nil),
            .connectionReady(reused: false),
            .upstreamHead(try Self.head()),
            .upstreamBody(Self.body(2)),
            .upstreamEnd(nil),
        ])
        #expect(steps == [
            ["clear deadline", "deadline 5000ms", "lease"],
            ["shadow request complete"],
            ["clear deadline", "forward head", "shadow sent", "forward end", "flush upstream"],
            ["answer head 200 keep-alive", "shadow head", "deadline 60000ms"],
            ["deadline 60000ms", "shadow body 2", "answer body 2"],
            ["answer end", "flush client", "shadow end", "finish", "deadline 60000ms", "resume parsing"],
        ])
        #expect(machine.phase == .idle)
        #expect(machine.exchange == nil)
    }

    @Test func aStreamedBodyMovesTheStreamDeadlineAndTheResponseTimeoutTakesOverAtItsEnd() {
        var machine = Self.machine()
        let steps = Self.run(&machine, [
            Self.forward(.post, framing: .contentLength(5), expectsContinue: true),
            .connectionReady(reused: false),
            .requestBody(Self.body(3)),
            .requestBody(Self.body(2)),
            .requestEnd(nil),
        ])
        #expect(steps == [
            ["clear deadline", "100 continue", "deadline 5000ms", "lease"],
            ["deadline 60000ms", "forward head", "shadow sent", "flush upstream"],
            ["shadow request body 3", "deadline 60000ms", "forward body 3"],
            ["shadow request body 2", "deadline 60000ms", "forward body 2"],
            ["shadow request complete", "forward end", "flush upstream", "clear deadline"],
        ])
        #expect(!machine.acceptsInput, "pipelined bytes wait for the answer")
    }

    @Test func aBodyThatArrivesBeforeTheConnectionWaitsAndIsCounted() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(.post, framing: .contentLength(4)), .requestBody(Self.body(4))])
        #expect(machine.pendingBytes == 4)
        #expect(Self.run(&machine, [.connectionReady(reused: true)]) == [
            ["deadline 60000ms", "forward head (watched)", "shadow sent", "forward body 4", "flush upstream"]
        ])
        #expect(machine.pendingBytes == 0)
    }

    @Test func anAnswerBeforeTheRequestEndedClosesTheConnection() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [
            Self.forward(.post, framing: .contentLength(10)), .connectionReady(reused: false), .requestBody(Self.body(1)),
        ])
        let steps = Self.run(&machine, [.upstreamHead(try Self.head()), .upstreamEnd(nil)])
        #expect(steps[0].first == "answer head 200 close")
        #expect(steps[1] == ["answer end", "flush client", "shadow end", "finish", "clear deadline", "close after flush"])
        #expect(machine.phase == .closing)
    }

    // MARK: Local answers and refusals

    @Test func aLocalAnswerKeepsTheConnectionWhenTheRequestHasNoBody() {
        var machine = Self.machine()
        // The answer goes at once; the exchange ends with the request's end, which the parser reports next.
        #expect(Self.run(&machine, [Self.local(), .requestEnd(nil)]) == [
            ["clear deadline", "shadow abandon serving_failed", "answer 404 no_route keep-alive"],
            ["shadow request complete", "finish", "deadline 60000ms", "resume parsing"],
        ])
        #expect(machine.phase == .idle)
    }

    @Test func aLocalAnswerToARequestWithAnUnreadBodyCloses() {
        var machine = Self.machine()
        #expect(Self.run(&machine, [Self.local(.post, framing: .contentLength(5))]) == [[
            "clear deadline", "shadow abandon serving_failed", "answer 404 no_route close", "finish", "clear deadline",
            "close after flush",
        ]])
        #expect(!machine.acceptsInput)
    }

    @Test func aHEADGetsAHeadOnlyLocalAnswer() {
        var machine = Self.machine()
        #expect(Self.run(&machine, [Self.local(.head)])[0].contains("answer 404 no_route keep-alive head-only"))
    }

    @Test func aRefusalBeforeAnyHeadIsAnExchangeOfItsOwn() {
        var machine = Self.machine()
        let steps = Self.run(&machine, [.requestRefused(HTTPFramingError(.conflictingContentLength, "two"))])
        #expect(steps == [[
            "clear deadline", "shadow abandon serving_failed", "answer 400 conflicting_content_length close", "finish",
            "clear deadline", "close after flush",
        ]])
        #expect(machine.exchangesBegun == 1)
        #expect(!machine.acceptsInput, "nothing behind a refused request is parsed")
    }

    @Test func aRefusalDuringAnExchangeLetsGoOfItsConnection() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(.post, framing: .chunked), .connectionReady(reused: false)])
        #expect(Self.run(&machine, [.requestRefused(HTTPFramingError(.badChunkSize, "bad"))]) == [[
            "abort upstream", "shadow abandon serving_failed", "answer 400 bad_chunk_size close", "finish", "clear deadline",
            "close after flush",
        ]])
    }

    @Test func aClientThatClosesMidRequestIsNotAnswered() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(.post, framing: .contentLength(9)), .requestBody(Self.body(1))])
        #expect(Self.run(&machine, [.clientInputClosed]) == [[
            "cancel lease", "finish", "clear deadline", "close after flush",
        ]])
        #expect(machine.inputClosed)
    }

    @Test func aClientThatClosesItsSideWhileIdleIsClosed() {
        var machine = Self.machine()
        #expect(Self.run(&machine, [.clientInputClosed]) == [["clear deadline", "close"]])
    }

    // MARK: Upstream failures and re-sends

    @Test(arguments: [
        (UpstreamFailure.connectFailed("refused"), "answer 502 upstream_unavailable keep-alive"),
        (UpstreamFailure.poolExhausted, "answer 503 upstream_overloaded keep-alive"),
    ])
    func aConnectionThatCannotBeHadIsAnswered(_ failure: UpstreamFailure, _ answer: String) {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(), .requestEnd(nil)])
        let steps = Self.run(&machine, [.connectionFailed(failure)])
        #expect(steps[0].contains(answer), "\(steps)")
        #expect(steps[0].first?.hasPrefix("report ") == true)
    }

    @Test func waitingPastTheConnectTimeoutIs503() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(), .requestEnd(nil)])
        let steps = Self.run(&machine, [.deadline(upstreamWritable: true)])
        #expect(steps[0].prefix(2) == ["cancel lease", "report connecting timed out"])
        #expect(steps[0].contains("answer 503 upstream_connect_timeout keep-alive"))
        #expect(steps[0].last == "flush client")
        #expect(machine.phase == .idle)
    }

    @Test func anIdempotentRequestOnADeadReusedConnectionIsSentOnceMore() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(), .requestEnd(nil), .connectionReady(reused: true)])
        let steps = Self.run(&machine, [
            .upstreamFailed(.closedBeforeHead, sawResponseBytes: false),
            .connectionReady(reused: false),
            .upstreamFailed(.closedBeforeHead, sawResponseBytes: false),
        ])
        #expect(steps[0] == ["deadline 5000ms", "lease fresh"])
        #expect(steps[1] == ["clear deadline", "forward head", "shadow sent", "forward end", "flush upstream"])
        #expect(steps[2].contains("answer 502 upstream_reset keep-alive"), "once only: \(steps[2])")
    }

    @Test(arguments: [
        (HTTPMethodKind.post, false, 5, false),  // a POST that may have been processed
        (HTTPMethodKind.put, false, 5, false),  // idempotent, but its body was already streamed
        (HTTPMethodKind.post, true, 5, true),  // nothing was written: re-sent with its whole body
        (HTTPMethodKind.post, true, 64 * 1024 + 1, false),  // nothing written, but the body was too long to keep
    ])
    func whichRequestsAreResent(_ method: HTTPMethodKind, _ headWriteFailed: Bool, _ size: Int, _ resent: Bool) {
        var machine = Self.machine()
        _ = Self.run(&machine, [
            Self.forward(method, framing: .contentLength(Int64(size))), .connectionReady(reused: true),
            .requestBody(Self.body(size)), .requestEnd(nil),
        ])
        if headWriteFailed { _ = machine.handle(.headWriteFailed) }
        let steps = Self.run(&machine, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: false)])
        if resent {
            #expect(steps[0] == ["deadline 5000ms", "lease fresh"])
            #expect(Self.run(&machine, [.connectionReady(reused: false)])[0] == [
                "clear deadline", "forward head", "shadow sent", "forward body \(size)", "forward end", "flush upstream",
            ])
        } else {
            #expect(steps[0].contains("answer 502 upstream_reset close") || steps[0].contains("answer 502 upstream_reset keep-alive"))
            #expect(!steps[0].contains("lease fresh"))
        }
    }

    @Test func aFreshConnectionOrAnAnswerByteIsNeverResent() {
        for (reused, saw) in [(false, false), (true, true)] {
            var machine = Self.machine()
            _ = Self.run(&machine, [Self.forward(), .requestEnd(nil), .connectionReady(reused: reused)])
            let steps = Self.run(&machine, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: saw)])
            #expect(steps[0].contains("answer 502 upstream_reset keep-alive"), "\(steps)")
        }
    }

    @Test func aFailureAfterTheAnswerStartedClosesTheClient() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [
            Self.forward(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(try Self.head()),
        ])
        #expect(Self.run(&machine, [.upstreamFailed(.closedAfterHead, sawResponseBytes: true)]) == [[
            "shadow abandon serving_failed", "flush client", "clear deadline", "close",
        ]])
    }

    // MARK: Stalled streams

    @Test(arguments: [
        (true, "report stall: request body", "answer 408 request_timeout close"),
        (false, "report stall: upstream reading the request body", "answer 504 upstream_timeout close"),
    ])
    func aStalledUploadIsAnsweredAndBothSidesClose(_ upstreamWritable: Bool, _ report: String, _ answer: String) {
        var machine = Self.machine()
        _ = Self.run(&machine, [
            Self.forward(.post, framing: .contentLength(9)), .connectionReady(reused: false), .requestBody(Self.body(1)),
        ])
        #expect(Self.run(&machine, [.deadline(upstreamWritable: upstreamWritable)]) == [[
            report, "abort upstream", "shadow abandon stream_timeout", "shadow abandon serving_failed", answer, "finish",
            "clear deadline", "close after flush", "flush client",
        ]])
    }

    @Test func aStalledAnswerIsCutOff() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [
            Self.forward(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(try Self.head()),
        ])
        #expect(Self.run(&machine, [.deadline(upstreamWritable: true)]) == [[
            "report stall: answer", "abort upstream", "shadow abandon stream_timeout", "flush client", "clear deadline",
            "close",
        ]])
    }

    @Test func theClientTakingBytesIsProgressOnlyWhileAStreamFlows() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(), .requestEnd(nil), .connectionReady(reused: false)])
        // Waiting for the answer's head: the response timeout's business, not the stream deadline's.
        #expect(Self.run(&machine, [.clientWritabilityChanged(true)]) == [["resume upstream reads"]])
        _ = machine.handle(.upstreamHead(try Self.head()))
        #expect(Self.run(&machine, [.clientWritabilityChanged(false), .clientWritabilityChanged(true)]) == [
            ["pause upstream reads"], ["deadline 60000ms", "resume upstream reads"],
        ])
    }

    // MARK: Draining and leaving

    @Test func drainingShortensTheIdleWaitAndClosesAfterTheNextAnswer() throws {
        var machine = Self.machine()
        #expect(Self.run(&machine, [.quiesce]) == [["deadline 500ms"]])
        let steps = Self.run(&machine, [
            Self.forward(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(try Self.head()),
        ])
        #expect(steps[3].first == "answer head 200 close")
    }

    @Test func aClientThatLeavesMidExchangeIsRecordedOnce() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.forward(), .requestEnd(nil)])
        #expect(Self.run(&machine, [.clientClosed, .connectionReady(reused: false)]) == [
            ["clear deadline", "cancel lease", "shadow abandon client_gone", "finish (gone)"],
            ["release connection"],
        ])
        #expect(machine.phase == .closed)
        #expect(Self.run(&machine, [.clientClosed]) == [["clear deadline"]], "nothing is recorded twice")
    }

    // MARK: Fallback

    static func withFallback(
        _ method: HTTPMethodKind = .get,
        framing: HTTPBodyFraming = .none,
        statuses: [Int] = [502, 503, 504]
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
                    fallback: .init(upstream: "legacy", statuses: statuses))
            )
        )
    }

    static func fellBack(_ reason: String, _ status: Int) -> [String] {
        [
            "record failed attempt \(status)", "shadow abandon fallback", "fall back to legacy (\(reason))",
            "deadline 5000ms", "lease",
        ]
    }

    @Test(arguments: [
        (UpstreamFailure.connectFailed("refused"), "connect_failure", 502),
        (UpstreamFailure.poolExhausted, "overloaded", 503),
    ])
    func aConnectionThatCannotBeHadFallsBackForAnyMethod(_ failure: UpstreamFailure, _ reason: String, _ status: Int) {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.withFallback(.post, framing: .contentLength(2)), .requestBody(Self.body(2))])
        #expect(Self.run(&machine, [.connectionFailed(failure)]) == [Self.fellBack(reason, status)])
        // The legacy connection gets the whole request, once; a second failure is answered.
        #expect(Self.run(&machine, [.connectionReady(reused: false)])[0] == [
            "deadline 60000ms", "forward head", "shadow sent", "forward body 2", "flush upstream",
        ])
        let again = Self.run(&machine, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: false)])[0]
        #expect(again.contains("answer 502 upstream_reset close") || again.contains("answer 502 upstream_reset keep-alive"))
        #expect(!again.contains { $0.hasPrefix("fall back") }, "once only")
    }

    @Test func waitingPastTheConnectTimeoutFallsBack() {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.withFallback(), .requestEnd(nil)])
        #expect(Self.run(&machine, [.deadline(upstreamWritable: true)]) == [
            ["cancel lease"] + Self.fellBack("connect_timeout", 503)
        ])
    }

    @Test(arguments: [
        (HTTPMethodKind.get, true), (HTTPMethodKind.put, true), (HTTPMethodKind.post, false),
    ])
    func aResetOrTimeoutFallsBackOnlyForIdempotentMethods(_ method: HTTPMethodKind, _ fallsBack: Bool) {
        for failure in [UpstreamFailure.closedBeforeHead, .responseTimeout] {
            var machine = Self.machine()
            _ = Self.run(&machine, [
                Self.withFallback(method, framing: .contentLength(3)), .connectionReady(reused: false),
                .requestBody(Self.body(3)), .requestEnd(nil),
            ])
            let steps = Self.run(&machine, [.upstreamFailed(failure, sawResponseBytes: false)])[0]
            #expect(steps.contains { $0.hasPrefix("fall back to legacy") } == fallsBack, "\(method) \(failure): \(steps)")
            if fallsBack {
                #expect(Self.run(&machine, [.connectionReady(reused: false)])[0] == [
                    "clear deadline", "forward head", "shadow sent", "forward body 3", "forward end", "flush upstream",
                ], "the whole body again")
            } else {
                #expect(steps.contains { $0.hasPrefix("answer 50") }, "a POST that reached the new side is answered")
            }
        }
    }

    @Test func aFallbackStatusIsNotAnsweredButFallsBack() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.withFallback(), .requestEnd(nil), .connectionReady(reused: false)])
        let steps = Self.run(&machine, [.upstreamHead(try Self.head("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"))])
        #expect(steps == [["abort upstream"] + Self.fellBack("status", 503)])
        // Legacy's own 503 is the answer: no second fallback.
        _ = machine.handle(.connectionReady(reused: false))
        let legacy = Self.run(&machine, [.upstreamHead(try Self.head("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"))])
        #expect(legacy[0].first == "answer head 503 keep-alive")
    }

    @Test func aStatusOutsideTheListIsTheAnswer() throws {
        var machine = Self.machine()
        _ = Self.run(&machine, [Self.withFallback(statuses: [503]), .requestEnd(nil), .connectionReady(reused: false)])
        let steps = Self.run(&machine, [.upstreamHead(try Self.head("HTTP/1.1 502 Bad Gateway\r\ncontent-length: 0\r\n\r\n"))])
        #expect(steps[0].first == "answer head 502 keep-alive")
    }

    @Test func aLongBodyAlreadyStreamedOrAnAnswerStartedNeverFallsBack() throws {
        var machine = Self.machine()
        let size = Machine.retainLimit + 1
        _ = Self.run(&machine, [
            Self.withFallback(.put, framing: .contentLength(Int64(size))), .connectionReady(reused: false),
            .requestBody(Self.body(size)), .requestEnd(nil),
        ])
        let steps = Self.run(&machine, [.upstreamFailed(.closedBeforeHead, sawResponseBytes: false)])[0]
        #expect(!steps.contains { $0.hasPrefix("fall back") }, "\(steps)")

        var started = Self.machine()
        _ = Self.run(&started, [
            Self.withFallback(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(try Self.head()),
        ])
        let cut = Self.run(&started, [.upstreamFailed(.closedAfterHead, sawResponseBytes: true)])[0]
        #expect(!cut.contains { $0.hasPrefix("fall back") } && cut.last == "close", "\(cut)")
    }
}
