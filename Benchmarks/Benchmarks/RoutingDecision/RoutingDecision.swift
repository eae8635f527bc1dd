// Routing-decision micro-benchmarks for FicusCore (issue 3, "Benchmark").
//
// Run from /work/main/Benchmarks (release build, results in docs/BENCHMARKS.md):
//   swift package --scratch-path ../.build-bench benchmark --target RoutingDecision
//
// Every `decide` benchmark reuses one prebuilt `RequestFacts`, so it measures the decision only, not the building of
// the request. The proxy passes its own `RequestView` (FicusProxy), whose accessors build Strings on each call; that
// cost is not covered here.

import Benchmark
import FicusCore
import RoutingFixture

// MARK: - Benchmarks

let benchmarks: @Sendable () -> Void = {
    let fixture = Fixture()
    let table = fixture.table

    // Bounded runs: the machine has two cores shared with other builds.
    let decideMetrics: [BenchmarkMetric] = [.wallClock, .mallocCountTotal]

    let cases: [(String, RequestFacts)] = [
        ("(a) first rule", fixture.firstRule),
        ("(b) fall through 10 rules to default", fixture.fallThrough),
        ("(c) sticky percentage rule", fixture.percentage),
    ]

    for (label, request) in cases {
        // Batches of 1,000 decisions: per-decision cost without the per-sample clock and bookkeeping overhead (about
        // 50-100 ns here); results are shown per decision (scaled, marked `*`).
        Benchmark(
            "decide \(label) x1000",
            configuration: .init(
                metrics: decideMetrics,
                timeUnits: .nanoseconds,
                warmupIterations: 100,
                scalingFactor: .kilo,
                maxDuration: .seconds(3),
                maxIterations: 1_000_000
            )
        ) { benchmark in
            for _ in benchmark.scaledIterations {
                blackHole(table.decide(request))
            }
        }

        // One decision per sample: its distribution gives the per-decision tail (p99), timer overhead included.
        Benchmark(
            "decide \(label) single",
            configuration: .init(
                metrics: [.wallClock, .mallocCountTotal],
                timeUnits: .nanoseconds,
                warmupIterations: 1_000,
                scalingFactor: .one,
                maxDuration: .seconds(3),
                maxIterations: 1_000_000
            )
        ) { benchmark in
            blackHole(table.decide(request))
        }
    }

    // What a revision swap costs: validation + compilation of the whole table, from a decoded Configuration.
    let configuration = fixture.configuration
    Benchmark(
        "RoutingTable compile (1000 routes x 10 rules)",
        configuration: .init(
            metrics: [.wallClock, .mallocCountTotal, .peakMemoryResidentDelta],
            timeUnits: .milliseconds,
            warmupIterations: 2,
            scalingFactor: .one,
            maxDuration: .seconds(5),
            maxIterations: 200
        )
    ) { benchmark in
        let revision = benchmark.currentIteration + 2
        do {
            blackHole(try RoutingTable(configuration: configuration, revision: revision))
        } catch {
            benchmark.error("compile failed: \(error)")
        }
    }
}
