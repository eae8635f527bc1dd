import FicusRollout
import Foundation
import Testing

@Suite("Canary operator commands and restarts")
struct CanaryStateMachineControlTests {
    @Test("Time while paused does not count; resume continues the same step where it stopped")
    func pauseFreezesTime() throws {
        var machine = try Fixtures.started()
        #expect(
            machine.handle(.paused(now: Fixtures.at(60))) == [
                .record("canary 'orders': paused at step 1/5 (1%), 1m of 2m counted")
            ]
        )
        // Nothing is judged while paused, however long, and a late evaluation is ignored.
        #expect(machine.handle(.tick(now: Fixtures.at(5000))) == [])
        #expect(machine.handle(.evaluated(now: Fixtures.at(5000), Fixtures.healthy())) == [])
        #expect(
            machine.handle(.paused(now: Fixtures.at(5000))) == [
                .refuse("canary 'orders' is paused, only a running canary can be paused")
            ]
        )

        #expect(
            machine.handle(.resumed(now: Fixtures.at(6000))) == [
                .record("canary 'orders': resumed at step 1/5 (1%), judged in 1m"),
                .wait(until: Fixtures.at(6060)),
            ]
        )
        #expect(machine.handle(.tick(now: Fixtures.at(6059))) == [.wait(until: Fixtures.at(6060))])
        let (ask, answer) = Fixtures.judge(&machine, at: 6060, with: Fixtures.healthy())
        #expect(ask == [.evaluate(from: Fixtures.at(0), to: Fixtures.at(6060))])
        #expect(answer.first == .setWeight(percent: 5))
        #expect(
            machine.handle(.resumed(now: Fixtures.at(6100))) == [
                .refuse("canary 'orders' is running, only a paused canary can be resumed")
            ]
        )
    }

    @Test("Pausing twice in one step counts only the running stretches")
    func pausesAccumulate() throws {
        var machine = try Fixtures.started()
        _ = machine.handle(.paused(now: Fixtures.at(30)))
        _ = machine.handle(.resumed(now: Fixtures.at(100)))
        _ = machine.handle(.paused(now: Fixtures.at(150)))
        #expect(
            machine.handle(.resumed(now: Fixtures.at(1000))) == [
                .record("canary 'orders': resumed at step 1/5 (1%), judged in 40s"),
                .wait(until: Fixtures.at(1040)),
            ]
        )
    }

    @Test("Promote skips the remaining steps, from running or paused")
    func promoteSkips() throws {
        var machine = try Fixtures.started(Fixtures.spec(reverseShadow: true))
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        _ = machine.handle(.paused(now: Fixtures.at(130)))
        let actions = machine.handle(.promoteRequested(now: Fixtures.at(140)))
        let reason = "promoted by an operator at step 2/5, skipping 25%, 50%, 100%"
        #expect(actions == [.promote(reverseShadow: true), .record("canary 'orders': \(reason)")])
        #expect(machine.state.phase == .promoted(at: Fixtures.at(140), reason: reason))
        #expect(machine.state.isFinished)
    }

    @Test("Abort sends the route back to 0% new with the operator's reason, from running or paused")
    func abortFromRunningOrPaused() throws {
        var running = try Fixtures.started()
        _ = Fixtures.judge(&running, at: 120, with: Fixtures.healthy())
        let reason = "aborted by an operator at step 2/5: checkout errors in the new service"
        #expect(
            running.handle(.abortRequested(now: Fixtures.at(150), reason: "checkout errors in the new service")) == [
                .abort(reason: reason), .record("canary 'orders': \(reason); back to 0% new"),
            ]
        )
        #expect(running.state.phase == .aborted(at: Fixtures.at(150), step: 1, reason: reason))

        var paused = try Fixtures.started()
        _ = paused.handle(.paused(now: Fixtures.at(10)))
        let actions = paused.handle(.abortRequested(now: Fixtures.at(20), reason: "x"))
        #expect(actions.first == .abort(reason: "aborted by an operator at step 1/5: x"))
        #expect(paused.state.weight == 0)
    }

    @Test(
        "A kill, rollback or flip by an operator aborts the canary, recorded, without a revision of its own",
        arguments: [
            (OperatorOverride.kill, "ficus kill"),
            (.rollback(toRevision: 12), "ficus rollback to revision 12"),
            (.flip(to: "orders-v2"), "ficus flip to 'orders-v2'"),
        ]
    )
    func operatorOverrideAborts(command: OperatorOverride, phrase: String) throws {
        var machine = try Fixtures.started()
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        let actions = machine.handle(.operatorOverride(now: Fixtures.at(130), command))
        let reason = "aborted by \(phrase) at step 2/5"
        #expect(actions == [.record("canary 'orders': \(reason); the route is left as the operator set it")])
        #expect(machine.state.phase == .aborted(at: Fixtures.at(130), step: 1, reason: reason))
    }

    @Test("After promotion or abort, ticks, evaluations and overrides do nothing and commands are refused")
    func finishedCanaryIgnoresEvents() throws {
        var machine = try Fixtures.started()
        _ = machine.handle(.abortRequested(now: Fixtures.at(10), reason: "x"))
        let finished = machine.state
        #expect(machine.handle(.tick(now: Fixtures.at(500))) == [])
        #expect(machine.handle(.evaluated(now: Fixtures.at(500), Fixtures.healthy())) == [])
        #expect(machine.handle(.operatorOverride(now: Fixtures.at(500), .kill)) == [])
        #expect(machine.handle(.started(now: Fixtures.at(500))) == [.refuse("canary 'orders' is already aborted")])
        #expect(machine.handle(.paused(now: Fixtures.at(500))).count == 1)
        #expect(machine.handle(.resumed(now: Fixtures.at(500))).count == 1)
        #expect(
            machine.handle(.promoteRequested(now: Fixtures.at(500))) == [
                .refuse("canary 'orders' is aborted, only a running or paused canary can be promoted")
            ]
        )
        #expect(
            machine.handle(.abortRequested(now: Fixtures.at(500), reason: "again")) == [
                .refuse("canary 'orders' is aborted, there is nothing to abort")
            ]
        )
        #expect(machine.state == finished)
    }

    @Test("A restarted controller decodes the stored state and continues with the same next actions")
    func restartMidCanary() throws {
        var original = try Fixtures.started(Fixtures.spec(maxDiffRate: 0.005))
        _ = Fixtures.judge(&original, at: 120, with: Fixtures.healthy())
        _ = Fixtures.judge(&original, at: 240, with: Fixtures.healthy(requests: 10))
        _ = original.handle(.paused(now: Fixtures.at(250.1)))
        _ = original.handle(.resumed(now: Fixtures.at(300.123_456_789)))
        _ = original.handle(.tick(now: Fixtures.at(320)))

        let stored = try original.state.jsonData()
        var restarted = CanaryStateMachine(state: try CanaryState(jsonData: stored))
        #expect(restarted.state == original.state)
        #expect(try restarted.state.jsonData() == stored)

        // The evaluation asked for before the restart is lost; the next tick asks for it again.
        let events: [CanaryEvent] = [
            .tick(now: Fixtures.at(330)),
            .tick(now: Fixtures.at(410.25)),
            .evaluated(now: Fixtures.at(410.25), Fixtures.healthy()),
            .tick(now: Fixtures.at(500)),
            .paused(now: Fixtures.at(510)),
        ]
        for event in events {
            let expected = original.handle(event)
            #expect(restarted.handle(event) == expected)
        }
        #expect(restarted.state == original.state)
        #expect(restarted.state.weight == 25)
    }

    @Test("An invalid spec is refused with every error")
    func invalidSpecThrows() {
        #expect(throws: CanarySpecInvalid.self) {
            try CanaryStateMachine(spec: Fixtures.spec(steps: [50, 5]))
        }
        do {
            _ = try CanaryStateMachine(spec: Fixtures.spec(steps: []))
        } catch let error as CanarySpecInvalid {
            #expect(error.description == "invalid canary (1 error)\n  - canary 'orders': steps: must not be empty")
        } catch {
            Issue.record("unexpected error \(error)")
        }
    }
}
