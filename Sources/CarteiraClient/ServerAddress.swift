/// Where the Carteira server listens: `HOST:PORT` (an IPv6 host in brackets,
/// `[::1]:7070`).
public struct ServerAddress: Sendable, Hashable, CustomStringConvertible {
    public var host: String
    public var port: Int

    public static let standard = ServerAddress(host: "127.0.0.1", port: 7070)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
    }

    /// Parses `HOST:PORT`; the port must be 1-65535 and the host non-empty.
    public init?(_ text: some StringProtocol) {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        let portText = text[text.index(after: colon)...]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, host.utf8.count <= 253,
            !host.contains(where: { $0 == "[" || $0 == "]" || $0.isWhitespace }),
            portText.utf8.count <= 5, portText.utf8.allSatisfy({ $0 >= 48 && $0 <= 57 }),
            let port = Int(portText), (1...65535).contains(port)
        else { return nil }
        self.init(host: String(host), port: port)
    }

    /// `$CARTEIRA_SERVER` when set (and well formed), else `127.0.0.1:7070`.
    public static func fromEnvironment(_ environment: [String: String]) -> ServerAddress? {
        guard let text = environment["CARTEIRA_SERVER"], !text.isEmpty else { return .standard }
        return ServerAddress(text)
    }

    public var description: String { host.contains(":") ? "[\(host)]:\(port)" : "\(host):\(port)" }
}
