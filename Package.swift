// swift-tools-version: 6.1
import PackageDescription

let strictSettings: [SwiftSetting] = [
    .enableUpcomingFeature("InternalImportsByDefault"),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "Tern",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "ternd", targets: ["ternd"]),
        .executable(name: "tern", targets: ["tern"]),
        .executable(name: "tern-bench", targets: ["tern-bench"]),
        .executable(name: "tern-lmdb", targets: ["tern-lmdb"]),
        .executable(name: "tern-sim", targets: ["tern-sim"]),
        .library(name: "TernClient", targets: ["TernClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        .systemLibrary(name: "CLMDB", pkgConfig: "lmdb", providers: [.apt(["liblmdb-dev"])]),
        .systemLibrary(name: "CSnappy", pkgConfig: "snappy", providers: [.apt(["libsnappy-dev"])]),
        .target(name: "CCRC32C"),
        // glibc's <malloc.h> (mallinfo2, malloc_trim) for TernServer's MemoryTrimmer.
        .systemLibrary(name: "CMalloc"),
        .target(name: "TernCore", swiftSettings: strictSettings),
        .target(
            name: "TernStorage",
            dependencies: [
                "TernCore", "CLMDB", "CSnappy", "CCRC32C",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernBroker",
            dependencies: [
                "TernCore", "TernStorage",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernReplication",
            dependencies: ["TernCore"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernSimulation",
            dependencies: ["TernReplication"],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tern-sim",
            dependencies: [
                "TernReplication", "TernSimulation",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernWire",
            dependencies: ["TernCore", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernGossip",
            dependencies: [
                "TernCore",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernMetadata",
            dependencies: ["TernCore", "TernStorage"],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernCluster",
            dependencies: [
                "TernCore", "TernStorage", "TernBroker", "TernReplication", "TernMetadata",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernClient",
            dependencies: [
                "TernCore", "TernWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernServer",
            dependencies: [
                "TernCore", "TernStorage", "TernBroker", "TernWire", "TernGossip", "TernCluster", "TernReplication", "TernMetadata", "CMalloc",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernSQS",
            dependencies: [
                "TernCore", "TernStorage", "TernBroker", "TernServer",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "ternd",
            dependencies: [
                "TernCore", "TernStorage", "TernBroker", "TernServer", "TernGossip", "TernSQS", "TernCluster", "TernMetadata",
                "TernReplication",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tern-bench",
            dependencies: [
                "TernCore", "TernWire", "TernClient", "TernStorage",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tern-lmdb",
            dependencies: [
                "TernCore", "TernStorage", "TernBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strictSettings
        ),
        .executableTarget(
            name: "tern",
            dependencies: [
                "TernCore", "TernWire", "TernClient",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .target(
            name: "TernTestKit",
            dependencies: [
                "TernCore",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "TernStorageTests", dependencies: ["TernStorage", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(name: "TernBrokerTests", dependencies: ["TernBroker", "TernStorage", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(
            name: "TernServerTests",
            dependencies: [
                "TernServer", "TernBroker", "TernStorage", "TernTestKit", "TernCluster", "TernReplication",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "TernMetadataTests", dependencies: ["TernMetadata", "TernCore", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(
            name: "TernClusterTests",
            dependencies: ["TernCluster", "TernBroker", "TernStorage", "TernReplication", "TernTestKit"],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "TernReplicationTests", dependencies: ["TernReplication", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(name: "TernSimulationTests", dependencies: ["TernSimulation", "TernReplication"], swiftSettings: strictSettings),
        .testTarget(name: "TernGossipTests", dependencies: ["TernGossip", "TernSQS", "TernCore", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(
            name: "TernSQSTests",
            dependencies: [
                "TernSQS", "TernServer", "TernBroker", "TernStorage", "TernTestKit",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(name: "TernWireTests", dependencies: ["TernWire", "TernCore", "TernTestKit"], swiftSettings: strictSettings),
        .testTarget(
            name: "TernClientTests",
            dependencies: [
                "TernClient", "TernWire", "TernServer", "TernBroker", "TernStorage", "TernTestKit",
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strictSettings
        ),
        .testTarget(
            name: "TernIntegrationTests",
            dependencies: [
                "TernTestKit", "ternd", "tern", "tern-lmdb", "tern-bench", "TernClient", "TernServer",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            swiftSettings: strictSettings
        ),
    ]
)

// Micro-benchmarks (ordo-one/benchmark) are only part of the package when asked for, so that
// `make test` does not build the benchmark framework:
//   TERN_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark --target StorageBenchmarks
if Context.environment["TERN_BENCHMARKS"] == "1" {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.1", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "StorageBenchmarks",
            dependencies: [
                "TernStorage",
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Benchmarks/StorageBenchmarks",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ))
}
