import ArgumentParser
import CarteiraClient
import CarteiraCore
import Foundation

/// The options every subcommand shares (CLIENT.md, Identity).
struct SharedOptions: ParsableArguments {
    @Option(
        help:
            "The server as HOST:PORT, or several sharing one journal as A:PORT,B:PORT (default: $CARTEIRA_SERVER, else 127.0.0.1:7070)."
    )
    var server: String?

    @Option(help: "This machine's name: 1-64 of A-Z a-z 0-9 . _ - (default: the host name).")
    var machine: String?

    @Option(name: .customLong("state-dir"), help: "Where tokens are saved (default: $CARTEIRA_HOME, else ~/.carteira).")
    var stateDirectory: String?

    @Flag(help: "Print one JSON object instead of text (errors too, on standard error).")
    var json = false

    @Option(name: .customLong("connect-timeout"), help: "Seconds to keep trying to reach the server.")
    var connectTimeoutSeconds: Double = 5

    @Option(name: .customLong("timeout"), help: "Seconds to wait for each answer before giving up (exit 3).")
    var timeoutSeconds: Double = 10

    @Flag(help: "Speak TLS and check the server's certificate (system trust, or --tls-ca).")
    var tls = false

    @Option(
        name: .customLong("tls-ca"),
        help: ArgumentHelp("Trust only the CA certificate(s) in this PEM file (implies --tls).", valueName: "file"))
    var tlsCA: String?

    var environment: [String: String] { ProcessInfo.processInfo.environment }

    /// `--state-dir`, else `$CARTEIRA_HOME`, else `~/.carteira`.
    var resolvedStateDirectory: String {
        stateDirectory ?? TokenStore.defaultDirectory(environment: environment)
    }

    func validate() throws {
        _ = try serverAddresses()
        _ = try machineName()
        guard connectTimeoutSeconds > 0, connectTimeoutSeconds <= 3600 else {
            throw ValidationError("--connect-timeout must be more than 0 and at most 3600 seconds")
        }
        guard timeoutSeconds > 0, timeoutSeconds <= 3600 else {
            throw ValidationError("--timeout must be more than 0 and at most 3600 seconds")
        }
        if tls || tlsCA != nil {
            do {
                _ = try ClientTLS(caFile: tlsCA)
            } catch {
                throw ValidationError(error.message)
            }
        }
    }

    /// The first server of `--server` or `$CARTEIRA_SERVER`: tokens are saved under it.
    func serverAddress() throws -> ServerAddress {
        let addresses = try serverAddresses()
        guard let first = addresses.first else { return .standard }
        return first
    }

    /// `--server A:PORT[,B:PORT...]`, else `$CARTEIRA_SERVER` in the same
    /// form, else 127.0.0.1:7070: tried in this order.
    func serverAddresses() throws -> [ServerAddress] {
        let (text, source) =
            if let server { (server, "--server") } else { (environment["CARTEIRA_SERVER"] ?? "", "$CARTEIRA_SERVER") }
        if source == "$CARTEIRA_SERVER", text.isEmpty { return [.standard] }
        let parts = text.split(separator: ",", omittingEmptySubsequences: false)
        guard parts.count <= 16 else { throw ValidationError("\(source) may list at most 16 servers") }
        var addresses: [ServerAddress] = []
        for part in parts {
            guard let address = ServerAddress(part.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError(
                    "\(source) must be HOST:PORT or A:PORT,B:PORT, like 127.0.0.1:7070, got \(text)")
            }
            if !addresses.contains(address) { addresses.append(address) }
        }
        return addresses
    }

    func machineName() throws -> MachineName {
        if let machine {
            guard let name = MachineName(machine.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("--machine must be 1-64 of A-Z a-z 0-9 . _ -, got \(machine)")
            }
            return name
        }
        return defaultMachineName(hostName: ProcessInfo.processInfo.hostName)
    }

    func configuration(mayRegister: Bool, catchUp: Bool = false) throws -> PeerSession.Configuration {
        var configuration = PeerSession.Configuration(
            server: try serverAddress(), machine: try machineName(),
            tokens: TokenStore(directory: resolvedStateDirectory),
            mayRegister: mayRegister,
            connectTimeout: .milliseconds(Int64(connectTimeoutSeconds * 1000)))
        configuration.requestTimeout = .milliseconds(Int64(timeoutSeconds * 1000))
        configuration.catchUp = catchUp
        configuration.alternates = Array(try serverAddresses().dropFirst())
        if tls || tlsCA != nil { configuration.tls = try ClientTLS(caFile: tlsCA) }
        return configuration
    }

    /// Runs `body` with a logged-in session; failures are reported (text or
    /// JSON on standard error) and become the exit status CLIENT.md gives.
    /// `payment` names the request id of a payment the command is about to
    /// send, so that failing to log in says it was not sent and how to retry.
    func withSession<Result: Sendable>(
        mayRegister: Bool = false, catchUp: Bool = false, payment: RequestID? = nil,
        _ body: (PeerSession) async throws -> Result
    ) async throws -> Result {
        do {
            return try await PeerSession.withSession(try configuration(mayRegister: mayRegister, catchUp: catchUp)) {
                session in
                do {
                    try await session.loggedIn()
                } catch let error as ClientError where error.isReachability {
                    guard let payment else { throw error }
                    throw ClientError.paymentNotSent(payment, because: error.message)
                }
                return try await body(session)
            }
        } catch let error as ClientError {
            Output(json: json).fail(code: error.code, message: humanMessage(error))
            throw ExitCode(error.isReachability ? 3 : 1)
        } catch let error as TokenStore.Failure {
            Output(json: json).fail(code: "token_store", message: sentence(error.description))
            throw ExitCode(1)
        }
    }
}

/// The host name cut to the characters a machine name allows (the first
/// label only, so `pc1.example.org` is `pc1`).
func defaultMachineName(hostName: String) -> MachineName {
    let label = hostName.split(separator: ".").first.map(String.init) ?? ""
    let cleaned = String(
        label.map { $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "_" || $0 == "-") ? $0 : "-" }.prefix(64))
    if let name = MachineName(cleaned) { return name }
    guard let fallback = MachineName("peer") else { preconditionFailure("peer is a valid machine name") }
    return fallback
}

/// Capital first letter and a full stop: `balance is low` → `Balance is low.`
func sentence(_ text: String) -> String {
    var text = text.trimmingCharacters(in: .whitespaces)
    guard let first = text.first else { return text }
    text = first.uppercased() + text.dropFirst()
    if let last = text.last, !".!?".contains(last) { text += "." }
    return text
}

/// `text` ending in a full stop, unless it already ends a sentence.
func fullStop(_ text: String) -> String {
    text.last.map { ".?!".contains($0) } == true ? text : text + "."
}

/// A refusal or failure as a sentence for people; known codes get words of
/// their own, the server's message is kept where it carries figures.
func humanMessage(_ error: ClientError) -> String {
    guard case let .refused(code, message) = error else { return fullStop(error.message) }
    switch ErrorCode(rawValue: code) {
    case .unknownKey: return "No machine has that key. Check it and try again."
    case .expiredKey: return "That key has expired (keys rotate every few minutes). Ask the payee for a fresh one."
    case .selfTransfer: return "That is your own key: a machine cannot pay itself."
    case .insufficientFunds:
        return "Not enough money: " + fullStop(message.prefix(1).lowercased() + message.dropFirst())
    case .rateLimited: return "Too many wrong keys or tokens on this connection; wait a minute and try again."
    case .requestIDReused:
        return
            "That request id was already used for a different payment (another key or amount); use a fresh --request-id."
    case .unavailable: return "The server is unavailable (shutting down or cannot write its journal); nothing was done."
    default: return sentence(message)
    }
}

/// An amount as typed by a person, trimmed, with a message that says what
/// is wrong with it.
func parseAmount(_ raw: String) throws -> Centavos {
    let text = raw.trimmingCharacters(in: .whitespaces)
    if let amount = Centavos(amount: text) { return amount }
    throw ValidationError(amountProblem(text))
}

/// Why `text` is not an amount, for people.
func amountProblem(_ text: String) -> String {
    let example = "like 50, 50,5 or 50,25"
    if text.isEmpty { return "the amount is missing: write reais \(example)" }
    if text.hasPrefix("-") {
        return "\(text) is a negative amount: the amount must be reais greater than zero, \(example)"
    }
    if text.hasPrefix("+") { return "write the amount without a sign, \(example)" }
    let separators = text.filter { $0 == "," || $0 == "." }
    let groups = text.split(whereSeparator: { $0 == "," || $0 == "." })
    if separators.count > 1
        || (separators.count == 1 && groups.count == 2 && groups[1].count == 3 && groups[1].allSatisfy(\.isNumber))
    {
        return "no thousands separator, please: write 1234,56 rather than 1.234,56 (got \(text))"
    }
    if text.allSatisfy({ $0.isNumber || $0 == "," || $0 == "." }), !text.contains(where: { ("1"..."9").contains($0) }) {
        return "the amount must be greater than zero (got \(text))"
    }
    if let fraction = groups.dropFirst().first, separators.count == 1, fraction.count > 2 {
        return "centavos take at most two digits: write 12,50 (got \(text))"
    }
    if let whole = groups.first, whole.count > 12, whole.allSatisfy(\.isNumber) {
        return "the amount is too large: at most 12 digits of reais (got \(text))"
    }
    return "the amount must be reais greater than zero, \(example) (got \(text))"
}

/// A payment key as typed or pasted, trimmed.
func parsePaymentKey(_ raw: String) throws -> PaymentKey {
    let text = raw.trimmingCharacters(in: .whitespaces)
    guard let key = PaymentKey(text) else {
        throw ValidationError("a payment key is a UUID like 7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8, got \(text)")
    }
    return key
}
