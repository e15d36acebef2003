public import ArgumentParser
import CarteiraConsole
import CarteiraCore
import CarteiraJournal
import CarteiraServer
import CarteiraTerminal
public import Logging
import NIOCore
import NIOPosix
import ServiceLifecycle
import UnixSignals

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

/// `carteira-server --version`.
let carteiraServerVersion = "carteira-server 1.1.0 (journal format 1, wire protocol 1)"

@main
struct CarteiraServerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira-server",
        abstract: "The Carteira payment ledger server.",
        discussion: """
            With no subcommand it serves (`carteira-server serve --help` lists every serving option: \
            --host, --port, --journal, --initial-balance, --key-ttl, --key-grace, --max-clients, \
            --event-loops, --console/--no-console, --log-level). Exit status: 0 after a graceful stop; \
            1 when it cannot start (journal damaged or locked, address in use) or the journal fails while \
            serving; 64 for a bad option. `journal verify` exits 1 unless its verdict is ok.
            """,
        version: carteiraServerVersion,
        subcommands: [Serve.self, JournalCommand.self],
        defaultSubcommand: Serve.self
    )
}

struct Serve: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Replay the journal, then serve peers over TCP (the default).")

    @Option(help: "Address to listen on.")
    var host = "127.0.0.1"

    @Option(help: "TCP port; 0 picks a free one and prints it.")
    var port = 7070

    @Option(help: "Journal directory (holds ledger.journal and LOCK), or postgres://USER@HOST:PORT/DB.")
    var journal = "journal"

    @Option(
        help: ArgumentHelp(
            "With a PostgreSQL journal: the address standbys send clients to while this server leads (default: --host:--port).",
            valueName: "host:port"))
    var advertise: String?

    @Option(help: ArgumentHelp("Balance of a new machine, as a request amount (50, 50,25) or 0.", valueName: "amount"))
    var initialBalance = "100"

    @Option(help: ArgumentHelp("Seconds a payment key lives before the server rotates it.", valueName: "seconds"))
    var keyTTL: Int64 = 180

    @Option(help: ArgumentHelp("Seconds a replaced key stays payable.", valueName: "seconds"))
    var keyGrace: Int64 = 30

    @Option(help: "Most connections open at once.")
    var maxClients = 10_000

    @Option(
        help: ArgumentHelp(
            "Event-loop threads that serve connections (default: one per core but one, which the journal's thread"
                + " keeps; at least one).", valueName: "n"))
    var eventLoops = max(1, System.coreCount - 1)

    @Option(
        help: ArgumentHelp(
            "Serve Prometheus metrics at http://HOST:PORT/metrics (off by default).", valueName: "host:port"))
    var metrics: String?

    @Flag(inversion: .prefixedNo, help: "Run the admin console (default: when standard input is a terminal).")
    var console: Bool?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: Logger.Level = .info

    @Option(help: ArgumentHelp("Serve TLS only, with this PEM certificate (chain).", valueName: "file"))
    var tlsCert: String?

    @Option(help: ArgumentHelp("The PEM private key of --tls-cert.", valueName: "file"))
    var tlsKey: String?

    @Flag(help: "Allow plaintext on a non-loopback --host (tokens then cross the network in the clear).")
    var insecurePlaintext = false

    /// For benchmarks (docs/benchmarks.md): the request path before batches
    /// could run on an event loop, to measure both in one run.
    @Flag(
        help: ArgumentHelp(
            "Sync every journal batch on the journal thread, never on an event loop (for benchmarks).",
            visibility: .hidden))
    var journalThreadOnly = false

    func validate() throws {
        guard initialBalanceCentavos != nil else {
            throw ValidationError("--initial-balance must be an amount like 100, 50,25 or 0")
        }
        guard (1...31_536_000).contains(keyTTL) else {
            throw ValidationError("--key-ttl must be 1 to 31536000 seconds")
        }
        guard (0...31_536_000).contains(keyGrace) else {
            throw ValidationError("--key-grace must be 0 to 31536000 seconds")
        }
        guard (0...65535).contains(port) else { throw ValidationError("--port must be 0 to 65535") }
        guard maxClients > 0 else { throw ValidationError("--max-clients must be at least 1") }
        guard (1...256).contains(eventLoops) else { throw ValidationError("--event-loops must be 1 to 256") }
        guard (tlsCert == nil) == (tlsKey == nil) else {
            throw ValidationError("--tls-cert and --tls-key go together: give both, or neither")
        }
        if let metrics, Self.hostAndPort(metrics) == nil {
            throw ValidationError("--metrics must be HOST:PORT, like 127.0.0.1:9470 or [::1]:9470")
        }
    }

    /// `HOST:PORT` or `[IPV6]:PORT`, the port 0 to 65535.
    static func hostAndPort(_ text: String) -> (host: String, port: Int)? {
        guard let colon = text.lastIndex(of: ":") else { return nil }
        var host = text[..<colon]
        if host.hasPrefix("["), host.hasSuffix("]") { host = host.dropFirst().dropLast() }
        guard !host.isEmpty, let port = Int(text[text.index(after: colon)...]), (0...65535).contains(port) else {
            return nil
        }
        return (String(host), port)
    }

    /// A request amount, or zero written as one (`0`, `0,00`).
    private var initialBalanceCentavos: Centavos? {
        if let amount = Centavos(amount: initialBalance) { return amount }
        // Zero has the same form as an amount: 1-12 zeros, then optionally
        // `,` or `.` and 1-2 zeros.
        let parts = initialBalance.split(
            omittingEmptySubsequences: false, whereSeparator: { $0 == "," || $0 == "." })
        let zeros = { (part: Substring, most: Int) in (1...most).contains(part.count) && part.allSatisfy { $0 == "0" } }
        guard parts.count <= 2, zeros(parts[0], 12), parts.count == 1 || zeros(parts[1], 2) else { return nil }
        return .zero
    }

    func run() async throws {
        let level = logLevel
        LoggingSystem.bootstrap { label in CarteiraLogHandler(label: label, logLevel: level) }
        let logger = Logger(label: "carteira-server")
        var configuration = ServerConfiguration(
            host: host, port: port, journalDirectory: journal,
            initialBalance: initialBalanceCentavos ?? Centavos(10_000),
            keyTTLSeconds: keyTTL, keyGraceSeconds: keyGrace, maximumConnections: maxClients,
            metrics: metrics.flatMap(Self.hostAndPort))
        if let tlsCert, let tlsKey {
            configuration.tls = ServerTLS(certificatePath: tlsCert, keyPath: tlsKey)
        }
        configuration.insecurePlaintext = insecurePlaintext
        if PostgresJournal.isURL(journal) {
            return try await PostgresJournal.serve(
                url: journal, advertise: advertise, configuration: configuration, eventLoops: eventLoops, logger: logger
            )
        }
        let server: CarteiraServer
        do {
            let loops = MultiThreadedEventLoopGroup(numberOfThreads: eventLoops)
            let threadOnly = journalThreadOnly
            server = try await CarteiraServer.start(
                configuration: configuration, logger: logger, eventLoopGroup: loops,
                storage: threadOnly ? { try PosixJournalStorage(path: $0, syncsOnCaller: false) } : nil)
        } catch {
            printError("carteira-server: \(error)")
            throw ExitCode(1)
        }
        let address = "\(host):\(server.port)"
        let onTerminal = Terminal.isTerminal(fd: STDIN_FILENO)
        let consoleOn = self.console ?? onTerminal
        // While the console owns the terminal, Ctrl-C clears its line and
        // must not stop the server.
        let signals = await GracefulShutdownSignals(consoleOn && onTerminal ? [.sigterm] : [.sigterm, .sigint])
        // With a console, standard output carries only its commands' output
        // (`printf 'machines --format json\n' | carteira-server --console | jq .`).
        let listening =
            "carteira-server listening on \(address)\(configuration.tls == nil ? "" : " (TLS)") (journal \(server.journalPath))"
        if consoleOn { printError(listening) } else { printOut(listening) }

        let console =
            consoleOn ? ConsoleRunner(backend: ServerConsoleBackend(server: server), interactive: onTerminal) : nil
        if let console {
            if onTerminal {
                // Log lines are printed through readline, above the prompt.
                LogDestination.shared.printAbovePrompt { console.printAbove($0) }
            }
            console.printAbove(ConsoleRunner.banner(listeningOn: address))
        }
        let group = ServiceGroup(
            configuration: .init(
                services: [.init(service: server, successTerminationBehavior: .gracefullyShutdownGroup)],
                logger: logger))
        do {
            try await withThrowingTaskGroup(of: Bool.self) { tasks in
                tasks.addTask {
                    try await signals.run(group)
                    return true
                }
                if let console {
                    tasks.addTask {
                        switch await console.run() {
                        case let .failed(reason):
                            logger.warning("Console stopped", metadata: ["console.reason": "\(reason)"])
                        case .endOfInput:
                            logger.info("Console input ended; still serving")
                        case .shutdown, .cancelled:
                            break
                        }
                        return false
                    }
                }
                // The server decides when everything ends; the console
                // ending on its own (end of a piped input) leaves it serving.
                while let serverEnded = try await tasks.next() {
                    if serverEnded { tasks.cancelAll() }
                }
            }
        } catch {
            LogDestination.shared.printAbovePrompt(with: nil)
            printError("carteira-server: \(error)")
            throw ExitCode(1)
        }
        LogDestination.shared.printAbovePrompt(with: nil)
    }
}

extension Logger.Level: @retroactive ExpressibleByArgument {}

/// Writes a line straight to standard output, unbuffered, so a script or
/// test reading a pipe sees it at once.
func printOut(_ message: String) {
    writeAll(STDOUT_FILENO, message + "\n")
}

func printError(_ message: String) {
    writeAll(STDERR_FILENO, message + "\n")
}
