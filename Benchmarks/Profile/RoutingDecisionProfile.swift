// A plain loop over one routing scenario, for profilers (valgrind --tool=callgrind, perf) that do not cope with the
// benchmark runner's threads and malloc interposer. Not a benchmark: use RoutingDecision for numbers.
//
//   swift build -c release --scratch-path ../.build-bench --product RoutingDecisionProfile
//   valgrind --tool=callgrind \
//     --toggle-collect='$s9FicusCore12RoutingTableC6decideyAA8DecisionVxAA15RoutableRequestRzlF' \
//     ../.build-bench/release/RoutingDecisionProfile b 100000
//
// Arguments: scenario a | b | c | compile (default b), iterations (default 1,000,000; compile: 20).

import FicusCore
import RoutingFixture

@inline(never)
func consume(_ decision: Decision) -> Int {
    decision.bucket ?? 0
}

let arguments = CommandLine.arguments.dropFirst()
let scenario = arguments.first ?? "b"
let fixture = Fixture()
let clock = ContinuousClock()

if scenario == "compile" {
    let iterations = arguments.dropFirst().first.flatMap { Int($0) } ?? 20
    let start = clock.now
    for revision in 0..<iterations {
        _ = try RoutingTable(configuration: fixture.configuration, revision: revision)
    }
    print("compile: \(clock.now - start) total, \((clock.now - start) / iterations) per table")
} else {
    let request: RequestFacts
    switch scenario {
    case "a": request = fixture.firstRule
    case "c": request = fixture.percentage
    default: request = fixture.fallThrough
    }
    let iterations = arguments.dropFirst().first.flatMap { Int($0) } ?? 1_000_000
    var sink = 0
    let start = clock.now
    for _ in 0..<iterations {
        sink &+= consume(fixture.table.decide(request))
    }
    let elapsed = clock.now - start
    let nanoseconds = Double(elapsed.components.seconds) * 1e9 + Double(elapsed.components.attoseconds) / 1e9
    print("decide (\(scenario)): \(nanoseconds / Double(iterations)) ns per decision over \(iterations) (\(sink))")
}
