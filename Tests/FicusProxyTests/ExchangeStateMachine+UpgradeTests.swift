import NIOCore
import Testing

@testable import FicusProxy

/// WebSocket handshakes in the exchange machine: a `101` ends the machine's part, and only for a handshake.
@Suite("Exchange state machine: upgrades")
struct ExchangeStateMachineUpgradeTests {
    typealias Machine = ExchangeStateMachine

    static func handshake(upgrade: Bool) -> ExchangeStateMachine.Event {
        .requestHead(
            .init(
                method: .get,
                framing: .none,
                wantsKeepAlive: true,
                expectsContinue: false,
                clientMinorVersion: 1,
                target: .upstream(name: "live", connectTimeout: .seconds(5), responseTimeout: .seconds(30)),
                upgrade: upgrade
            )
        )
    }

    @Test func aHandshakeAnswered101BecomesATunnel() {
        var machine = ExchangeStateMachineTests.machine()
        _ = machine.handle(Self.handshake(upgrade: true))
        _ = machine.handle(.requestEnd(nil))
        _ = machine.handle(.connectionReady(reused: false))
        let actions = machine.handle(.upstreamUpgraded).all.map(\.label)
        #expect(actions == ["clear deadline", "start tunnel"])
        #expect(machine.phase == .tunnel)
        #expect(!machine.acceptsInput)
        // Nothing the machine hears afterwards does anything: the tunnel owns both connections.
        #expect(machine.handle(.deadline(upstreamWritable: true)).all.isEmpty)
        #expect(machine.handle(.clientInputClosed).all.isEmpty)
    }

    @Test func a101ToAnOrdinaryRequestOrBeforeTheConnectionIsIgnored() {
        var plain = ExchangeStateMachineTests.machine()
        _ = plain.handle(Self.handshake(upgrade: false))
        _ = plain.handle(.requestEnd(nil))
        _ = plain.handle(.connectionReady(reused: false))
        #expect(plain.handle(.upstreamUpgraded).all.isEmpty)
        #expect(plain.phase == .exchange)

        var waiting = ExchangeStateMachineTests.machine()
        _ = waiting.handle(Self.handshake(upgrade: true))
        _ = waiting.handle(.requestEnd(nil))
        #expect(waiting.handle(.upstreamUpgraded).all.isEmpty)
        #expect(waiting.phase == .exchange)
    }
}
