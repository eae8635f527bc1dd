// swift-tools-version:6.0
import PackageDescription

let package = Package(
    name: "Ficus",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ficus", targets: ["ficus"]),
        .library(name: "FicusCore", targets: ["FicusCore"]),
        .library(name: "FicusRules", targets: ["FicusRules"]),
        // The fuzz targets, for the libFuzzer executables of the Fuzz/ package (which depends on this one by path).
        .library(name: "FicusFuzzTargets", targets: ["FicusFuzzTargets"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/adam-fowler/compress-nio", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-crypto", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        // Already in the graph through swift-nio; named for the data path's lock-free flags (UpstreamHealth).
        .package(url: "https://github.com/apple/swift-atomics", from: "1.3.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.2"),
    ],
    targets: [
        // Crypto: SHA-256 of blue-green preview tokens (only their digests are stored).
        .target(name: "FicusCore", dependencies: [.product(name: "Crypto", package: "swift-crypto")]),
        .target(
            name: "FicusRules",
            dependencies: [
                "FicusCore",
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .target(
            name: "FicusDiff",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "CompressNIO", package: "compress-nio"),
            ]
        ),
        .target(
            name: "FicusRollout",
            dependencies: ["FicusCore"]
        ),
        .target(
            name: "FicusReport",
            dependencies: ["FicusCore", "FicusDiff", "FicusStore"]
        ),
        .target(
            name: "FicusStore",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                // SHA-256 content addresses of configuration objects.
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "GRDB", package: "GRDB.swift"),
                // The fleet store (docs/FLEET.md): several proxies and CLIs on one PostgreSQL.
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FicusProxy",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
            // Dynamic exclusivity checks stay on in release: measured at about 1.2% of the proxy's CPU under load,
            // under the 3% that would justify turning them off (docs/BENCHMARKS.md, session 10).
        ),
        // The runtime: one `FicusNode` service that wires the store to the proxy, the shadow comparer, the metric
        // windows and the rollout controllers; `ficus serve` and `ficus demo` both build it.
        .target(
            name: "FicusRuntime",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                "FicusProxy",
                "FicusRollout",
                "FicusStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .target(
            name: "FicusFuzzTargets",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                "FicusProxy",
                "FicusRules",
                .product(name: "NIOCore", package: "swift-nio"),
            ]
        ),
        .target(
            name: "FicusTesting",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                // Test certificates (a CA, leaf certificates signed by it) and TLS on the loopback servers.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ]
        ),
        .executableTarget(
            name: "ficus",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                "FicusReport",
                "FicusRollout",
                "FicusStore",
                "FicusProxy",
                "FicusRules",
                "FicusRuntime",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // SIGHUP: re-read the listener's certificate files.
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                // `bluegreen check` of `https://` slots, verified as the proxy's requests are.
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "FicusCoreTests", dependencies: ["FicusCore"]),
        .testTarget(name: "FicusRulesTests", dependencies: ["FicusCore", "FicusRules"]),
        .testTarget(name: "FicusFuzzTargetsTests", dependencies: ["FicusFuzzTargets"]),
        .executableTarget(name: "ficus-store-probe", dependencies: ["FicusCore", "FicusDiff", "FicusStore"]),
        .testTarget(
            name: "FicusStoreTests",
            dependencies: [
                "FicusCore", "FicusDiff", "FicusStore", "ficus-store-probe",
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(name: "FicusDiffTests", dependencies: ["FicusDiff"]),
        .testTarget(name: "FicusRolloutTests", dependencies: ["FicusCore", "FicusRollout"]),
        .testTarget(name: "FicusReportTests", dependencies: ["FicusCore", "FicusDiff", "FicusStore", "FicusReport"]),
        .testTarget(
            name: "FicusCLITests",
            dependencies: [
                "ficus",
                "FicusCore",
                "FicusStore",
                "FicusTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "GRDB", package: "GRDB.swift"),
            ]
        ),
        .testTarget(
            name: "FicusRuntimeTests",
            dependencies: [
                "FicusCore",
                "FicusDiff",
                "FicusProxy",
                "FicusRollout",
                "FicusRuntime",
                "FicusStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .testTarget(
            name: "FicusProxyTests",
            dependencies: [
                "FicusCore",
                "FicusProxy",
                "FicusTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
