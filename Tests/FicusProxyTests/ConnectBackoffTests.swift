import NIOCore
import Testing

@testable import FicusProxy

@Suite("Connect back-off of the shadow pool")
struct ConnectBackoffTests {
    let backoff = ConnectBackoff(initial: .milliseconds(100), maximum: .seconds(3))

    @Test func thePauseDoublesWithEachFailureInARowUpToTheMaximum() {
        let pauses = (1...7).map { self.backoff.delay(afterFailures: $0) }
        #expect(pauses == [100, 200, 400, 800, 1600, 3000, 3000].map { TimeAmount.milliseconds($0) })
    }

    @Test func noFailureMeansNoPauseAndLongRunsOfFailuresStayAtTheMaximum() {
        #expect(self.backoff.delay(afterFailures: 0) == .nanoseconds(0))
        #expect(self.backoff.delay(afterFailures: 64) == .seconds(3))
        #expect(self.backoff.delay(afterFailures: 10_000) == .seconds(3))
        #expect(ConnectBackoff(initial: .nanoseconds(0), maximum: .seconds(3)).delay(afterFailures: 5) == .nanoseconds(0))
    }
}
