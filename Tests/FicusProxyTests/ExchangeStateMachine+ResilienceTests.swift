import NIOCore
import Testing

@testable import FicusProxy

/// How the exchange machine consumes ejection and breaker outcomes (issue 17 items 2 and 4): kept apart from
/// `ExchangeStateMachineTests`, which the retry-policy work extends.
@Suite("Exchange state machine: ejection and breaker outcomes")
struct ExchangeStateMachineResilienceTests {
    typealias T = ExchangeStateMachineTests

    @Test(arguments: [
        (UpstreamFailure.noHealthyAddress, "answer 503 no_healthy_upstream keep-alive"),
        (UpstreamFailure.overflow(.maxRequests), "answer 503 upstream_overloaded keep-alive"),
        (UpstreamFailure.overflow(.maxRetries), "answer 503 upstream_overloaded keep-alive"),
    ])
    func noAddressInRotationOrABreakerIsAnswered503(_ failure: UpstreamFailure, _ answer: String) {
        var machine = T.machine()
        _ = T.run(&machine, [T.forward(), .requestEnd(nil)])
        let steps = T.run(&machine, [.connectionFailed(failure)])
        #expect(steps[0].contains(answer), "\(steps)")
    }

    @Test(arguments: [
        (UpstreamFailure.noHealthyAddress, "no_healthy_address"),
        (UpstreamFailure.overflow(.maxRequests), "overloaded"),
    ])
    func noAddressInRotationOrABreakerFallsBackForAnyMethod(_ failure: UpstreamFailure, _ reason: String) {
        var machine = T.machine()
        _ = T.run(&machine, [T.withFallback(.post, framing: .contentLength(2)), .requestBody(T.body(2))])
        #expect(T.run(&machine, [.connectionFailed(failure)]) == [T.fellBack(reason, 503)])
    }

    @Test func aWithdrawnFallbackLeavesTheUpstreamsOwnAnswer() throws {
        var machine = T.machine()
        _ = T.run(&machine, [T.withFallback(), .requestEnd(nil), .connectionReady(reused: false)])
        machine.withdrawFallback()
        let steps = T.run(
            &machine, [.upstreamHead(try T.head("HTTP/1.1 503 Service Unavailable\r\ncontent-length: 0\r\n\r\n"))])
        #expect(steps[0].first == "answer head 503 keep-alive", "\(steps)")
    }
}
