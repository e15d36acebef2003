import ArgumentParser
import CarteiraClient
import CarteiraCore
import Foundation

/// The options every subcommand shares (CLIENT.md, Identity).
struct SharedOptions: ParsableArguments {
    @Option(help: "The server as HOST:PORT (default: $CARTEIRA_SERVER, else 127.0.0.1:7070).")
    var server: String?

    @Option(help: "This machine's name: 1-64 of A-Z a-z 0-9 . _ - (default: the host name).")
    var machine: String?

    @Option(name: .customLong("state-dir"), help: "Where tokens are saved (default: $CARTEIRA_HOME, else ~/.carteira).")
    var stateDirectory: String?

    @Flag(help: "Print one JSON object instead of text.")
    var json = false

    @Option(name: .customLong("connect-timeout"), help: "Seconds to keep trying to reach the server.")
    var connectTimeoutSeconds: Double = 5

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `--state-dir`, else `$CARTEIRA_HOME`, else `~/.carteira`.
    var resolvedStateDirectory: String {
        stateDirectory ?? TokenStore.defaultDirectory(environment: environment)
    }

    func validate() throws {
        _ = try serverAddress()
        _ = try machineName()
        guard connectTimeoutSeconds > 0, connectTimeoutSeconds <= 3600 else {
            throw ValidationError("--connect-timeout must be more than 0 and at most 3600 seconds")
        }
    }

    func serverAddress() throws -> ServerAddress {
        if let server {
            guard let address = ServerAddress(server) else { throw ValidationError("--server must be HOST:PORT, got \(server)") }
            return address
        }
        guard let address = ServerAddress.fromEnvironment(environment) else {
            throw ValidationError("$CARTEIRA_SERVER must be HOST:PORT")
        }
        return address
    }

    func machineName() throws -> MachineName {
        if let machine {
            guard let name = MachineName(machine) else {
                throw ValidationError("--machine must be 1-64 of A-Z a-z 0-9 . _ -, got \(machine)")
            }
            return name
        }
        return defaultMachineName(hostName: ProcessInfo.processInfo.hostName)
    }

    func configuration(mayRegister: Bool) throws -> PeerSession.Configuration {
        PeerSession.Configuration(
            server: try serverAddress(), machine: try machineName(),
            tokens: TokenStore(directory: resolvedStateDirectory),
            mayRegister: mayRegister,
            connectTimeout: .milliseconds(Int64(connectTimeoutSeconds * 1000)))
    }

    /// Runs `body` with a logged-in session; failures are reported (text or
    /// JSON on standard error) and become the exit status CLIENT.md gives.
    func withSession<Result: Sendable>(
        mayRegister: Bool = false,
        _ body: (PeerSession) async throws -> Result
    ) async throws -> Result {
        do {
            return try await PeerSession.withSession(try configuration(mayRegister: mayRegister)) { session in
                try await session.loggedIn()
                return try await body(session)
            }
        } catch let error as ClientError {
            Output(json: json).fail(code: error.code, message: error.message)
            switch error {
            case .cannotConnect, .paymentOutcomeUnknown: throw ExitCode(3)
            default: throw ExitCode(1)
            }
        } catch let error as TokenStore.Failure {
            Output(json: json).fail(code: "token_store", message: error.description)
            throw ExitCode(1)
        }
    }
}

/// The host name cut to the characters a machine name allows (the first
/// label only, so `pc1.example.org` is `pc1`).
func defaultMachineName(hostName: String) -> MachineName {
    let label = hostName.split(separator: ".").first.map(String.init) ?? ""
    let cleaned = String(label.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") ? $0 : "-" }.prefix(64))
    if let name = MachineName(cleaned) { return name }
    guard let fallback = MachineName("peer") else { preconditionFailure("peer is a valid machine name") }
    return fallback
}
