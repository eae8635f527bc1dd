import FicusRollout
import Foundation

/// Shared values for rollout tests: an injected clock and typical window readings.
///
/// Times are plain offsets from one fixed instant, so every expectation reads as seconds into the canary.
enum Fixtures {
    /// The instant every test's clock starts at.
    ///
    /// Whole seconds, so that JSON round trips are exact whatever the encoding.
    static let epoch = Date(timeIntervalSince1970: 1_700_000_000)

    /// `seconds` after `epoch`.
    ///
    /// The injected clock: tests never read the real one.
    static func at(_ seconds: TimeInterval) -> Date {
        self.epoch.addingTimeInterval(seconds)
    }

    /// A spec for route `orders` moving to `orders-v2` with the default steps, 120 s interval and default gates.
    ///
    /// The issue's own example.
    static func spec(
        steps: [Int] = CanarySpec.defaultSteps,
        maxDiffRate: Double? = nil,
        reverseShadow: Bool = false
    ) -> CanarySpec {
        CanarySpec(
            route: "orders",
            target: "orders-v2",
            steps: steps,
            interval: 120,
            gates: CanaryGates(maxErrorRate: 0.01, maxP99Ratio: 1.5, maxDiffRate: maxDiffRate, minRequests: 100),
            reverseShadowOnPromote: reverseShadow
        )
    }

    /// Windows of a healthy new side: 200 requests, no 5xx, p99 equal to legacy's, 1 diff in 1000 comparisons.
    ///
    /// Passes every gate of `spec()`, with or without the diff gate.
    static func healthy(requests: Int = 200) -> GateInputs {
        GateInputs(
            newRequests: requests,
            newServerErrors: 0,
            newP99Micros: 100_000,
            legacyP99Micros: 100_000,
            shadow: ShadowCounts(compared: 1000, differing: 1)
        )
    }

    /// A started machine for `spec`, at `Fixtures.at(0)`.
    ///
    /// Most tests begin with a running canary at step 1.
    static func started(_ spec: CanarySpec = Fixtures.spec()) throws -> CanaryStateMachine {
        var machine = try CanaryStateMachine(spec: spec)
        _ = machine.handle(.started(now: Fixtures.at(0)))
        return machine
    }

    /// Ticks at `time` and answers with `inputs`, returning both calls' actions.
    ///
    /// What the controller does at a step's due time: ask for the window, read it, hand it back.
    static func judge(
        _ machine: inout CanaryStateMachine,
        at time: TimeInterval,
        with inputs: GateInputs
    ) -> (ask: [CanaryAction], answer: [CanaryAction]) {
        let ask = machine.handle(.tick(now: Fixtures.at(time)))
        let answer = machine.handle(.evaluated(now: Fixtures.at(time), inputs))
        return (ask, answer)
    }
}
