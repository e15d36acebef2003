public import ArgumentParser
import LoadKit

extension LoadMode: ExpressibleByArgument {}

@main
struct LoadCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira-load",
        abstract: "Drives a carteira-server on 127.0.0.1 with SEND, PING or BALANCE and reports rate and latency.",
        discussion: """
            Each connection registers one machine (names start with a prefix unique to the run), then pays \
            the next machine in a ring R$ 0,01 per SEND with a fresh request id, keeping --pipeline requests \
            in flight for --seconds seconds. PING runs register nothing.
            """
    )

    @Option(help: ArgumentHelp("The server, 127.0.0.1:PORT (loopback only).", valueName: "host:port"))
    var server: String = "127.0.0.1:7070"

    @Option(help: "Connections, one machine each.")
    var connections: Int = 64

    @Option(help: "Seconds of load; the run then drains and stops by itself.")
    var seconds: Int = 10

    @Option(help: "Requests in flight per connection.")
    var pipeline: Int = 1

    @Option(help: "send, ping or balance.")
    var mode: LoadMode = .send

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
    }

    func run() async throws {
        guard let endpoint = ServerEndpoint(server) else { throw ValidationError("bad --server") }
        let plan = LoadPlan(
            endpoint: endpoint, connections: connections, seconds: seconds, pipeline: pipeline, mode: mode,
            prefix: LoadPlan.freshPrefix())
        let result = try await LoadRunner.run(plan)
        print(json ? try result.json() : result.text)
    }
}
