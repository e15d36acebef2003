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
        .library(name: "CarteiraConsole", targets: ["CarteiraConsole"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-nio-extras.git", from: "1.24.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.6.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
    ],
    targets: [
        .target(name: "CarteiraCore", swiftSettings: swiftSettings),
        .target(name: "CarteiraProtocol", dependencies: ["CarteiraCore"], swiftSettings: swiftSettings),
        .target(
            name: "CarteiraJournal",
            dependencies: [
                "CarteiraCore",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "CarteiraServer",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraJournal",
                .product(name: "NIOExtras", package: "swift-nio-extras"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ] + nio,
            swiftSettings: swiftSettings
        ),
        .systemLibrary(
            name: "CReadline",
            providers: [.apt(["libreadline-dev"])]
        ),
        .target(name: "CarteiraConsole", dependencies: ["CarteiraCore", "CReadline"], swiftSettings: swiftSettings),
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
        .executableTarget(
            name: "carteira-server",
            dependencies: [
                "CarteiraCore", "CarteiraProtocol", "CarteiraJournal", "CarteiraServer", "CarteiraConsole",
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
                "CarteiraCore", "CarteiraProtocol", "CarteiraClient", "CarteiraConsole",
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
        .testTarget(name: "CarteiraProtocolTests", dependencies: ["CarteiraProtocol"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraJournalTests", dependencies: ["CarteiraJournal", "CarteiraTestSupport"],
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
        .testTarget(name: "CarteiraConsoleTests", dependencies: ["CarteiraConsole"], swiftSettings: swiftSettings),
        .testTarget(
            name: "CarteiraClientTests",
            dependencies: ["CarteiraClient", "CarteiraServer", "carteira", "CarteiraTestSupport"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "EndToEndTests", dependencies: ["CarteiraJournal", "CarteiraTestSupport"],
            swiftSettings: swiftSettings),
    ]
)
