// swift-tools-version: 6.1
import PackageDescription

/// The libFuzzer targets (issue 9): one executable per parser, built only by
/// `tools/fuzz` and `tools/fuzz-ci` with `-sanitize=fuzzer,address`, never by
/// the root package's `swift build` or `swift test`. Each target uses the
/// parsers' public API through the root package, by path.
let swiftSettings: [SwiftSetting] = [
    .swiftLanguageMode(.v6),
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

/// SwiftPM names a path dependency after its directory, so the root package
/// is `main` in /work/main and something else in another checkout.
let carteira = Context.packageDirectory.split(separator: "/").dropLast(1).last.map { $0.lowercased() } ?? "carteira"

func fuzzTarget(_ name: String, _ products: [String], extra: [Target.Dependency] = []) -> Target {
    .executableTarget(
        name: name,
        dependencies: ["FuzzSupport"] + products.map { .product(name: $0, package: carteira) } + extra,
        swiftSettings: swiftSettings)
}

let package = Package(
    name: "CarteiraFuzz",
    platforms: [.macOS(.v15)],
    dependencies: [
        .package(path: ".."),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
    ],
    targets: [
        .target(name: "CLibFuzzer"),
        .target(name: "FuzzSupport", dependencies: ["CLibFuzzer"], swiftSettings: swiftSettings),
        fuzzTarget("fuzz-request", ["CarteiraCore", "CarteiraProtocol"]),
        fuzzTarget("fuzz-amount", ["CarteiraCore", "CarteiraProtocol"]),
        fuzzTarget(
            "fuzz-journal-line", ["CarteiraCore", "CarteiraJournal"],
            extra: [.product(name: "Crypto", package: "swift-crypto")]),
        fuzzTarget(
            "fuzz-journal-file", ["CarteiraCore", "CarteiraJournal"],
            extra: [.product(name: "Crypto", package: "swift-crypto")]),
        fuzzTarget("fuzz-console", ["CarteiraCore", "CarteiraConsole", "CarteiraTerminal"]),
        fuzzTarget("fuzz-server-line", ["CarteiraCore", "CarteiraProtocol"]),
    ]
)
