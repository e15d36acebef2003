import CarteiraCore
import Foundation

/// A machine the load generator can log in as and pay.
public struct Wallet: Sendable, Hashable {
    public var name: String
    public var token: String
    /// The payment key last seen (at `REGISTER`, or refreshed by `LOGIN`).
    public var key: String

    public init(name: String, token: String, key: String) {
        self.name = name
        self.token = token
        self.key = key
    }
}

public enum WalletFileError: Error, CustomStringConvertible {
    case malformed(path: String, line: Int)

    public var description: String {
        switch self {
        case let .malformed(path, line): "\(path):\(line): expected `name token key`"
        }
    }
}

/// The wallets file: one wallet a line, `name token key`, separated by one
/// space. It holds the tokens, so it is written with mode 0600.
public enum WalletFile {
    public static func load(_ path: String) throws -> [Wallet] {
        guard FileManager.default.fileExists(atPath: path) else { return [] }
        let text = try String(contentsOfFile: path, encoding: .utf8)
        var wallets: [Wallet] = []
        for (number, line) in text.split(separator: "\n", omittingEmptySubsequences: true).enumerated() {
            let fields = line.split(separator: " ")
            guard fields.count == 3, MachineName(fields[0]) != nil, Token(fields[1]) != nil,
                PaymentKey(fields[2]) != nil
            else { throw WalletFileError.malformed(path: path, line: number + 1) }
            wallets.append(Wallet(name: String(fields[0]), token: String(fields[1]), key: String(fields[2])))
        }
        return wallets
    }

    public static func save(_ wallets: [Wallet], to path: String) throws {
        let text = wallets.map { "\($0.name) \($0.token) \($0.key)\n" }.joined()
        let temporary = path + ".tmp"
        guard
            FileManager.default.createFile(
                atPath: temporary, contents: Data(text.utf8), attributes: [.posixPermissions: 0o600])
        else { throw CocoaError(.fileWriteUnknown, userInfo: [NSFilePathErrorKey: temporary]) }
        if FileManager.default.fileExists(atPath: path) { try FileManager.default.removeItem(atPath: path) }
        try FileManager.default.moveItem(atPath: temporary, toPath: path)
    }
}
