import FicusRollout
import Foundation
import Testing

@Suite("Canary status")
struct CanaryStatusTests {
    @Test("Shows step k of n, the weight, the latest gate values against thresholds and the time to the judgement")
    func runningStatus() throws {
        var machine = try Fixtures.started(Fixtures.spec(maxDiffRate: 0.005))
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        _ = Fixtures.judge(&machine, at: 240, with: Fixtures.healthy(requests: 40))

        let status = CanaryStatus(state: machine.state, now: Fixtures.at(300))
        #expect(status.phase == "running")
        #expect(status.step == 2)
        #expect(status.stepCount == 5)
        #expect(status.weight == 5)
        #expect(status.secondsToNextJudgement == 60)
        #expect(status.holding == "too few requests on the new side: 40 < 100")
        #expect(status.gates.map(\.name) == ["requests", "error rate", "p99 ratio", "diff rate"])
        #expect(status.gates.map(\.passing) == [false, true, true, true])
        #expect(status.gates[0].value == 40)
        #expect(status.gates[3].value == 0.001)
        #expect(abs(status.progress - (1 + 180.0 / 240.0) / 5) < 1e-9)
        #expect(
            status.description.hasPrefix(
                "canary 'orders' → 'orders-v2': running, step 2 of 5, 5% new [#######-------------], "
                    + "next judgement in 1m"
            )
        )
        #expect(status.description.contains("  requests: 40 (≥ 100) holding"))
        #expect(status.description.contains("  diff rate: 0.1% (≤ 0.5%) ok"))
        #expect(status.description.contains("  driven by: no proxy (start 'ficus serve' on this store)"))
        var driven = status
        driven.driver = "host:42:ab12cd34"
        #expect(driven.description.contains("  driven by: host:42:ab12cd34"))
    }

    @Test("A new step shows no values until it is judged; a paused step's remaining time is frozen")
    func pausedStatus() throws {
        var machine = try Fixtures.started()
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        _ = machine.handle(.paused(now: Fixtures.at(150)))
        let status = CanaryStatus(state: machine.state, now: Fixtures.at(9999))
        #expect(status.phase == "paused")
        #expect(status.secondsToNextJudgement == 90)
        #expect(status.gates.allSatisfy { $0.value == nil })
    }

    @Test("A finished canary shows its reason and the step it ended at")
    func finishedStatus() throws {
        var machine = try Fixtures.started()
        let failing = GateInputs(newRequests: 200, newServerErrors: 20, newP99Micros: 1, legacyP99Micros: 1)
        _ = Fixtures.judge(&machine, at: 120, with: failing)
        let status = CanaryStatus(state: machine.state, now: Fixtures.at(130))
        #expect(status.phase == "aborted")
        #expect(status.step == 1)
        #expect(status.weight == 0)
        #expect(status.reason == "error rate 10% > 1% at step 1/5 (1%)")
        #expect(status.gates[1].passing == false)
        #expect(status.secondsToNextJudgement == nil)
        #expect(!status.description.contains("driven by"), "a finished canary needs no driver")

        var overridden = try Fixtures.started()
        _ = Fixtures.judge(&overridden, at: 120, with: Fixtures.healthy())
        _ = overridden.handle(.operatorOverride(now: Fixtures.at(130), .kill))
        let killed = CanaryStatus(state: overridden.state, now: Fixtures.at(140))
        #expect(killed.step == 2)
        #expect(killed.reason == "aborted by ficus kill at step 2/5")
        #expect(killed.gates.allSatisfy { $0.value == nil })
    }
}
