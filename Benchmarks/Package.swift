// swift-tools-version:6.1
import PackageDescription

// Release-mode benchmarks for Ficus, kept out of the root package so that `swift test` never builds them.
// Run from this directory: swift package --scratch-path ../.build-bench benchmark
let package = Package(
    name: "FicusBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(name: "Ficus", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        // The 1,000-route configuration and the requests, shared by the benchmark and the profiling driver.
        .target(
            name: "RoutingFixture",
            dependencies: [.product(name: "FicusCore", package: "Ficus")],
            path: "Fixtures"
        ),
        // Discovered by the benchmark plugin because it lives in Benchmarks/<Name>/.
        .executableTarget(
            name: "RoutingDecision",
            dependencies: [
                "RoutingFixture",
                .product(name: "FicusCore", package: "Ficus"),
                .product(name: "Benchmark", package: "benchmark"),
            ],
            path: "Benchmarks/RoutingDecision",
            plugins: [
                .plugin(name: "BenchmarkPlugin", package: "benchmark")
            ]
        ),
        // A plain loop for callgrind/perf; outside Benchmarks/, so the benchmark plugin does not run it.
        .executableTarget(
            name: "RoutingDecisionProfile",
            dependencies: [
                "RoutingFixture",
                .product(name: "FicusCore", package: "Ficus"),
            ],
            path: "Profile"
        ),
    ],
    swiftLanguageModes: [.v6]
)
