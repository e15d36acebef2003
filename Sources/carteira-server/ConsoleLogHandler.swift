import CarteiraCore
import Logging

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// Where log lines go: standard error, or, while the console owns the
/// terminal, above its prompt so they never garble the line being typed.
final class LogDestination: Sendable {
    static let shared = LogDestination()

    private let aboveThePrompt = Locked<(@Sendable (String) -> Void)?>(nil)

    func printAbovePrompt(with printer: (@Sendable (String) -> Void)?) {
        aboveThePrompt.withLock { $0 = printer }
    }

    func write(_ line: String) {
        if let printer = aboveThePrompt.withLock({ $0 }) {
            printer(line)
        } else {
            printError(line)
        }
    }
}

/// A plain text log handler (`2026-11-26T19:22:09Z info carteira-server: key=value [Module] message`)
/// that writes through `LogDestination`.
struct CarteiraLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let provided = metadataProvider?.get() { merged.merge(provided) { $1 } }
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        let fields = merged.sorted { $0.key < $1.key }.map { "\($0.key)=\($0.value)" }.joined(separator: " ")
        let prefix = "\(timestamp()) \(event.level) \(label):"
        LogDestination.shared.write(
            [prefix, fields, "[\(event.source)]", "\(event.message)"].filter { !$0.isEmpty }.joined(separator: " "))
    }

    private func timestamp() -> String {
        var now = time(nil)
        var parts = tm()
        gmtime_r(&now, &parts)
        var buffer = [CChar](repeating: 0, count: 32)
        let count = strftime(&buffer, buffer.count, "%Y-%m-%dT%H:%M:%SZ", &parts)
        return String(decoding: buffer.prefix(count).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}
