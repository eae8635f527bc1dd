import NIOCore
import Testing

@testable import FicusProxy

/// `stale_if_error` in the exchange machine: when a copy is asked for, what it replaces, and what happens without one.
@Suite("Exchange state machine: stale answers")
struct ExchangeStateMachineStaleTests {
    typealias Machine = ExchangeStateMachine
    typealias Event = ExchangeStateMachine.Event
    typealias T = ExchangeStateMachineTests

    static func request(_ method: HTTPMethodKind = .get, fallback: Bool = false) -> Event {
        .requestHead(
            .init(
                method: method,
                framing: .none,
                wantsKeepAlive: true,
                expectsContinue: false,
                clientMinorVersion: 1,
                target: .upstream(
                    name: "orders-v2", connectTimeout: .seconds(5), responseTimeout: .seconds(30),
                    fallback: fallback ? .init(upstream: "legacy", statuses: [502, 503, 504]) : nil,
                    staleIfError: true)
            )
        )
    }

    /// A refused connect asks for a copy; found, the copy is the answer and the exchange finishes.
    @Test func aFailureIsAnsweredWithACopy() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil)])
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
            ["report cannot connect: refused", "ask stale (502)"]
        ])
        #expect(T.run(&machine, [.staleFound]) == [
            ["shadow abandon serving_failed", "answer stale for 502 keep-alive", "finish", "deadline 60000ms",
             "resume parsing", "flush client"]
        ])
    }

    /// Without a copy, the failure is answered as it would have been, and reported once.
    @Test func withoutACopyTheFailureIsTheAnswer() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil), .connectionFailed(.connectTimeout)])
        let steps = T.run(&machine, [.staleMissing])[0]
        #expect(steps.contains("answer 503 upstream_connect_timeout keep-alive"), "\(steps)")
        #expect(!steps.contains { $0.hasPrefix("report") }, "reported when the cache was asked: \(steps)")
    }

    /// A 503 from the upstream (after the fallback, if any) asks too: found, the answer is not read on.
    @Test func anErrorStatusAsksForACopy() throws {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(), .requestEnd(nil), .connectionReady(reused: false)])
        let head = try T.head("HTTP/1.1 503 X\r\ncontent-length: 0\r\n\r\n")
        #expect(T.run(&machine, [.upstreamHead(head)]) == [["ask stale (503)"]])
        #expect(T.run(&machine, [.staleFound])[0].prefix(3) == [
            "abort upstream", "shadow abandon serving_failed", "answer stale for 503 keep-alive",
        ])
        var missing = T.machine()
        _ = T.run(&missing, [Self.request(), .requestEnd(nil), .connectionReady(reused: false), .upstreamHead(head)])
        #expect(T.run(&missing, [.staleMissing])[0].first == "answer head 503 keep-alive")
    }

    /// The fallback comes first: the cache is asked only when legacy fails too.
    @Test func theFallbackComesFirst() {
        var machine = T.machine()
        _ = T.run(&machine, [Self.request(fallback: true), .requestEnd(nil)])
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))]) == [
            ExchangeStateMachineTests.fellBack("connect_failure", 502)
        ])
        #expect(T.run(&machine, [.connectionFailed(.connectFailed("refused"))])[0].last == "ask stale (502)")
    }

    /// Other methods, answers that started, and statuses that are not errors never ask.
    @Test func onlyFailedGetsAsk() throws {
        var put = T.machine()
        _ = T.run(&put, [Self.request(.put), .requestEnd(nil)])
        #expect(!T.run(&put, [.connectionFailed(.connectFailed("refused"))])[0].contains { $0.hasPrefix("ask stale") })
        var ok = T.machine()
        _ = T.run(&ok, [Self.request(), .requestEnd(nil), .connectionReady(reused: false)])
        #expect(T.run(&ok, [.upstreamHead(try T.head())])[0].first == "answer head 200 keep-alive")
        let cut = T.run(&ok, [.upstreamFailed(.closedAfterHead, sawResponseBytes: true)])[0]
        #expect(!cut.contains { $0.hasPrefix("ask stale") } && cut.last == "close", "\(cut)")
    }
}
