// swift-tools-version:6.1
// Parley: end-to-end encrypted calls and messages. See docs/ARCHITECTURE.md for the module map.
import PackageDescription

let strict: [SwiftSetting] = [.enableUpcomingFeature("ExistentialAny")]

let package = Package(
    name: "parley",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "parley", targets: ["parley"]),
        .executable(name: "FuzzSTUN", targets: ["FuzzSTUN"]),
        .library(name: "ParleyWire", targets: ["ParleyWire"]),
        .library(name: "ParleyCrypto", targets: ["ParleyCrypto"]),
        .library(name: "ParleyRelay", targets: ["ParleyRelay"]),
        .library(name: "ParleyNAT", targets: ["ParleyNAT"]),
        .library(name: "ParleyServer", targets: ["ParleyServer"]),
        .library(name: "ParleySignal", targets: ["ParleySignal"]),
        .library(name: "ParleyClient", targets: ["ParleyClient"]),
        .library(name: "ParleyStore", targets: ["ParleyStore"]),
        .library(name: "ParleyMedia", targets: ["ParleyMedia"]),
        .executable(name: "FuzzSignal", targets: ["FuzzSignal"]),
        .executable(name: "FuzzTURN", targets: ["FuzzTURN"]),
        .executable(name: "FuzzMedia", targets: ["FuzzMedia"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.3"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.1"),
    ],
    targets: [
        // zlib's crc32 for STUN FINGERPRINT (Debian zlib1g-dev).
        .systemLibrary(name: "CZlib", path: "Sources/CZlib", providers: [.apt(["zlib1g-dev"])]),
        // Value types and codecs. No I/O, no clocks.
        .target(
            name: "ParleyWire",
            dependencies: [
                "CZlib",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        // libopus (Debian libopus-dev) with typed wrappers for the variadic ctl calls.
        .systemLibrary(name: "COpus", path: "Sources/COpus", providers: [.apt(["libopus-dev"])]),
        // libsoxr (Debian libsoxr-dev): resampling of WAV input to 48 kHz.
        .systemLibrary(name: "CSoxr", path: "Sources/CSoxr", providers: [.apt(["libsoxr-dev"])]),
        // Audio: Opus codec, WAV files, resampling, test tones, jitter buffer, call quality (E-model).
        .target(
            name: "ParleyMedia",
            dependencies: ["COpus", "CSoxr"],
            swiftSettings: strict
        ),
        // Device identities and key files.
        .target(
            name: "ParleyCrypto",
            dependencies: ["ParleyWire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        // STUN server (and later TURN): sans-I/O cores plus NIO handlers.
        .target(
            name: "ParleyRelay",
            dependencies: [
                "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Storage: accounts, device keys, queued events, offline sealed mail. SQLite (GRDB) by default.
        .target(
            name: "ParleyStore",
            dependencies: [
                "ParleyCrypto",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // Signaling: login, presence, calls, acknowledged queues, offline mail (sans-I/O machines + NIO).
        .target(
            name: "ParleySignal",
            dependencies: [
                "ParleyWire",
                "ParleyCrypto",
                "ParleyStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Client-side NAT work: RFC 5780 behaviour discovery.
        .target(
            name: "ParleyNAT",
            dependencies: [
                "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Config, logging, HTTP, service wiring.
        .target(
            name: "ParleyServer",
            dependencies: [
                "ParleyRelay",
                "ParleyCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                "ParleySignal",
                "ParleyStore",
            ],
            swiftSettings: strict
        ),
        // The client SDK: login, calls (signaling and encrypted media), sealed messages, key pinning.
        .target(
            name: "ParleyClient",
            dependencies: [
                "ParleyWire",
                "ParleyCrypto",
                "ParleyMedia",
                "ParleyNAT",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "parley",
            dependencies: [
                "ParleyClient",
                "ParleyMedia",
                "ParleyServer",
                "ParleyNAT",
                "ParleyCrypto",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: strict
        ),
        // libFuzzer target for the STUN decoder. Built with -DFUZZING it exports LLVMFuzzerTestOneInput;
        // built normally it replays corpus files given on the command line (crash regressions).
        // The corpus replayer the Fuzz* executables share when built without -DFUZZING.
        .target(name: "FuzzReplay", swiftSettings: strict),
        .executableTarget(
            name: "FuzzSTUN",
            dependencies: ["ParleyWire", "ParleyRelay", "FuzzReplay"],
            swiftSettings: strict
        ),
        // libFuzzer target for the signaling line codec (same conventions as FuzzSTUN).
        .executableTarget(
            name: "FuzzSignal",
            dependencies: ["ParleyWire", "ParleyCrypto", "FuzzReplay"],
            swiftSettings: strict
        ),
        // libFuzzer target for the TURN relay core and the ChannelData codec (same conventions as FuzzSTUN).
        .executableTarget(
            name: "FuzzTURN",
            dependencies: ["ParleyWire", "ParleyRelay", "FuzzReplay"],
            swiftSettings: strict
        ),
        // libFuzzer target for the call media parsers and state machines (same conventions as FuzzSTUN).
        .executableTarget(
            name: "FuzzMedia",
            dependencies: [
                "ParleyClient", "ParleyCrypto", "ParleyMedia", "ParleyNAT", "ParleyWire", "FuzzReplay",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        // Media benchmark: per-packet seal+open against raw swift-crypto, full-duplex calls per core.
        .executableTarget(
            name: "MediaBench",
            dependencies: ["ParleyMedia", "ParleyCrypto", "ParleyWire", .product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .executableTarget(name: "NIOEcho", dependencies: [.product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio")], swiftSettings: strict),
        .executableTarget(name: "SignalBench", dependencies: ["ParleyWire", "ParleyCrypto", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOPosix", package: "swift-nio"), .product(name: "NIOConcurrencyHelpers", package: "swift-nio")], swiftSettings: strict),
        .testTarget(name: "ParleyWireTests", dependencies: ["ParleyWire"], exclude: ["SignalCorpus", "TURNCorpus", "MediaCorpus"], resources: [.copy("Corpus")]),
        .testTarget(name: "ParleyStoreTests", dependencies: ["ParleyStore", "ParleyCrypto"]),
        .testTarget(
            name: "ParleyClientTests",
            dependencies: [
                "ParleyClient", "ParleyWire", "ParleyCrypto",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .testTarget(
            name: "ParleySignalTests",
            dependencies: [
                "ParleySignal", "ParleyWire", "ParleyCrypto", "ParleyStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyCryptoTests", dependencies: ["ParleyCrypto", "ParleyWire"]),
        .testTarget(name: "ParleyMediaTests", dependencies: ["ParleyMedia"]),
        .testTarget(
            name: "ParleyRelayTests",
            dependencies: [
                "ParleyRelay", "ParleyWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ]
        ),
        .testTarget(name: "ParleyNATTests", dependencies: ["ParleyNAT", "ParleyRelay", "ParleyWire"]),
        .testTarget(
            name: "ParleyServerTests",
            dependencies: ["ParleyServer", "ParleyRelay", "ParleyNAT", "ParleySignal", "ParleyCrypto", "ParleyWire", "ParleyStore"]
        ),
    ]
)
