import NIOCore
import Testing

@testable import FicusProxy

/// The tunnel's decisions without a channel: idle deadline, end reason, counts.
@Suite("Tunnel state machine")
struct TunnelStateMachineTests {
    let start = NIODeadline.uptimeNanoseconds(1_000_000_000)

    @Test func idleDeadlineMovesWithTrafficAndEndsWhenQuiet() {
        var machine = TunnelStateMachine(idleTimeout: .seconds(10), now: self.start)
        #expect(machine.start() == .armTimer(.seconds(10)))
        machine.bytesRead(100, from: .client, now: self.start + .seconds(4))
        machine.bytesRead(250, from: .upstream, now: self.start + .seconds(6))
        // The timer set at the start fires: the last byte was 4 s ago, so 6 s remain.
        #expect(machine.timerFired(now: self.start + .seconds(10)) == .armTimer(.seconds(6)))
        #expect(machine.timerFired(now: self.start + .seconds(16)) == .end(.idle))
        #expect(machine.bytesFromClient == 100)
        #expect(machine.bytesFromUpstream == 250)
        // Ended once: a close afterwards changes nothing.
        #expect(machine.closed(.client) == .none)
        #expect(machine.ended == .idle)
    }

    @Test func theFirstCloseEndsTheTunnelAndNamesTheSide() {
        var machine = TunnelStateMachine(idleTimeout: .seconds(10), now: self.start)
        #expect(machine.closed(.upstream) == .end(.upstreamClosed))
        #expect(machine.closed(.client) == .none)
        #expect(machine.timerFired(now: self.start + .seconds(20)) == .none)

        var other = TunnelStateMachine(idleTimeout: .seconds(10), now: self.start)
        #expect(other.closed(.client) == .end(.clientClosed))
    }

    @Test func aCloseAfterTheDrainBeganIsTheDrains() {
        var machine = TunnelStateMachine(idleTimeout: .seconds(10), now: self.start)
        machine.drainStarted()
        #expect(machine.closed(.client) == .end(.drain))
    }
}
