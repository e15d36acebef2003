// swift-tools-version: 6.1
import PackageDescription

/// A nested package so that the root package's `swift build` and `swift test`
/// never build the load tools; it uses the root package's modules by path.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// SwiftPM names a path dependency after its directory, so the root package
/// is `main` in /work/main and something else in another checkout.
let carteira = Context.packageDirectory.split(separator: "/").dropLast(2).last.map { $0.lowercased() } ?? "carteira"

let package = Package(
    name: "CarteiraLoad",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "carteira-load", targets: ["carteira-load"]),
        .executable(name: "carteira-replay-bench", targets: ["carteira-replay-bench"]),
    ],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.81.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.6.0"),
    ],
    targets: [
        .target(
            name: "LoadKit",
            dependencies: [
                .product(name: "CarteiraCore", package: carteira),
                .product(name: "CarteiraProtocol", package: carteira),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "carteira-load",
            dependencies: [
                "LoadKit",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "carteira-replay-bench",
            dependencies: [
                .product(name: "CarteiraCore", package: carteira),
                .product(name: "CarteiraJournal", package: carteira),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "LoadKitTests",
            dependencies: [
                "LoadKit",
                // The runs are tested against a real server on port 0.
                .product(name: "CarteiraServer", package: carteira),
                .product(name: "CarteiraJournal", package: carteira),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
