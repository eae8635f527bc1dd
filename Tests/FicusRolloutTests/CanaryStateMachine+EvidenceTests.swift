import FicusRollout
import Foundation
import Testing

/// A canary that cannot gather evidence says why and stops; a failed gate can pause instead of abort (issue 15).
@Suite("Canary state machine: no evidence, cannot split, on-fail pause")
struct CanaryStateMachineEvidenceTests {
    /// All traffic from one address (a load balancer) with client_ip stickiness: legacy gets everything, the new side
    /// nothing. The step says it cannot split, then pauses with `no evidence` after `maxHold` intervals; it never
    /// promotes.
    /// Plenty of requests on both sides, but from a handful of users: the split says nothing about the others. The
    /// step holds with the counts and the settings to change, and pauses with `no evidence` after `maxHold`.
    @Test func fewerThanTwentyDistinctUsersHoldsAndPausesAfterMaxHold() throws {
        var spec = Fixtures.spec()
        spec.maxHold = 2
        var machine = try Fixtures.started(spec)
        var few = Fixtures.healthy()
        few.legacyRequests = 4_000
        few.distinctIdentities = 7
        let (_, first) = Fixtures.judge(&machine, at: 120, with: few)
        guard case .record(let line)? = first.first else {
            Issue.record("no record: \(first)")
            return
        }
        #expect(line.contains("too few distinct users"), "\(line)")
        #expect(line.contains("came from 7 distinct sticky value(s), fewer than 20"), "\(line)")
        #expect(line.contains("\(few.newRequests + 4_000) request(s)"), "\(line)")
        #expect(line.contains("--trusted-proxy") && line.contains("ficus identity set header:X-User-Id"), "\(line)")
        #expect(machine.state.weight == 1)
        _ = Fixtures.judge(&machine, at: 240, with: few)
        guard case .paused = machine.state.phase else {
            Issue.record("not paused after 2 holds: \(machine.state.phase)")
            return
        }
        #expect(machine.state.pausedReason?.contains("too few distinct users") == true)

        // Twenty distinct users are enough, and unknown counts (older proxies) judge as before.
        for distinct in [20, 32, nil] as [Int?] {
            var enough = try Fixtures.started(spec)
            var inputs = Fixtures.healthy()
            inputs.distinctIdentities = distinct
            let (_, answer) = Fixtures.judge(&enough, at: 120, with: inputs)
            #expect(enough.state.weight == 5, "\(String(describing: distinct)): \(answer)")
        }
    }

    @Test func oneAddressTrafficReportsCannotSplitAndPausesAfterMaxHold() throws {
        var spec = Fixtures.spec()
        spec.maxHold = 3
        var machine = try Fixtures.started(spec)
        let starved = GateInputs(
            newRequests: 0, newServerErrors: 0, newP99Micros: 0, legacyP99Micros: 100_000, legacyRequests: 5_000)
        var time: TimeInterval = 120
        for hold in 1...2 {
            let (_, answer) = Fixtures.judge(&machine, at: time, with: starved)
            guard case .record(let line)? = answer.first else {
                Issue.record("no record at hold \(hold): \(answer)")
                return
            }
            #expect(line.contains("cannot split: the new side got no request while legacy got 5000"), "\(line)")
            #expect(line.contains("--sticky header:X-User-Id"), "\(line)")
            #expect(machine.state.weight == 1)
            time += 120
        }
        let (_, third) = Fixtures.judge(&machine, at: time, with: starved)
        guard case .paused = machine.state.phase else {
            Issue.record("not paused after 3 holds: \(machine.state.phase)")
            return
        }
        #expect(machine.state.pausedReason?.hasPrefix("no evidence: 3 intervals at step 1/5") == true)
        #expect(machine.state.weight == 1, "pausing keeps the weight")
        #expect(!third.contains { if case .promote = $0 { true } else { false } })
        let status = CanaryStatus(state: machine.state, now: Fixtures.at(time + 1))
        #expect(status.reason?.contains("no evidence") == true)
        #expect(status.description.contains("paused by the canary: no evidence"), "\(status.description)")
        // Paused, time does not count: no judgement is asked for.
        #expect(machine.handle(.tick(now: Fixtures.at(time + 10_000))).isEmpty)
        // A resume judges afresh one interval later, with the hold count reset.
        _ = machine.handle(.resumed(now: Fixtures.at(time + 10_000)))
        #expect(machine.state.pausedReason == nil)
        let early = machine.handle(.tick(now: Fixtures.at(time + 10_060)))
        #expect(!early.contains { if case .evaluate = $0 { true } else { false } })
        let (_, passed) = Fixtures.judge(&machine, at: time + 10_120, with: Fixtures.healthy())
        #expect(machine.state.weight == 5, "\(passed)")
    }

    /// Too few requests everywhere is not a split problem: the plain hold reason.
    @Test func quietTrafficIsNotReportedAsASplitProblem() throws {
        var machine = try Fixtures.started()
        let quiet = GateInputs(newRequests: 0, newServerErrors: 0, newP99Micros: 0, legacyP99Micros: 0, legacyRequests: 3)
        let (_, answer) = Fixtures.judge(&machine, at: 120, with: quiet)
        guard case .record(let line)? = answer.first else {
            Issue.record("\(answer)")
            return
        }
        #expect(line.contains("too few requests on the new side: 0 < 100"), "\(line)")
    }

    /// With `onFail: .pause` a failed gate pauses at the step's weight instead of going back to 0% new.
    @Test func onFailPausePausesAtTheWeight() throws {
        var spec = Fixtures.spec()
        spec.onFail = .pause
        var machine = try Fixtures.started(spec)
        _ = Fixtures.judge(&machine, at: 120, with: Fixtures.healthy())
        #expect(machine.state.weight == 5)
        var failing = Fixtures.healthy()
        failing.newServerErrors = 50
        let (_, answer) = Fixtures.judge(&machine, at: 240, with: failing)
        #expect(!answer.contains { if case .abort = $0 { true } else { false } }, "\(answer)")
        guard case .paused = machine.state.phase else {
            Issue.record("\(machine.state.phase)")
            return
        }
        #expect(machine.state.weight == 5)
        #expect(machine.state.pausedReason?.hasPrefix("gate failed: error rate 25% > 1% at step 2/5") == true)
    }

    /// Canaries stored before `onFail` and `maxHold` existed decode with their defaults.
    @Test func olderStoredSpecsDecodeWithDefaults() throws {
        let json = """
            {"route":"orders","target":"v2","steps":[1,100],"interval":60,"reverseShadowOnPromote":false,
             "gates":{"maxErrorRate":0.01,"maxP99Ratio":1.5,"minRequests":100}}
            """
        let spec = try JSONDecoder().decode(CanarySpec.self, from: Data(json.utf8))
        #expect(spec.onFail == .abort)
        #expect(spec.maxHold == 5)
    }

    /// Windows this proxy could not store are a gate error with its own reason, not "too few requests", and count
    /// towards the pause for lack of evidence.
    @Test func lostWindowsAreAGateErrorNotNoData() throws {
        var spec = Fixtures.spec()
        spec.maxHold = 2
        var machine = try Fixtures.started(spec)
        var inputs = Fixtures.healthy()
        inputs.windowErrors = 3
        let (_, answer) = Fixtures.judge(&machine, at: 120, with: inputs)
        guard case .record(let line)? = answer.first else {
            Issue.record("\(answer)")
            return
        }
        #expect(line.contains("gate error: 3 metric window(s) of this proxy could not be stored"), "\(line)")
        #expect(machine.state.weight == 1, "healthy numbers do not pass a step whose windows were lost")
        _ = Fixtures.judge(&machine, at: 240, with: inputs)
        #expect(machine.state.pausedReason?.contains("gate error") == true)
    }
}
