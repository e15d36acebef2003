// swift-tools-version: 6.1
import PackageDescription

/// One list of settings for every target: Swift 6 language mode everywhere.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let nio: [Target.Dependency] = [
    .product(name: "NIOCore", package: "swift-nio"),
    .product(name: "NIOPosix", package: "swift-nio"),
]

let package = Package(
    name: "Carteira",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "carteira-server", targets: ["carteira-server"]),
        .executable(name: "carteira", targets: ["carteira"]),
        .library(name: "CarteiraCore", targets: ["CarteiraCore"]),
        .library(name: "CarteiraProtocol", targets: ["CarteiraProtocol"]),
        .library(name: "CarteiraJournal", targets: ["CarteiraJournal"]),
        .library(name: "CarteiraServer", targets: ["CarteiraServer"]),
        .library(name: "CarteiraClient", targets: ["CarteiraClient"]),
        .library(name: "CarteiraTerminal", targets: ["CarteiraTerminal"]),
        .library(name: "CarteiraConsole", targets: ["CarteiraConsole"]),
    ],
    // `swift build --traits Postgres` adds the PostgreSQL journal
    // (docs/operations.md); a plain build neither fetches nor builds
    // postgres-nio.
    traits: [
        .trait(name: "Postgres", description: "The journal on PostgreSQL, with leaders and standbys (postgres-nio)."),
        .default(enabledTraits: []),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.5.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.1.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
    ],
    targets: [
        .target(name: "CarteiraCore", swiftSettings: swiftSettings),
        .target(name: "CarteiraProtocol", dependencies: ["CarteiraCore"], swiftSettings: swiftSettings),
        .target(
            name: "CarteiraJournal",
            dependencies: ["CarteiraCore", "CChainHash"],
            swiftSettings: swiftSettings
        ),
        // The hash chain's SHA-256 on OpenSSL's libcrypto, with no allocation
        // a line (docs/benchmarks.md, Replay).
        .systemLibrary(
            name: "CChainHash",
            providers: [.apt(["libssl-dev"])]
        ),
        .target(
            name: "CarteiraServer",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraJournal",
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CReadline",
            providers: [.apt(["libreadline-dev"])]
        ),
        // What the console and the peer client share on a terminal: the
        // readline line editor, tables, the record view, the pager, times.
        .target(name: "CarteiraTerminal", dependencies: ["CarteiraCore", "CReadline"], swiftSettings: swiftSettings),
        .target(
            name: "CarteiraConsole", dependencies: ["CarteiraCore", "CarteiraTerminal"], swiftSettings: swiftSettings),
        .target(
            name: "CarteiraClient",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol",
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        // The PostgreSQL journal, leader election and standbys: built only
        // with the `Postgres` trait (every file is inside `#if Postgres`).
        .target(
            name: "CarteiraPostgres",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraJournal", "CarteiraServer",
                .product(name: "PostgresNIO", package: "postgres-nio", condition: .when(traits: ["Postgres"])),
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "carteira-server",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraJournal", "CarteiraServer", "CarteiraConsole",
                "CarteiraTerminal",
                .target(name: "CarteiraPostgres", condition: .when(traits: ["Postgres"])),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "carteira",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraClient", "CarteiraTerminal",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        // Helpers shared by the test targets (a seeded generator, temporary
        // directories, waiting on a condition with a deadline).
        .target(name: "CarteiraTestSupport", path: "Tests/CarteiraTestSupport", swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraCoreTests", dependencies: ["CarteiraCore", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraProtocolTests", dependencies: ["CarteiraProtocol", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
        // swift-crypto's SHA-256 is the tests' own oracle for the chain,
        // independent of the journal's OpenSSL one.
        .testTarget(
            name: "CarteiraJournalTests",
            dependencies: [
                "CarteiraJournal", "CarteiraTestSupport", .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraServerTests",
            dependencies: [
                "CarteiraServer", "CarteiraProtocol", "CarteiraJournal", "CarteiraTestSupport",
                .product(name: "NIOTestUtils", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "CarteiraTerminalTests", dependencies: ["CarteiraTerminal", "CarteiraCore", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraConsoleTests",
            dependencies: ["CarteiraConsole", "CarteiraTerminal", "CarteiraCore", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraClientTests",
            dependencies: ["CarteiraClient", "CarteiraServer", "carteira", "CarteiraTestSupport"],
            swiftSettings: swiftSettings
        ),
        // Over a real PostgreSQL the tests start themselves; empty without
        // the `Postgres` trait.
        .testTarget(
            name: "CarteiraPostgresTests",
            dependencies: [
                .target(name: "CarteiraPostgres", condition: .when(traits: ["Postgres"])),
                .target(name: "CarteiraClient", condition: .when(traits: ["Postgres"])),
                .target(name: "CarteiraServer", condition: .when(traits: ["Postgres"])),
                .target(name: "CarteiraJournal", condition: .when(traits: ["Postgres"])),
                .target(name: "CarteiraCore", condition: .when(traits: ["Postgres"])),
                .target(name: "CarteiraTestSupport", condition: .when(traits: ["Postgres"])),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests", dependencies: ["CarteiraCore", "CarteiraJournal", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
        // The deterministic simulation (docs/testing.md): the real ledger,
        // sessions and journal writer, no sockets, over a faulty simulated disk.
        .testTarget(
            name: "CarteiraSimulationTests",
            dependencies: [
                "CarteiraServer", "CarteiraProtocol", "CarteiraJournal", "CarteiraCore", "CarteiraTestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
    ]
)
