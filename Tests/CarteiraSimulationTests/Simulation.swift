import CarteiraCore
import CarteiraProtocol
import Foundation
import Logging
import NIOCore
import NIOEmbedded
import Synchronization

@testable import CarteiraJournal
@testable import CarteiraServer

/// The simulated wall clock: it moves only when the harness says.
final class SimClock: Sendable {
    private let milliseconds: Atomic<Int64>

    init(start: Int64) {
        milliseconds = Atomic(start)
    }

    var now: Timestamp { Timestamp(milliseconds: milliseconds.load(ordering: .relaxed)) }

    func advance(by delta: Int64) { milliseconds.add(delta, ordering: .relaxed) }

    var source: @Sendable () -> Timestamp { { [self] in now } }
}

/// One life of the server process: the real journal (opened and replayed
/// by `Journal.open` through the simulated disk, its writer stepped by the
/// harness), the real ledger owner and the real connection handlers'
/// shared core. Only the sockets and the writer's thread are missing.
struct SimServer {
    let journal: OpenedJournal
    let service: LedgerService
    let core: ServerCore
    var failedAtStep: Int?
    var shuttingDown = false
}

/// What one run did, added up over many.
struct RunFigures {
    var seeds = 0
    var steps = 0
    var answersChecked = 0
    var transfersAcknowledged = 0
    var replaysChecked = 0
    var connectionsRefused = 0
    var faults = FaultCounts()

    static func + (lhs: RunFigures, rhs: RunFigures) -> RunFigures {
        RunFigures(
            seeds: lhs.seeds + rhs.seeds, steps: lhs.steps + rhs.steps,
            answersChecked: lhs.answersChecked + rhs.answersChecked,
            transfersAcknowledged: lhs.transfersAcknowledged + rhs.transfersAcknowledged,
            replaysChecked: lhs.replaysChecked + rhs.replaysChecked,
            connectionsRefused: lhs.connectionsRefused + rhs.connectionsRefused, faults: lhs.faults + rhs.faults)
    }
}

/// A failed run: the seed and step, what broke, and the last steps taken.
struct SimulationFailure: Error, CustomStringConvertible {
    var seed: UInt64
    var step: Int
    var violation: Violation
    var trace: [String]

    var description: String {
        """
        simulation seed \(seed) failed at step \(step): \(violation)
        replay: CARTEIRA_SIM_SEED=\(seed) swift test --skip-build --filter CarteiraSimulationTests
        last steps:
        \(trace.joined(separator: "\n"))
        """
    }
}

/// The deterministic simulation (in the spirit of TigerBeetle's VOPR): one
/// seed decides every client's line, every clock step, every writer batch
/// and every disk fault; after each step the harness checks what clients
/// saw and what the disk holds against `ReferenceModel`.
final class Simulation {
    let seed: UInt64
    let steps: Int
    let random: SimRandom
    let clock: SimClock
    let disk: SimDisk
    let directory: String
    let policy: KeyPolicy
    let initialBalance: Int64 = 10_000
    let maximumConnections: Int
    let maximumQueued: Int
    var model: ReferenceModel
    var server: SimServer?
    var clients: [SimClient] = []
    /// Names whose key some client has seen, in the order first seen, with
    /// the last key seen: where honest peers find whom to pay.
    var board: [(name: String, key: String)] = []
    /// The last server's ledger in memory when it died.
    var lastLedger: Ledger?
    var step = 0
    var figures = RunFigures()
    var trace: [String] = []
    /// The server is down until this step (a failed start is retried later).
    var downUntil = 0
    /// Every event loop of this server life: the server's core keeps them
    /// (one per connection it ever had) until it dies, and an embedded loop
    /// must be shut down before it is freed.
    var lifeLoops: [EmbeddedEventLoop] = []
    private let logger = Logger(label: "carteira-sim") { _ in SwiftLogNoOpLogHandler() }

    init(seed: UInt64, steps: Int, directory: String) {
        self.seed = seed
        self.steps = steps
        self.directory = directory
        let random = SimRandom(seed: seed)
        self.random = random
        clock = SimClock(start: 1_800_000_000_000 + Int64(random.below(1_000_000)))
        disk = SimDisk(random: random, rates: FaultRates.draw(random))
        policy = KeyPolicy(ttlSeconds: Int64(random.range(5...60)), graceSeconds: Int64(random.range(0...10)))
        maximumConnections = random.range(4...24)
        maximumQueued = random.range(2...64)
        model = ReferenceModel(initialBalance: initialBalance)
        let honest = random.range(2...8)
        let hostile = random.range(0...4)
        for index in 0..<(honest + hostile) { clients.append(SimClient(index: index, hostile: index >= honest)) }
    }

    func note(_ text: String) {
        trace.append("[\(step)] \(text)")
        if trace.count > 60 { trace.removeFirst(trace.count - 60) }
    }

    func fail(_ message: String) -> SimulationFailure {
        SimulationFailure(seed: seed, step: step, violation: Violation(message), trace: trace)
    }

    /// Runs every step, then a last clean restart and a full verify.
    func run() throws(SimulationFailure) -> RunFigures {
        do throws(Violation) {
            try startServer()
            while step < steps {
                step += 1
                try oneStep()
                try checkEverything()
            }
            try finish()
        } catch {
            throw SimulationFailure(seed: seed, step: step, violation: error, trace: trace)
        }
        figures.seeds = 1
        figures.steps = steps
        figures.faults = disk.counts
        return figures
    }

    // MARK: Steps

    private func oneStep() throws(Violation) {
        let rates = disk.state.withLock { $0.rates }
        if server != nil, random.chance(rates.powerLoss) {
            note("power loss")
            crash(power: true)
            return
        }
        if server != nil, random.chance(rates.processCrash) {
            note("process crash")
            crash(power: false)
            return
        }
        if var running = server {
            // A server whose journal failed exits non-zero soon after.
            if let failed = running.failedAtStep, step - failed > random.range(0...6) {
                note("the server exits after its journal failed")
                crash(power: false)
                return
            }
            if running.shuttingDown {
                try drainShutdown()
                return
            }
            if random.below(400) == 0 {
                note("graceful shutdown begins")
                running.shuttingDown = true
                server = running
                running.service.beginShutdown()
                runLoops()
                try collect()
                return
            }
        } else {
            if step >= downUntil { try startServer() }
            return
        }
        switch random.below(100) {
        case 0..<55:
            if let client = random.pick(clients) { try act(client) }
        case 55..<80:
            try writerStep()
        case 80..<90:
            advanceClock(by: Int64(random.range(1...300)))
        case 90..<93:
            advanceClock(by: Int64(random.range(1_000...40_000)))
        case 93..<97:
            rotationTick()
        default:
            toggleStall()
        }
        runLoops()
        try collect()
    }

    private func writerStep() throws(Violation) {
        guard var running = server else { return }
        let turn = running.journal.writer.step()
        if disk.takeCrashRequest() {
            note("writer: the process died inside a write or sync")
            crash(power: random.below(2) == 0)
            return
        }
        if turn == .wrote, running.journal.writer.failure != nil, running.failedAtStep == nil {
            note("writer: failed (\(running.journal.writer.failure.map { "\($0)" } ?? "?"))")
            running.failedAtStep = step
            server = running
        } else if turn == .wrote {
            note("writer: synced through \(running.journal.writer.durableSeq)")
        }
    }

    private func advanceClock(by delta: Int64) {
        clock.advance(by: delta)
        for client in clients { client.connection?.loop.advanceTime(by: .milliseconds(delta)) }
    }

    private func rotationTick() {
        guard let running = server else { return }
        if let seq = running.service.rotateExpiredKeys() { note("rotation timer rotated keys up to seq \(seq)") }
    }

    private func toggleStall() {
        guard let client = random.pick(clients), let connection = client.connection, connection.isActive else { return }
        client.stalled.toggle()
        note("client \(client.index) \(client.stalled ? "stops" : "resumes") reading")
        connection.channel.isWritable = !client.stalled
        connection.channel.pipeline.fireChannelWritabilityChanged()
    }

    private func drainShutdown() throws(Violation) {
        guard let running = server else { return }
        _ = running.journal.writer.step()
        if disk.takeCrashRequest() {
            crash(power: random.below(2) == 0)
            return
        }
        runLoops()
        try collect()
        let open = clients.contains { $0.connection?.isActive == true && !$0.stalled }
        if !open || random.below(20) == 0 {
            note("graceful shutdown ends")
            disk.count { $0.gracefulRestarts += 1 }
            // What a stopped process wrote stays in the page cache.
            crash(power: false, counted: false)
        }
    }

    // MARK: The server's lives

    private func startServer() throws(Violation) {
        clock.advance(by: Int64(random.range(1_000...5_000)))
        let path = directory + "/" + Journal.fileName
        guard FileManager.default.createFile(atPath: path, contents: Data(disk.content)) else {
            throw Violation("could not write the simulated journal to \(path)")
        }
        let opened: OpenedJournal
        do {
            opened = try Journal.open(
                directory: directory, policy: policy, now: clock.now,
                storage: { [disk] _ in SimStorage(disk: disk) }, threadedWriter: false)
        } catch {
            _ = disk.takeCrashRequest()
            // A start-up that failed after cutting a torn tail is held to
            // the same rule, now: its cut must not wait for the next
            // start-up, by when lines written after it may be stable.
            try checkCut()
            disk.count { $0.startFailures += 1 }
            note("start-up failed: \(error)")
            downUntil = step + random.range(1...5)
            return
        }
        disk.count { $0.restarts += 1 }
        try checkCut()
        try model.absorb(disk)
        try checkReplay(opened.ledger)
        figures.replaysChecked += 1
        let service = LedgerService(
            ledger: opened.ledger, writer: opened.writer, initialBalance: Centavos(initialBalance),
            maximumConnections: maximumConnections, clock: clock.source)
        let core = ServerCore(
            ledger: service, writer: opened.writer, clock: clock.source, logger: logger,
            maximumQueuedAnswers: maximumQueued, stuckTimeoutSeconds: 5)
        server = SimServer(journal: opened, service: service, core: core)
        note(
            "started: replayed through seq \(opened.ledger.lastSeq), torn tail cut at \(opened.tornTailCutAt.map { "\($0)" } ?? "-")"
        )
        // As `CarteiraServer.start`: keys that expired while down first.
        if let seq = service.rotateExpiredKeys() {
            while opened.writer.durableSeq < seq {
                _ = opened.writer.step()
                if disk.takeCrashRequest() {
                    crash(power: random.below(2) == 0)
                    return
                }
                if opened.writer.failure != nil {
                    note("start-up rotation failed to sync")
                    crash(power: false)
                    return
                }
            }
        }
    }

    /// The start-up that just ran cut no stable line.
    private func checkCut() throws(Violation) {
        if let cut = disk.takeLowestCut(), cut < model.parsedOffset {
            throw Violation(
                "start-up cut the journal at byte \(cut), inside the stable lines (which end at \(model.parsedOffset))")
        }
    }

    /// The process dies: its connections are gone unread, its lock is
    /// released; the disk keeps what `power` says.
    private func crash(power: Bool, counted: Bool = true) {
        if let running = server {
            lastLedger = running.service.snapshot().ledger
            if running.failedAtStep != nil, running.core.failure.withLock({ $0 }) == nil {
                // Checked in `checkEverything` too; here the process ends.
                note("journal failed but the server did not stop")
            }
            for client in clients {
                if let connection = client.connection {
                    connection.channel.close(promise: nil)
                    connection.loop.run()
                }
                client.disconnected()
            }
            running.journal.lock.release()
        }
        for loop in lifeLoops {
            loop.run()
            try? loop.syncShutdownGracefully()
        }
        lifeLoops = []
        server = nil
        if power {
            disk.powerLoss()
        } else if counted {
            disk.processCrash()
        }
        downUntil = step + random.range(0...3)
    }

    // MARK: Clients

    private func act(_ client: SimClient) throws(Violation) {
        guard let running = server else { return }
        guard let connection = client.connection, connection.isActive else {
            if client.connection != nil { client.disconnected() }
            connect(client, running)
            return
        }
        if client.hostile {
            hostileStep(client, connection)
        } else {
            honestStep(client, connection)
        }
    }

    private func connect(_ client: SimClient, _ running: SimServer) {
        let loop = EmbeddedEventLoop()
        lifeLoops.append(loop)
        let handler = ConnectionHandler(core: running.core, release: running.core.release(for: loop))
        let channel = EmbeddedChannel(handler: handler, loop: loop)
        channel.remoteAddress = try? SocketAddress(ipAddress: "10.0.0.\(client.index + 1)", port: 40_000 + step)
        _ = try? channel.connect(to: SocketAddress(ipAddress: "127.0.0.1", port: 7070)).wait()
        client.connection = SimConnection(channel: channel, loop: loop)
        note("client \(client.index) connects")
    }

    private func expect(_ client: SimClient, _ kind: Expectation.Kind) {
        client.expectations.append(Expectation(kind: kind, stableSeq: model.lastSeq))
    }

    private func send(_ client: SimClient, _ line: String, _ kind: Expectation.Kind) {
        guard let connection = client.connection else { return }
        expect(client, kind)
        note("client \(client.index): \(line.prefix(100))")
        connection.write(line + "\n")
    }

    private func honestStep(_ client: SimClient, _ connection: SimConnection) {
        if !client.bound {
            guard client.expectations.isEmpty else { return }
            if let name = client.name, let token = client.token {
                send(client, "LOGIN|\(name)|\(token)", .login(name))
            } else {
                send(client, "REGISTER|\(client.machineName)", .register(client.machineName))
            }
            return
        }
        // A send that got no answer is retried, with the same line, first.
        if let index = client.pending.firstIndex(where: { $0.tries == 0 }) {
            client.pending[index].tries += 1
            send(client, client.pending[index].line, .send(client.pending[index]))
            return
        }
        let burst = random.below(10) == 0 ? random.range(2...6) : 1
        for _ in 0..<burst { honestRequest(client) }
    }

    private func honestRequest(_ client: SimClient) {
        guard let name = client.name else { return }
        let others = board.filter { $0.name != name }
        switch random.below(100) {
        case 0..<45:
            guard let payee = random.pick(others) else { return honestRead(client) }
            let cents = Int64(random.range(1...4_000))
            client.nextRequest += 1
            let requestID = random.below(5) == 0 ? nil : "r\(client.index)-\(client.generation)-\(client.nextRequest)"
            let line = "SEND|\(payee.key)|\(requestAmount(cents))" + (requestID.map { "|\($0)" } ?? "")
            let pending = PendingSend(key: payee.key, cents: cents, requestID: requestID, line: line, tries: 1)
            if requestID != nil { client.pending.append(pending) }
            send(client, line, .send(pending))
        case 45..<50:
            guard let payee = random.pick(others) else { return honestRead(client) }
            send(
                client, "SEND|\(payee.key)|99999999,99",
                .refused(["insufficient_funds", "expired_key", "rate_limited", "unavailable"]))
        case 50..<53:
            guard let own = board.first(where: { $0.name == name }) else { return honestRead(client) }
            send(
                client, "SEND|\(own.key)|1", .refused(["self_transfer", "expired_key", "rate_limited", "unavailable"]))
        case 53..<56:
            guard let used = random.pick(client.settled) else { return honestRead(client) }
            send(
                client, "SEND|\(used.key)|\(requestAmount(used.cents + 1))|\(used.id)",
                .refused(["request_id_reused", "rate_limited", "unavailable"]))
        case 56..<60:
            send(client, "ROTATE", .rotate)
        case 60..<66:
            guard let payee = random.pick(others) else { return honestRead(client) }
            send(client, "CHECK|\(payee.key)", .check(payee.key))
        case 66..<68:
            send(client, "QUIT", .quit)
        case 68..<70:
            note("client \(client.index) hangs up")
            client.connection?.channel.close(promise: nil)
        default:
            honestRead(client)
        }
    }

    private func honestRead(_ client: SimClient) {
        switch random.below(5) {
        case 0: send(client, "BALANCE", .balance)
        case 1: send(client, "WHOAMI", .whoami)
        case 2: send(client, "KEY", .key)
        case 3:
            let limit = random.range(1...30)
            send(client, "HISTORY|\(limit)", .history(limit))
        default: send(client, "PING", .ping)
        }
    }

    private func hostileStep(_ client: SimClient, _ connection: SimConnection) {
        if client.halfLine {
            // Either finish the line some day, or never.
            if random.below(4) == 0 {
                client.halfLine = false
                send(client, "NG", .ping)
            }
            return
        }
        let victim = random.pick(board)
        switch random.below(15) {
        case 0:
            send(client, "FROB|\(random.below(1000))", .refused(["unknown_command"]))
        case 1:
            expect(client, .refused(["bad_request"]))
            note("client \(client.index): invalid UTF-8")
            connection.write([0x53, 0x45, 0x4E, 0x44, 0x7C, 0xFF, 0xFE, 0xC3, 0x0A])
        case 2:
            expect(client, .refused(["line_too_long"]))
            note("client \(client.index): an over-long line")
            connection.write(String(repeating: "A", count: maximumLineBytes + random.range(1...3_000)) + "\n")
        case 3:
            let name = victim?.name ?? "peer0-0"
            let token = (0..<32).map { _ in String(random.below(16), radix: 16) }.joined()
            send(client, "LOGIN|\(name)|\(token)", .refused(["bad_token", "unknown_machine", "rate_limited"]))
        case 4:
            send(client, "CHECK|\(randomKey())", .refused(["unknown_key", "rate_limited"]))
        case 5:
            let key = victim?.key ?? randomKey()
            send(client, "SEND|\(key)|\(random.range(1...100))", .refused(["not_logged_in"]))
        case 6:
            send(client, "REGISTER|bad name \(random.below(10))", .refused(["bad_name", "bad_request"]))
        case 7:
            let key = victim?.key ?? randomKey()
            let amount = random.pick(["0", "-5", "1,234", "9999999999999", "1e3", "0,00", "", "12.3.4"]) ?? "0"
            send(client, "SEND|\(key)|\(amount)", .refused(["bad_amount", "bad_request"]))
        case 8:
            send(client, "HISTORY|\(random.pick(["0", "1001", "x", "-1"]) ?? "0")", .refused(["bad_request"]))
        case 9:
            note("client \(client.index): an empty line")
            connection.write("\n")
        case 10:
            send(client, "ping\r", .ping)
        case 11:
            note("client \(client.index): half a line")
            client.halfLine = true
            connection.write("PI")
        case 12:
            // Pipelines many look-ups without reading.
            let count = random.range(5...60)
            note("client \(client.index): pipelines \(count) look-ups")
            var text = ""
            for _ in 0..<count {
                text += "CHECK|\(randomKey())\n"
                expect(client, .refused(["unknown_key", "rate_limited"]))
            }
            connection.write(text)
        case 13:
            send(client, "WHOAMI", .refused(["not_logged_in"]))
        default:
            note("client \(client.index) hangs up")
            connection.channel.close(promise: nil)
        }
    }

    private func randomKey() -> String {
        func hex(_ count: Int) -> String { (0..<count).map { _ in String(random.below(16), radix: 16) }.joined() }
        return "\(hex(8))-\(hex(4))-4\(hex(3))-a\(hex(3))-\(hex(12))"
    }

    // MARK: Reading and checking what clients saw

    private func runLoops() {
        for _ in 0..<2 {
            for client in clients { client.connection?.loop.run() }
        }
    }

    private func collect() throws(Violation) {
        try model.absorb(disk)
        for client in clients {
            guard let connection = client.connection else { continue }
            for line in connection.drain() { try check(line, from: client) }
            if !connection.isActive {
                note("client \(client.index): connection closed")
                client.disconnected()
            }
        }
    }

    private func check(_ line: String, from client: SimClient) throws(Violation) {
        figures.answersChecked += 1
        let fields = line.split(separator: "|", omittingEmptySubsequences: false).map(String.init)
        let stable = model.lastSeq
        if client.historyLines > 0 {
            client.historyLines -= 1
            guard fields.count == 6, fields[0] == "TX", let seq = seq(ofTx: fields[1]) else {
                throw Violation("client \(client.index) expected a TX line, got \(line)")
            }
            guard let transfer = model.transfers[seq] else {
                throw Violation("HISTORY listed \(fields[1]), not durable (stable through \(stable))")
            }
            guard transfer.from.text == fields[3], transfer.to.text == fields[4],
                "\(transfer.amount.value)" == fields[5], fields[3] == client.name || fields[4] == client.name
            else { throw Violation("HISTORY line \(line) does not match the durable \(transfer)") }
            return
        }
        if fields.first == "EVT" { return try checkPush(fields, line, client) }
        guard !client.expectations.isEmpty else {
            // A connection over `--max-clients` is told so, unasked, and closed.
            if line.hasPrefix("ERR|unavailable|"), client.connection?.isActive == false {
                figures.connectionsRefused += 1
                return
            }
            throw Violation("client \(client.index) got \(line) with no request outstanding")
        }
        let expectation = client.expectations.removeFirst()
        let range = min(expectation.stableSeq, stable)...stable
        if fields.first == "ERR" {
            guard fields.count >= 3, let code = fields.dropFirst().first, !code.isEmpty else {
                throw Violation("malformed refusal \(line)")
            }
            return try checkRefusal(code, line, expectation, client)
        }
        guard fields.first == "OK" else { throw Violation("client \(client.index) got \(line)") }
        switch expectation.kind {
        case let .refused(codes):
            throw Violation("client \(client.index) expected a refusal (\(codes.sorted())) and got \(line)")
        case .ping:
            guard fields == ["OK", "PONG"] else { throw Violation("PING answered \(line)") }
        case .quit:
            guard fields == ["OK", "BYE"] else { throw Violation("QUIT answered \(line)") }
        case let .register(name):
            guard fields.count == 5, fields[1] == name, let token = Token(fields[2]) else {
                throw Violation("REGISTER answered \(line)")
            }
            guard let machine = model.machines[name] else {
                throw Violation("REGISTER of \(name) answered before it was durable (stable through \(stable))")
            }
            guard machine.tokenDigest == SecureRandom.digest(of: token).text, model.hasKey(fields[3], of: name),
                fields[4] == "\(initialBalance)"
            else { throw Violation("REGISTER answer \(line) does not match the durable registration") }
            client.name = name
            client.token = fields[2]
            client.bound = true
            publish(name, key: fields[3])
        case let .login(name):
            guard fields.count == 4, fields[1] == name else { throw Violation("LOGIN answered \(line)") }
            guard model.hasKey(fields[2], of: name) else { throw Violation("LOGIN showed a key not durable: \(line)") }
            try checkBalance(fields[3], name, range, line)
            client.bound = true
            publish(name, key: fields[2])
        case .whoami:
            guard let name = client.name, fields.count == 5, fields[1] == name else {
                throw Violation("WHOAMI answered \(line)")
            }
            guard model.hasKey(fields[2], of: name) else { throw Violation("WHOAMI showed a key not durable: \(line)") }
            try checkBalance(fields[3], name, range, line)
            publish(name, key: fields[2])
        case .balance:
            guard let name = client.name, fields.count == 2 else { throw Violation("BALANCE answered \(line)") }
            try checkBalance(fields[1], name, range, line)
        case .key, .rotate:
            guard let name = client.name, fields.count == 3 else { throw Violation("KEY/ROTATE answered \(line)") }
            guard model.hasKey(fields[1], of: name) else {
                throw Violation("KEY/ROTATE showed a key not durable (stable through \(stable)): \(line)")
            }
            publish(name, key: fields[1])
        case let .check(key):
            guard fields.count == 2, model.hasKey(key, of: fields[1]) else {
                throw Violation(
                    "CHECK|\(key) answered \(line); the durable owner is \(model.keyOwner[key] ?? "nobody")")
            }
        case let .history(limit):
            guard fields.count == 2, let count = Int(fields[1]), count >= 0, count <= limit else {
                throw Violation("HISTORY answered \(line)")
            }
            client.historyLines = count
        case let .send(pending):
            try checkSent(fields, line, pending, range, client)
        }
    }

    private func checkSent(
        _ fields: [String], _ line: String, _ pending: PendingSend, _ range: ClosedRange<Int64>, _ client: SimClient
    ) throws(Violation) {
        guard let name = client.name, fields.count == 3 || (fields.count == 4 && fields[3] == "again"),
            let seq = seq(ofTx: fields[1]), let cents = Int64(fields[2])
        else { throw Violation("SEND answered \(line)") }
        guard let transfer = model.transfers[seq] else {
            throw Violation("SEND acknowledged \(fields[1]) before it was durable (stable through \(model.lastSeq))")
        }
        guard transfer.from.text == name, transfer.amount.value == pending.cents, transfer.key.text == pending.key,
            transfer.requestID?.text == pending.requestID
        else { throw Violation("SEND answer \(line) for \(pending.line) does not match the durable \(transfer)") }
        if fields.count == 4 {
            guard pending.requestID != nil else { throw Violation("'again' for a SEND without request id: \(line)") }
            let low = min(max(seq, range.lowerBound), range.upperBound)
            guard model.balances(of: name, in: low...range.upperBound).contains(cents) else {
                throw Violation("SEND again showed balance \(cents), never durable in seq \(low)...\(range.upperBound)")
            }
        } else {
            guard model.balance(of: name, at: seq) == cents else {
                throw Violation(
                    "SEND showed balance \(cents), the durable balance after \(fields[1]) is \(model.balance(of: name, at: seq).map { "\($0)" } ?? "?")"
                )
            }
        }
        figures.transfersAcknowledged += 1
        settle(pending, client)
    }

    private func settle(_ pending: PendingSend, _ client: SimClient) {
        guard let id = pending.requestID else { return }
        client.pending.removeAll { $0.requestID == id }
        client.settled.append((id, pending.key, pending.cents))
        if client.settled.count > 8 { client.settled.removeFirst() }
    }

    private func checkBalance(_ text: String, _ name: String, _ range: ClosedRange<Int64>, _ line: String)
        throws(Violation)
    {
        guard let cents = Int64(text) else { throw Violation("not a balance: \(line)") }
        guard model.balances(of: name, in: range).contains(cents) else {
            throw Violation(
                "\(line) shows balance \(cents) of \(name), which was never durable in seq \(range) (durable: \(model.balances(of: name, in: range)))"
            )
        }
    }

    private func checkRefusal(_ code: String, _ line: String, _ expectation: Expectation, _ client: SimClient)
        throws(Violation)
    {
        switch expectation.kind {
        case let .refused(codes):
            guard codes.contains(code) || code == "unavailable" || (code == "rate_limited" && codes.isEmpty) else {
                throw Violation("client \(client.index) expected one of \(codes.sorted()), got \(line)")
            }
        case let .register(name):
            // An earlier REGISTER whose answer was lost may have survived.
            if code == "machine_exists" {
                let inMemory = MachineName(name).flatMap { server?.service.snapshot().ledger.machines[$0] }
                guard model.machines[name] != nil || inMemory != nil else {
                    throw Violation("machine_exists for \(name), which is not registered")
                }
                client.generation += 1
            }
        case let .login(name):
            guard code == "unavailable" || code == "rate_limited" else {
                throw Violation("LOGIN of \(name) with its own token refused: \(line)")
            }
        case let .check(key):
            if code == "unknown_key", model.keyOwner[key] != nil {
                throw Violation(
                    "CHECK|\(key): unknown_key, but the key is durable (owner \(model.keyOwner[key] ?? "?"))")
            }
        case let .send(pending):
            if code == "unknown_key", model.keyOwner[pending.key] != nil {
                throw Violation("SEND to a durable key answered unknown_key: \(line)")
            }
            if code == "request_id_reused" {
                throw Violation("a retry with the same line answered request_id_reused: \(line)")
            }
            // Anything but `unavailable` settles it: it will not be tried again.
            if code != "unavailable" {
                if let id = pending.requestID { client.pending.removeAll { $0.requestID == id } }
            } else if let index = client.pending.firstIndex(where: { $0.requestID == pending.requestID }) {
                client.pending[index].tries = 0
            }
        case .ping, .quit:
            throw Violation("\(line) for PING or QUIT")
        default:
            break
        }
        if code == "unavailable", let running = server, !running.shuttingDown, running.failedAtStep == nil,
            running.journal.writer.failure == nil, client.bound
        {
            throw Violation("unavailable from a healthy server: \(line)")
        }
    }

    private func checkPush(_ fields: [String], _ line: String, _ client: SimClient) throws(Violation) {
        guard let name = client.name, client.bound else { throw Violation("a push to an anonymous session: \(line)") }
        switch fields.count > 1 ? fields[1] : "" {
        case "received":
            guard fields.count == 6, let seq = seq(ofTx: fields[2]) else { throw Violation("push \(line)") }
            guard let transfer = model.transfers[seq] else {
                throw Violation("pushed \(fields[2]) before it was durable (stable through \(model.lastSeq))")
            }
            guard transfer.to.text == name, transfer.from.text == fields[3], "\(transfer.amount.value)" == fields[4],
                model.balance(of: name, at: seq).map({ "\($0)" }) == fields[5]
            else { throw Violation("push \(line) does not match the durable \(transfer)") }
        case "key":
            guard fields.count == 4, model.hasKey(fields[2], of: name) else {
                throw Violation("pushed a key that is not durable: \(line)")
            }
            publish(name, key: fields[2])
        default:
            throw Violation("unknown push \(line)")
        }
    }

    private func publish(_ name: String, key: String) {
        if let index = board.firstIndex(where: { $0.name == name }) {
            board[index].key = key
        } else {
            board.append((name, key))
        }
    }

    // MARK: Whole-state checks

    /// After every step: the disk's stable lines read (and chain), the
    /// server's state in memory keeps the ledger's rules.
    private func checkEverything() throws(Violation) {
        try model.absorb(disk)
        guard let running = server else { return }
        let ledger = running.service.snapshot().ledger
        if let violation = ledger.checkInvariants() { throw Violation("ledger invariant: \(violation.message)") }
        var sum: Int64 = 0
        // Names and balances only: a whole record per machine would cost
        // the run a quarter of its time.
        for name in ledger.machines.keys {
            let balance = ledger.balance(of: name)?.value ?? -1
            guard balance >= 0 else { throw Violation("\(name) has \(balance)") }
            sum += balance
        }
        guard sum == ledger.totalMoney.value, sum == initialBalance * Int64(ledger.machines.count) else {
            throw Violation("money not conserved: \(sum) in \(ledger.machines.count) wallets")
        }
        guard ledger.lastSeq >= model.lastSeq else {
            throw Violation("the server's state (seq \(ledger.lastSeq)) is behind the disk's (\(model.lastSeq))")
        }
        if running.failedAtStep != nil {
            guard running.core.failure.withLock({ $0 }) != nil, running.service.serving == .journalFailed else {
                throw Violation("the journal failed but the server still serves (it must stop and exit non-zero)")
            }
        }
    }

    /// After a replay: every durable line is back, nothing is half-applied,
    /// and nothing is there that the last life did not do.
    private func checkReplay(_ ledger: Ledger) throws(Violation) {
        if let violation = ledger.checkInvariants() { throw Violation("replayed ledger: \(violation.message)") }
        guard ledger.lastSeq >= model.lastSeq else {
            throw Violation("replay ended at seq \(ledger.lastSeq); seq \(model.lastSeq) was durable")
        }
        for (seq, transfer) in model.transfers {
            guard ledger.transfer(TxID(seq: seq))?.transfer == transfer else {
                throw Violation("durable transfer \(TxID(seq: seq)) lost or changed by replay")
            }
        }
        var computed: [String: Int64] = [:]
        for machine in ledger.machines.values { computed[machine.name.text] = initialBalance }
        for record in ledger.transfers {
            computed[record.transfer.from.text, default: 0] -= record.transfer.amount.value
            computed[record.transfer.to.text, default: 0] += record.transfer.amount.value
        }
        for machine in ledger.machines.values {
            guard computed[machine.name.text] == machine.balance.value, machine.balance.value >= 0 else {
                throw Violation(
                    "replayed balance of \(machine.name) is \(machine.balance.value), transfers give \(computed[machine.name.text] ?? 0)"
                )
            }
            if let durable = model.machines[machine.name.text], durable.tokenDigest != machine.tokenDigest.text {
                throw Violation("replayed token of \(machine.name) changed")
            }
        }
        for name in model.machines.keys where MachineName(name).flatMap({ ledger.machines[$0] }) == nil {
            throw Violation("durable machine \(name) lost by replay")
        }
        guard ledger.totalMoney.value == initialBalance * Int64(ledger.machines.count) else {
            throw Violation("replayed total \(ledger.totalMoney.value) for \(ledger.machines.count) machines")
        }
        if let last = lastLedger {
            guard ledger.lastSeq <= last.lastSeq, ledger.transfers.count <= last.transfers.count else {
                throw Violation("replay holds seq \(ledger.lastSeq), the last server only reached \(last.lastSeq)")
            }
            for (index, record) in ledger.transfers.enumerated() where last.transfers[index] != record {
                throw Violation("replayed transfer \(record.tx) is not the one the last server made")
            }
        }
    }

    /// The end of a run: faults off, a clean restart, everything synced,
    /// and `journal verify` on the final file.
    private func finish() throws(Violation) {
        disk.setFaults(false)
        if let running = server, running.failedAtStep != nil || running.shuttingDown { crash(power: false) }
        if server == nil { try startServer() }
        guard let healthy = server else { throw Violation("the server does not start with faults off") }
        while healthy.journal.writer.step() == .wrote {}
        runLoops()
        try collect()
        try checkEverything()
        crash(power: false, counted: false)
        try startServer()
        guard server != nil else { throw Violation("the last start failed with faults off") }
        crash(power: false, counted: false)
        let path = directory + "/" + Journal.fileName
        guard FileManager.default.createFile(atPath: path, contents: Data(disk.content)) else {
            throw Violation("could not write the final journal")
        }
        let summary: VerifySummary
        do {
            summary = try JournalVerifier.verify(directory: directory)
        } catch {
            throw Violation("journal verify refused the final journal: \(error)")
        }
        guard summary.lastSeq >= model.lastSeq, summary.lastSeq == lastLedger?.lastSeq else {
            throw Violation("verify ends at seq \(summary.lastSeq), the model at \(model.lastSeq)")
        }
    }
}
