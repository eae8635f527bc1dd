// swift-tools-version:6.0
import PackageDescription

/// The libFuzzer executables, one per fuzz target of FicusFuzzTargets (the names are the directories of Corpus/).
///
/// A package of its own so that the main package's build never sees `-sanitize=fuzzer`: build with
/// `scripts/fuzz.sh`, or `swift build --package-path Fuzz -c release -Xswiftc -sanitize=fuzzer,address`.
let targets = [
    "request-parser",
    "response-parser",
    "proxy-exchange",
    "json-diff",
    "endpoint-template",
    "rules-loader",
    "routing-decision",
]

let package = Package(
    name: "FicusFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        // Named: the identity of a path dependency is its directory's name, which differs between checkouts.
        .package(name: "Ficus", path: ".."),
    ],
    targets: [
        // Declares libFuzzer's LLVMFuzzerRunDriver, which each executable's main calls (see driver.c).
        .target(name: "CFuzzDriver")
    ]
        + targets.map { name in
            .executableTarget(
                name: name,
                dependencies: [
                    "CFuzzDriver",
                    .product(name: "FicusFuzzTargets", package: "Ficus"),
                ]
            )
        },
    swiftLanguageModes: [.v6]
)
