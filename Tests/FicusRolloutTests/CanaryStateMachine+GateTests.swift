import FicusRollout
import Foundation
import Testing

@Suite("Canary gates and steps")
struct CanaryStateMachineGateTests {
    @Test("A healthy canary sets each weight in turn, each judged after its interval, then promotes")
    func promotesThroughAllSteps() throws {
        var machine = try CanaryStateMachine(spec: Fixtures.spec(reverseShadow: true))
        let start = machine.handle(.started(now: Fixtures.at(0)))
        #expect(start.first == .setWeight(percent: 1))
        #expect(start.last == .wait(until: Fixtures.at(120)))

        var weights = [1]
        var time: TimeInterval = 0
        for step in 0..<5 {
            #expect(machine.handle(.tick(now: Fixtures.at(time + 60))) == [.wait(until: Fixtures.at(time + 120))])
            #expect(
                machine.handle(.tick(now: Fixtures.at(time + 119.5))) == [.wait(until: Fixtures.at(time + 120))]
            )
            let (ask, answer) = Fixtures.judge(&machine, at: time + 120, with: Fixtures.healthy())
            #expect(ask == [.evaluate(from: Fixtures.at(time), to: Fixtures.at(time + 120))])
            time += 120
            if step < 4 {
                guard case .setWeight(let percent) = answer.first else {
                    Issue.record("step \(step + 1) did not move on: \(answer)")
                    return
                }
                weights.append(percent)
                #expect(answer.last == .wait(until: Fixtures.at(time + 120)))
            } else {
                #expect(answer.first == .promote(reverseShadow: true))
                #expect(answer.count == 2)
            }
        }
        #expect(weights == [1, 5, 25, 50, 100])
        #expect(machine.state.phase == .promoted(at: Fixtures.at(600), reason: "every step passed"))
        #expect(machine.state.weight == 100)
        #expect(machine.state.history.count == 5)
        #expect(machine.state.history.allSatisfy { $0.verdict == .pass })
    }

    /// Inputs that fail exactly one gate, with the reason the abort must carry.
    static let failures: [(String, GateInputs, String)] = [
        (
            "error rate",
            GateInputs(
                newRequests: 200,
                newServerErrors: 10,
                newP99Micros: 100_000,
                legacyP99Micros: 100_000,
                shadow: ShadowCounts(compared: 1000, differing: 0)
            ),
            "error rate 5% > 1%"
        ),
        (
            "p99 ratio",
            GateInputs(
                newRequests: 200,
                newServerErrors: 0,
                newP99Micros: 231_000,
                legacyP99Micros: 100_000,
                shadow: ShadowCounts(compared: 1000, differing: 0)
            ),
            "p99 ratio 2.31 > 1.5"
        ),
        (
            "diff rate",
            GateInputs(
                newRequests: 200,
                newServerErrors: 0,
                newP99Micros: 100_000,
                legacyP99Micros: 100_000,
                shadow: ShadowCounts(compared: 1000, differing: 8)
            ),
            "diff rate 0.8% > 0.5%"
        ),
    ]

    @Test(
        "A failed gate aborts at the first step that sees it, naming the gate, its value and threshold",
        arguments: Self.failures
    )
    func failedGateAborts(gate: String, inputs: GateInputs, reason: String) throws {
        var machine = try Fixtures.started(Fixtures.spec(maxDiffRate: 0.005))
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        _ = Fixtures.judge(&machine, at: 240, with: Fixtures.healthy())
        #expect(machine.state.weight == 25)

        let (ask, answer) = Fixtures.judge(&machine, at: 360, with: inputs)
        #expect(ask == [.evaluate(from: Fixtures.at(240), to: Fixtures.at(360))])
        let full = "\(reason) at step 3/5 (25%)"
        #expect(answer == [.abort(reason: full), .record("canary 'orders': aborted: \(full); back to 0% new")])
        #expect(machine.state.phase == .aborted(at: Fixtures.at(360), step: 2, reason: full))
        #expect(machine.state.weight == 0)
        #expect(machine.state.history.last?.verdict == .fail(reason: reason))
    }

    @Test("Every failed gate is named when several fail together")
    func severalFailuresAreAllNamed() {
        let gates = CanaryGates(maxErrorRate: 0.01, maxP99Ratio: 1.5, maxDiffRate: 0.005, minRequests: 100)
        let inputs = GateInputs(
            newRequests: 100,
            newServerErrors: 2,
            newP99Micros: 300_000,
            legacyP99Micros: 100_000,
            shadow: ShadowCounts(compared: 10, differing: 1)
        )
        #expect(gates.judge(inputs) == .fail(reason: "error rate 2% > 1%; p99 ratio 3 > 1.5; diff rate 10% > 0.5%"))
    }

    @Test("A value just over its threshold prints with enough decimals to differ from it")
    func closeValuesPrintApart() {
        let gates = CanaryGates(maxErrorRate: 0.01, minRequests: 1)
        let inputs = GateInputs(newRequests: 10_000, newServerErrors: 101, newP99Micros: 1, legacyP99Micros: 1)
        #expect(gates.judge(inputs) == .fail(reason: "error rate 1.01% > 1%"))
        let closer = GateInputs(newRequests: 100_000, newServerErrors: 1_001, newP99Micros: 1, legacyP99Micros: 1)
        #expect(gates.judge(closer) == .fail(reason: "error rate 1.001% > 1%"))
    }

    @Test("Too few requests holds the step across several judgements, then passes once traffic arrives")
    func minRequestsHolds() throws {
        var machine = try Fixtures.started()
        let first = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy(requests: 40))
        #expect(
            first.answer == [
                .record(
                    "canary 'orders': step 1/5 (1%) held: too few requests on the new side: 40 < 100; "
                        + "judged again in 2m"
                ),
                .wait(until: Fixtures.at(240)),
            ]
        )
        // Not due again before another whole interval: no new window is asked for.
        #expect(machine.handle(.tick(now: Fixtures.at(200))) == [.wait(until: Fixtures.at(240))])
        #expect(
            machine.handle(.evaluated(now: Fixtures.at(200), Fixtures.healthy())) == [
                .wait(until: Fixtures.at(240))
            ]
        )

        let second = Fixtures.judge(&machine, at: 240, with: Fixtures.healthy(requests: 40))
        #expect(second.ask == [.evaluate(from: Fixtures.at(0), to: Fixtures.at(240))])
        #expect(second.answer.last == .wait(until: Fixtures.at(360)))
        let third = Fixtures.judge(&machine, at: 360, with: Fixtures.healthy(requests: 99))
        #expect(third.answer.last == .wait(until: Fixtures.at(480)))
        #expect(machine.state.weight == 1)
        #expect(!third.answer.contains { if case .setWeight = $0 { true } else { false } })

        // The window grows from the step's start, so traffic accumulates into evidence.
        let fourth = Fixtures.judge(&machine, at: 480, with: Fixtures.healthy(requests: 150))
        #expect(fourth.ask == [.evaluate(from: Fixtures.at(0), to: Fixtures.at(480))])
        #expect(fourth.answer.first == .setWeight(percent: 5))
        #expect(machine.state.weight == 5)

        // Identical holds fold into one history entry; a different reason starts another.
        let verdicts = machine.state.history.map { ($0.verdict, $0.count) }
        #expect(verdicts.count == 3)
        #expect(verdicts[0].1 == 2)
        #expect(verdicts[1].0 == .hold(reason: "too few requests on the new side: 99 < 100"))
        #expect(verdicts[2].0 == .pass)
    }

    @Test("Too few requests holds even when the few requests all failed")
    func fewSamplesNeverAbort() {
        let gates = CanaryGates()
        let inputs = GateInputs(newRequests: 3, newServerErrors: 3, newP99Micros: 9_000_000, legacyP99Micros: 1)
        #expect(gates.judge(inputs) == .hold(reason: "too few requests on the new side: 3 < 100"))
    }

    @Test("Legacy p99 of 0 makes the ratio undefined, which holds rather than passes")
    func undefinedRatioHolds() {
        let inputs = GateInputs(newRequests: 500, newServerErrors: 0, newP99Micros: 80_000, legacyP99Micros: 0)
        #expect(CanaryGates().judge(inputs) == .hold(reason: "legacy p99 is 0, so the p99 ratio is undefined"))
        #expect(GateValues(inputs).p99Ratio == nil)
    }

    @Test("A diff gate without shadow data holds and says so; without a diff gate shadow data is not needed")
    func diffGateNeedsShadowData() {
        let gated = CanaryGates(maxDiffRate: 0.005)
        var inputs = Fixtures.healthy()
        inputs.shadow = nil
        #expect(gated.judge(inputs) == .hold(reason: "no shadow data for the diff gate"))
        inputs.shadow = ShadowCounts(compared: 0, differing: 0)
        #expect(gated.judge(inputs) == .hold(reason: "no shadow comparisons yet for the diff gate"))
        #expect(CanaryGates().judge(inputs) == .pass)
    }

    @Test("A failed gate aborts even while another gate is undefined")
    func failureBeatsHold() {
        let inputs = GateInputs(newRequests: 200, newServerErrors: 20, newP99Micros: 1, legacyP99Micros: 0)
        #expect(CanaryGates(maxDiffRate: 0.01).judge(inputs) == .fail(reason: "error rate 10% > 1%"))
    }
}
