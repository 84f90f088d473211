// swift-tools-version: 6.1
import PackageDescription

let package = Package(
    name: "drover",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "drover-controller", targets: ["drover-controller"]),
        .executable(name: "drover-agent", targets: ["drover-agent"]),
        .executable(name: "drover", targets: ["drover"]),
        .executable(name: "drover-sim", targets: ["drover-sim"]),
    ],
    dependencies: [
        .package(url: "https://github.com/groue/GRDB.swift", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.1"),
        .package(url: "https://github.com/apple/swift-crypto", from: "4.5.2"),
        .package(url: "https://github.com/swift-server/async-http-client", from: "1.37.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.1"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.4"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/HdrHistogram/hdrhistogram-swift", from: "0.2.0"),
    ],
    targets: [
        // C libraries from Debian, through pkg-config.
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(name: "CSystemd", pkgConfig: "libsystemd", providers: [.apt(["libsystemd-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),

        // The agent's HTTPS client for enrollment and the CA fingerprint, over the system's
        // OpenSSL (which libmosquitto loads anyway): no second TLS stack on the device.
        .target(name: "CDroverTLS", linkerSettings: [.linkedLibrary("ssl"), .linkedLibrary("crypto")]),

        // Small glibc helpers that Swift's Glibc module hides behind _GNU_SOURCE.
        .target(name: "CDroverSys"),

        .target(name: "DroverPOSIX", dependencies: ["CDroverSys"]),
        // .rounded() needs libm, which nothing else brings in for a binary without Foundation.
        .target(name: "DroverCore", linkerSettings: [.linkedLibrary("m")]),
        .target(
            name: "DroverSystemd",
            dependencies: ["CSystemd", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"), .product(name: "Logging", package: "swift-log")]),
        .target(name: "DroverAPI", dependencies: ["DroverCore"]),
        .target(name: "DroverManifest", dependencies: ["DroverCore", .product(name: "Yams", package: "Yams")]),
        // JSON for Codable values without Foundation: the agent links none.
        .target(name: "DroverJSON"),
        .target(name: "DroverProtocol", dependencies: ["CZlib", "DroverCore", "DroverJSON"], exclude: ["README.md"]),
        .target(name: "DroverMQTT", dependencies: ["CMosquitto", "CDroverTLS", .product(name: "Logging", package: "swift-log")]),
        .target(
            name: "DroverStore",
            dependencies: [
                "DroverCore", "DroverJSON", "DroverProtocol", .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
            ]),
        .target(name: "DroverAgentStore", dependencies: ["CSQLite", "DroverCore", "DroverJSON"]),
        .target(name: "DroverScheduler", dependencies: ["DroverCore"]),
        .target(
            name: "DroverController",
            dependencies: [
                "DroverCore", "DroverManifest", "DroverProtocol", "DroverMQTT", "DroverStore", "DroverScheduler",
                "DroverSystemd", "DroverAPI", "DroverPOSIX",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CryptoExtras", package: "swift-crypto"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            resources: [.copy("openapi.yaml")]
        ),
        .target(
            name: "DroverAgent",
            dependencies: [
                "DroverCore", "DroverJSON", "DroverProtocol", "DroverMQTT", "DroverAgentStore", "DroverSystemd", "DroverPOSIX", "CDroverSys", "CDroverTLS", "DroverAPI",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        .executableTarget(
            name: "drover-controller",
            dependencies: ["DroverController", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        .executableTarget(
            name: "drover-agent",
            dependencies: ["DroverAgent", "DroverAPI"]
        ),
        .executableTarget(
            name: "drover",
            dependencies: [
                "DroverCore", "DroverManifest", "DroverAPI", "DroverPOSIX",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),

        // Print placement figures for synthetic fleets; run by tools/bench in release mode.
        .executableTarget(name: "drover-scheduler-bench", dependencies: ["DroverScheduler"]),
        // The same through the controller's Fleet actor and its SQLite store.
        .executableTarget(
            name: "drover-fleet-bench",
            dependencies: ["DroverController", "DroverCore", "DroverProtocol", "DroverStore", .product(name: "Logging", package: "swift-log")]
        ),

        // Simulated devices over real MQTT connections, for load tests and benchmarks: the
        // device logic (pure) and the executable that drives thousands of connections from a
        // few threads (libmosquitto's external loop over epoll).
        .target(name: "DroverSim", dependencies: ["DroverCore", "DroverProtocol"]),
        .target(name: "CDroverEpoll"),
        .executableTarget(
            name: "drover-sim",
            dependencies: ["DroverSim", "DroverCore", "DroverProtocol", "DroverMQTT", "CMosquitto", "CDroverEpoll", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),

        // End to end with simulated devices: apply → running (HdrHistogram, beside a minimal
        // controller's floor) and 10,000 devices on one controller.
        .executableTarget(
            name: "drover-load-bench",
            dependencies: [
                "DroverCore", "DroverMQTT", "DroverProtocol", "DroverPOSIX",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Histogram", package: "hdrhistogram-swift"),
                .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),

        // Recovery of a real fleet (controller, broker, 100 agents) from a broker crash and a controller restart.
        .executableTarget(name: "drover-recovery-bench", dependencies: ["DroverPOSIX"]),

        .testTarget(
            name: "DroverUnitTests",
            dependencies: [
                "DroverCore", "DroverJSON", "DroverManifest", "DroverProtocol", "DroverMQTT", "DroverScheduler",
                "DroverAgentStore", "DroverAgent", "DroverController", "DroverStore", "DroverAPI", "DroverSim",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Yams", package: "Yams"),
            ]
        ),
        .testTarget(
            name: "DroverIntegrationTests",
            dependencies: [
                "DroverCore", "DroverProtocol", "DroverMQTT", "DroverAPI", "DroverPOSIX",
                .product(name: "AsyncHTTPClient", package: "async-http-client"), .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
    ],
    swiftLanguageModes: [.v6]
)
