public import ArgumentParser
import LoadKit

extension LoadMode: ExpressibleByArgument {}

@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira-load",
        abstract: "Drives a carteira-server on 127.0.0.1 with SEND, PING or BALANCE and reports rate and latency.",
        discussion: """
            send and balance: gets --wallets wallets (read from --wallets-file, registering the ones it lacks \
            and writing them back), logs each connection in as a random wallet, then keeps --pipeline requests \
            in flight per connection for --seconds seconds; each SEND pays R$ 0,01 to a random other wallet. \
            ping logs in as nobody. One event loop thread by default, written as plain channel handlers so \
            that the generator costs the server as little CPU as possible; --json reports its own CPU.
            """
    )

    @Option(help: ArgumentHelp("The server, 127.0.0.1:PORT (loopback only).", valueName: "host:port"))
    var server: String = "127.0.0.1:7070"

    @Option(help: "Connections; in send and balance mode each logs in as one wallet.")
    var connections: Int = 64

    @Option(help: "Seconds of load; the run then drains and stops by itself.")
    var seconds: Int = 10

    @Option(help: "Requests in flight per connection.")
    var pipeline: Int = 1

    @Option(help: "send, ping or balance.")
    var mode: LoadMode = .send

    @Option(help: ArgumentHelp("Wallets to log in as and pay (default: connections, at least 2).", valueName: "n"))
    var wallets: Int?

    @Option(
        help: ArgumentHelp(
            "Keep the wallets (name, token, key) in this file, so that runs against one server reuse them.",
            valueName: "path"))
    var walletsFile: String?

    @Flag(help: "Only register the wallets missing from --wallets-file, write it, and exit.")
    var setupOnly = false

    @Flag(
        name: .customLong("request-ids"),
        help: "Give every SEND a fresh request id (the server then also keeps it for idempotent retries).")
    var requestIDs = false

    @Option(help: "Event loop threads of the load generator.")
    var threads: Int = 1

    @Flag(help: "Print the result as one JSON object.")
    var json = false

    func validate() throws {
        guard ServerEndpoint(server) != nil else {
            throw ValidationError("--server must be 127.0.0.1:PORT or localhost:PORT: traffic stays on this machine")
        }
        guard LoadPlan.connectionLimit.contains(connections) else {
            throw ValidationError("--connections must be in \(LoadPlan.connectionLimit)")
        }
        guard LoadPlan.secondsLimit.contains(seconds) else {
            throw ValidationError("--seconds must be in \(LoadPlan.secondsLimit)")
        }
        guard LoadPlan.pipelineLimit.contains(pipeline) else {
            throw ValidationError("--pipeline must be in \(LoadPlan.pipelineLimit)")
        }
        if let wallets, !LoadPlan.walletLimit.contains(wallets) {
            throw ValidationError("--wallets must be in \(LoadPlan.walletLimit)")
        }
        guard LoadPlan.threadLimit.contains(threads) else {
            throw ValidationError("--threads must be in \(LoadPlan.threadLimit)")
        }
        if setupOnly, walletsFile == nil { throw ValidationError("--setup-only needs --wallets-file") }
    }

    func run() async throws {
        guard let endpoint = ServerEndpoint(server) else { throw ValidationError("bad --server") }
        let plan = LoadPlan(
            endpoint: endpoint, connections: connections, seconds: seconds, pipeline: pipeline, mode: mode,
            prefix: LoadPlan.freshPrefix(), wallets: wallets, walletsFile: walletsFile, requestIDs: requestIDs,
            threads: threads)
        if setupOnly {
            let ready = try await LoadRunner.prepareWallets(plan)
            print(json ? "{\"wallets\":\(ready.count)}" : "\(ready.count) wallets in \(walletsFile ?? "")")
            return
        }
        let result = try await LoadRunner.run(plan)
        print(json ? try result.json() : result.text)
    }
}
