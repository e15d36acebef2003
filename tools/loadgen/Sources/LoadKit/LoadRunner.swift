import CarteiraCore
import NIOCore
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public enum LoadError: Error, CustomStringConvertible {
    case registrationRefused(machine: String, answer: String)
    case loginRefused(machine: String, answer: String)
    case timedOut(seconds: Int)
    case closedEarly

    public var description: String {
        switch self {
        case let .registrationRefused(machine, answer): "REGISTER|\(machine) was answered \(answer)"
        case let .loginRefused(machine, answer):
            "LOGIN|\(machine) was answered \(answer) (is the wallets file from another server's journal?)"
        case let .timedOut(seconds): "the run did not finish within \(seconds) s; the server stopped answering"
        case .closedEarly: "the server closed a connection before the run started"
        }
    }
}

/// Monotonic time in nanoseconds.
@inline(__always)
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

/// User plus system CPU time of this whole process (every thread), in seconds.
func processCPUSeconds() -> Double {
    var usage = rusage()
    #if canImport(Glibc)
        getrusage(RUSAGE_SELF.rawValue, &usage)
    #else
        getrusage(RUSAGE_SELF, &usage)
    #endif
    func seconds(_ value: timeval) -> Double { Double(value.tv_sec) + Double(value.tv_usec) / 1e6 }
    return seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// A small fast generator for the payee draws (SplitMix64).
struct FastRandom {
    var state: UInt64

    init(seed: UInt64) { state = seed }

    @inline(__always)
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

/// What the connections of one event loop saw. Every handler of that loop
/// counts into it, on the loop's thread only, so it needs no lock.
final class LoopTally: @unchecked Sendable {
    var histogram = LatencyHistogram()
    var ok = 0
    var errors: [String: Int] = [:]
    /// Monotonic time of the last answer, in nanoseconds.
    var lastAnswer: UInt64 = 0

    var snapshot: ConnectionTally {
        ConnectionTally(histogram: histogram, ok: ok, errors: errors, lastAnswer: lastAnswer)
    }
}

/// A copy of a `LoopTally`, taken on its loop once the run is over.
struct ConnectionTally: Sendable {
    var histogram = LatencyHistogram()
    var ok = 0
    /// Answers by error code; `connection_closed` when the server hung up.
    var errors: [String: Int] = [:]
    var lastAnswer: UInt64 = 0
}

/// The request lines of a run, built once before the start: in `send` mode
/// one `SEND|<key>|0,01\n` per wallet (the payee), else the one line.
final class RequestTable: Sendable {
    let mode: LoadMode
    let lines: [[UInt8]]
    /// Request ids `<prefix>-<connection>-<count>` when set.
    let requestIDPrefix: String?

    init(mode: LoadMode, payeeKeys: [String], requestIDPrefix: String?) {
        self.mode = mode
        self.requestIDPrefix = requestIDPrefix
        switch mode {
        case .ping: lines = [Array("PING\n".utf8)]
        case .balance: lines = [Array("BALANCE\n".utf8)]
        case .send: lines = payeeKeys.map { Array("SEND|\($0)|0,01\n".utf8) }
        }
    }

    /// Appends the next request of connection `index`, whose wallet is
    /// `payer`, paying a random other wallet.
    @inline(__always)
    func write(into buffer: inout ByteBuffer, index: Int, payer: Int, sent: Int, random: inout FastRandom) {
        guard mode == .send else {
            buffer.writeBytes(lines[0])
            return
        }
        var payee = Int(random.next() % UInt64(lines.count - 1))
        if payee >= payer { payee += 1 }
        let line = lines[payee]
        if let requestIDPrefix {
            buffer.writeBytes(line.dropLast())
            buffer.writeString("|\(requestIDPrefix)-\(index)-\(sent)\n")
        } else {
            buffer.writeBytes(line)
        }
    }
}

/// Sent down each connection's pipeline when every connection is logged in.
struct StartSignal: Sendable {
    let deadline: UInt64
    let table: RequestTable
}

/// One answer, classified from its first bytes only: the hot loop must not
/// spend the CPU the server needs.
enum Outcome: Equatable {
    case ok
    case error(String)

    /// `nil` for a push (`EVT|...`) or an empty line, which answer no request.
    init?(_ line: ByteBuffer) {
        guard let outcome = line.withUnsafeReadableBytes({ Outcome(bytes: $0) }) else { return nil }
        self = outcome
    }

    @inline(__always)
    init?(bytes: UnsafeRawBufferPointer) {
        guard let first = bytes.first else { return nil }
        if first == UInt8(ascii: "O"), bytes.count >= 2, bytes[1] == UInt8(ascii: "K") {
            self = .ok
            return
        }
        if first == UInt8(ascii: "E"), bytes.starts(with: "EVT|".utf8) { return nil }
        guard bytes.starts(with: "ERR|".utf8) else {
            self = .error("unparsed_answer")
            return
        }
        let code = bytes.dropFirst(4).prefix { $0 != UInt8(ascii: "|") }
        self = .error(String(decoding: code, as: UTF8.self))
    }
}

/// One connection. First it sends its setup line (`REGISTER` or `LOGIN`, or
/// nothing for `PING`) and hands the answer to `setupAnswer`; on the
/// `StartSignal` it writes `pipeline` requests, then writes one new request
/// for each answer until the deadline (written while reading, flushed once a
/// read burst is over), then drains what is in flight, closes, and completes
/// `finished`. Lines are cut straight from the read buffers; latencies go
/// into the loop's histogram.
final class LoadHandler: ChannelInboundHandler {
    typealias InboundIn = ByteBuffer
    typealias OutboundOut = ByteBuffer

    enum Phase { case setup, ready, running, draining, done }

    private let index: Int
    private let payer: Int
    private let setupLine: String?
    private let setupAnswer: EventLoopPromise<String>
    private let finished: EventLoopPromise<Void>
    private let tally: LoopTally
    private let pipeline: Int
    private var phase = Phase.setup
    /// The start of a line that the last read cut in two.
    private var partial: ByteBuffer?
    /// Write times of the requests in flight, oldest at `oldest` (a ring).
    private var sentAt: [UInt64]
    private var oldest = 0
    private var inFlight = 0
    private var sent = 0
    private var pending: ByteBuffer?
    private var deadline: UInt64 = 0
    private var table: RequestTable?
    private var random: FastRandom
    /// Monotonic time of the read being handled.
    private var now: UInt64 = 0

    init(
        index: Int, payer: Int, pipeline: Int, setupLine: String?, setupAnswer: EventLoopPromise<String>,
        finished: EventLoopPromise<Void>, tally: LoopTally, seed: UInt64
    ) {
        self.index = index
        self.payer = payer
        self.pipeline = pipeline
        self.setupLine = setupLine
        self.setupAnswer = setupAnswer
        self.finished = finished
        self.tally = tally
        self.sentAt = Array(repeating: 0, count: pipeline)
        self.random = FastRandom(seed: seed)
    }

    func channelActive(context: ChannelHandlerContext) {
        if let setupLine {
            context.writeAndFlush(wrapOutboundOut(context.channel.allocator.buffer(string: setupLine)), promise: nil)
        } else {
            phase = .ready
            setupAnswer.succeed("")
        }
        context.fireChannelActive()
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        guard let start = event as? StartSignal, phase == .ready else {
            context.fireUserInboundEventTriggered(event)
            return
        }
        table = start.table
        deadline = start.deadline
        phase = .running
        now = monotonicNanoseconds()
        var burst = context.channel.allocator.buffer(capacity: pipeline * 64)
        for slot in 0..<pipeline {
            sent += 1
            start.table.write(into: &burst, index: index, payer: payer, sent: sent, random: &random)
            sentAt[slot] = now
        }
        inFlight = pipeline
        context.writeAndFlush(wrapOutboundOut(burst), promise: nil)
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        var buffer = unwrapInboundIn(data)
        now = monotonicNanoseconds()
        let answered: Int
        if var head = partial {
            partial = nil
            head.writeBuffer(&buffer)
            answered = scan(head, context: context)
        } else {
            answered = scan(buffer, context: context)
        }
        guard phase == .running || phase == .draining else { return }
        if phase == .running, now >= deadline { phase = .draining }
        if phase == .running, answered > 0, let table {
            var out = pending ?? context.channel.allocator.buffer(capacity: answered * 64)
            for _ in 0..<answered {
                sent += 1
                table.write(into: &out, index: index, payer: payer, sent: sent, random: &random)
                sentAt[(oldest + inFlight) % pipeline] = now
                inFlight += 1
            }
            pending = out
        }
        if phase == .draining, inFlight == 0 {
            phase = .done
            finished.succeed(())
            context.close(promise: nil)
        }
    }

    func channelReadComplete(context: ChannelHandlerContext) {
        if let out = pending {
            pending = nil
            context.writeAndFlush(wrapOutboundOut(out), promise: nil)
        }
        context.fireChannelReadComplete()
    }

    func channelInactive(context: ChannelHandlerContext) {
        switch phase {
        case .setup: setupAnswer.fail(LoadError.closedEarly)
        case .running, .draining: tally.errors["connection_closed", default: 0] += 1
        case .ready, .done: break
        }
        phase = .done
        setupAnswer.fail(LoadError.closedEarly)  // no-op once answered
        finished.succeed(())
        context.fireChannelInactive()
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    /// Handles every whole line in `buffer`, keeps a cut last line in
    /// `partial`, and returns how many answers it counted.
    private func scan(_ buffer: ByteBuffer, context: ChannelHandlerContext) -> Int {
        var answered = 0
        buffer.withUnsafeReadableBytes { bytes in
            guard let base = bytes.baseAddress else { return }
            var start = 0
            while start < bytes.count {
                guard let newline = memchr(base + start, Int32(UInt8(ascii: "\n")), bytes.count - start) else {
                    break
                }
                let end = UnsafeRawPointer(newline) - base
                if handle(line: UnsafeRawBufferPointer(rebasing: bytes[start..<end])) { answered += 1 }
                start = end + 1
            }
            if start < bytes.count {
                var rest = context.channel.allocator.buffer(capacity: bytes.count - start)
                rest.writeBytes(UnsafeRawBufferPointer(rebasing: bytes[start...]))
                partial = rest
            }
        }
        return answered
    }

    /// Returns whether the line answered a request of the timed run.
    @inline(__always)
    private func handle(line: UnsafeRawBufferPointer) -> Bool {
        guard let outcome = Outcome(bytes: line) else { return false }
        switch phase {
        case .setup:
            phase = .ready
            setupAnswer.succeed(String(decoding: line, as: UTF8.self))
            return false
        case .running, .draining:
            guard inFlight > 0 else { return false }
            tally.histogram.record(now &- sentAt[oldest])
            oldest = oldest + 1 == pipeline ? 0 : oldest + 1
            inFlight -= 1
            tally.lastAnswer = now
            switch outcome {
            case .ok: tally.ok += 1
            case let .error(code): tally.errors[code, default: 0] += 1
            }
            return true
        case .ready, .done:
            return false
        }
    }
}

/// Runs one `LoadPlan`: gets its wallets (from the file, registering what is
/// missing), opens every connection and logs each in as a random wallet, waits
/// until all are ready, then the timed run, then the drain.
public enum LoadRunner {
    public static func run(_ plan: LoadPlan) async throws -> LoadResult {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: plan.threads)
        do {
            let result = try await run(plan, group: group)
            try? await group.shutdownGracefully()
            return result
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    /// Registers what the wallets file lacks and writes it back; returns the
    /// wallets. Used alone by `carteira-load --setup-only`.
    public static func prepareWallets(_ plan: LoadPlan) async throws -> [Wallet] {
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        do {
            let wallets = try await prepareWallets(plan, group: group)
            try? await group.shutdownGracefully()
            return wallets
        } catch {
            try? await group.shutdownGracefully()
            throw error
        }
    }

    static var setupTimeout: Int { LoadPlan.graceSeconds }

    static func prepareWallets(_ plan: LoadPlan, group: any EventLoopGroup) async throws -> [Wallet] {
        var wallets = try plan.walletsFile.map(WalletFile.load) ?? []
        guard wallets.count < plan.wallets else { return Array(wallets.prefix(plan.wallets)) }
        let missing = wallets.count..<plan.wallets
        // Some at a time: each REGISTER is a durable event and a connection.
        let batch = 100
        for first in stride(from: missing.lowerBound, to: missing.upperBound, by: batch) {
            let names = (first..<min(first + batch, missing.upperBound)).map { "\(plan.prefix)-\($0)" }
            var answers: [(String, EventLoopFuture<String>, any Channel)] = []
            for name in names {
                let (channel, answer, _) = try await open(
                    plan.endpoint, group: group, index: 0, payer: 0, pipeline: 1, setupLine: "REGISTER|\(name)\n",
                    tally: LoopTally())
                answers.append((name, answer, channel))
            }
            for (name, answer, channel) in answers {
                let line = try await within(setupTimeout, answer, on: channel.eventLoop)
                channel.close(promise: nil)
                // OK|<machine>|<token>|<key>|<cents>
                let fields = line.split(separator: "|", omittingEmptySubsequences: false)
                guard fields.count == 5, fields[0] == "OK", Token(fields[2]) != nil, PaymentKey(fields[3]) != nil
                else { throw LoadError.registrationRefused(machine: name, answer: line) }
                wallets.append(Wallet(name: name, token: String(fields[2]), key: String(fields[3])))
            }
        }
        if let path = plan.walletsFile { try WalletFile.save(wallets, to: path) }
        return wallets
    }

    static func open(
        _ endpoint: ServerEndpoint, group: any EventLoopGroup, index: Int, payer: Int, pipeline: Int,
        setupLine: String?, tally: LoopTally
    ) async throws -> (any Channel, EventLoopFuture<String>, EventLoopFuture<Void>) {
        let loop = group.next()
        let setupAnswer = loop.makePromise(of: String.self)
        let finished = loop.makePromise(of: Void.self)
        var seeder = SystemRandomNumberGenerator()
        let seed = seeder.next()
        let connecting = ClientBootstrap(group: loop)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(
                        LoadHandler(
                            index: index, payer: payer, pipeline: pipeline, setupLine: setupLine,
                            setupAnswer: setupAnswer, finished: finished, tally: tally, seed: seed))
                }
            }
            .connect(host: endpoint.host, port: endpoint.port)
        // A connection that never opens completes neither promise by itself.
        connecting.whenFailure { error in
            setupAnswer.fail(error)
            finished.fail(error)
        }
        let channel = try await connecting.get()
        return (channel, setupAnswer.futureResult, finished.futureResult)
    }

    /// `future`'s value, or `LoadError.timedOut` after `seconds`.
    static func within<T: Sendable>(_ seconds: Int, _ future: EventLoopFuture<T>, on loop: any EventLoop)
        async throws -> T
    {
        let promise = loop.makePromise(of: T.self)
        let timer = loop.scheduleTask(in: .seconds(Int64(seconds))) {
            promise.fail(LoadError.timedOut(seconds: seconds))
        }
        future.cascade(to: promise)
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }

    static func run(_ plan: LoadPlan, group: MultiThreadedEventLoopGroup) async throws -> LoadResult {
        let setupStart = monotonicNanoseconds()
        var wallets = plan.mode.needsMachine ? try await prepareWallets(plan, group: group) : []
        // The connections log in as distinct random wallets (wrapping round
        // when there are more connections than wallets).
        var shuffled = Array(wallets.indices)
        shuffled.shuffle()
        let loops = Array(group.makeIterator())
        let tallies = loops.map { _ in LoopTally() }
        var channels: [any Channel] = []
        var answers: [EventLoopFuture<String>] = []
        var finishes: [EventLoopFuture<Void>] = []
        var payers: [Int] = []
        do {
            for index in 0..<plan.connections {
                let payer = wallets.isEmpty ? 0 : shuffled[index % shuffled.count]
                let setupLine = wallets.isEmpty ? nil : "LOGIN|\(wallets[payer].name)|\(wallets[payer].token)\n"
                let loop = loops[index % loops.count]
                let (channel, answer, finished) = try await open(
                    plan.endpoint, group: loop, index: index, payer: payer, pipeline: plan.pipeline,
                    setupLine: setupLine, tally: tallies[index % loops.count])
                channels.append(channel)
                answers.append(answer)
                finishes.append(finished)
                payers.append(payer)
            }
            for (index, answer) in answers.enumerated() {
                let line = try await within(setupTimeout, answer, on: channels[index].eventLoop)
                guard !wallets.isEmpty else { continue }
                // OK|<machine>|<key>|<cents>: the key may have been rotated.
                let fields = line.split(separator: "|", omittingEmptySubsequences: false)
                guard fields.count == 4, fields[0] == "OK", PaymentKey(fields[2]) != nil else {
                    throw LoadError.loginRefused(machine: wallets[payers[index]].name, answer: line)
                }
                wallets[payers[index]].key = String(fields[2])
            }
        } catch {
            for channel in channels { channel.close(promise: nil) }
            throw error
        }
        if let path = plan.walletsFile, !wallets.isEmpty { try WalletFile.save(wallets, to: path) }
        let table = RequestTable(
            mode: plan.mode, payeeKeys: wallets.map(\.key), requestIDPrefix: plan.requestIDs ? plan.prefix : nil)

        let cpuStart = processCPUSeconds()
        let start = monotonicNanoseconds()
        let signal = StartSignal(deadline: start + UInt64(plan.seconds) * 1_000_000_000, table: table)
        for channel in channels { channel.pipeline.fireUserInboundEventTriggered(signal) }
        let allDone = EventLoopFuture.andAllComplete(finishes, on: loops[0])
        do {
            try await within(plan.seconds + LoadPlan.graceSeconds, allDone, on: loops[0])
        } catch {
            for channel in channels { channel.close(promise: nil) }
            throw error
        }
        let cpuSeconds = processCPUSeconds() - cpuStart
        var snapshots: [ConnectionTally] = []
        for (loop, tally) in zip(loops, tallies) {
            snapshots.append(try await loop.submit { tally.snapshot }.get())
        }
        return LoadResult(
            plan: plan, start: start, tallies: snapshots, cpuSeconds: cpuSeconds,
            setupSeconds: Double(start - setupStart) / 1e9)
    }
}
