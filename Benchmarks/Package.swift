// swift-tools-version: 6.1
//
// Micro-benchmarks of Bus1's building blocks and hot paths (package-benchmark),
// with allocation counts. Its own package so `swift test` at the root never
// builds it. Run from this directory: `swift package benchmark`.
import PackageDescription

let package = Package(
    name: "Bus1Benchmarks",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(name: "Bus1", path: ".."),
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]),
    ],
    targets: [
        .executableTarget(
            name: "Bus1Micro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Bus1", package: "Bus1"),
                .product(name: "Bus1Core", package: "Bus1"),
                .product(name: "Bus1Coordinator", package: "Bus1"),
            ],
            path: "Benchmarks/Bus1Micro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
