import CarteiraCore
import CarteiraProtocol
import NIOCore
import NIOExtras
import NIOPosix

#if canImport(Glibc)
    import Glibc
#elseif canImport(Darwin)
    import Darwin
#endif

public enum LoadError: Error, CustomStringConvertible {
    case registrationRefused(machine: String, answer: String)
    case timedOut(seconds: Int)
    case closedEarly

    public var description: String {
        switch self {
        case let .registrationRefused(machine, answer): "REGISTER|\(machine) was answered \(answer)"
        case let .timedOut(seconds): "the run did not finish within \(seconds) s; the server stopped answering"
        case .closedEarly: "the server closed a connection before the run started"
        }
    }
}

/// Monotonic time in nanoseconds.
func monotonicNanoseconds() -> UInt64 {
    var spec = timespec()
    clock_gettime(CLOCK_MONOTONIC, &spec)
    return UInt64(spec.tv_sec) * 1_000_000_000 + UInt64(spec.tv_nsec)
}

typealias LineChannel = NIOAsyncChannel<ByteBuffer, ByteBuffer>

/// Runs one `LoadPlan`: every connection registers its machine, all wait at
/// one start line, then each keeps `pipeline` requests in flight until the
/// deadline and drains what is still in flight.
public enum LoadRunner {
    public static func run(_ plan: LoadPlan) async throws -> LoadResult {
        let group = MultiThreadedEventLoopGroup.singleton
        let startLine = StartLine(plan: plan)
        // With one connection the ring would pay itself: register a payee
        // on a short setup connection instead.
        if plan.mode == .send, plan.connections == 1 {
            let channel = try await connect(plan.endpoint, group: group)
            let key = try await channel.executeThenClose { inbound, outbound in
                var lines = inbound.makeAsyncIterator()
                return try await register("\(plan.prefix)-payee", lines: &lines, outbound: outbound)
            }
            await startLine.setExtraPayee(key)
        }
        let timeoutSeconds = plan.seconds + LoadPlan.graceSeconds
        return try await withThrowingTaskGroup(of: ConnectionTally?.self) { tasks in
            for index in 0..<plan.connections {
                tasks.addTask {
                    do {
                        return try await runConnection(index, plan: plan, group: group, startLine: startLine)
                    } catch {
                        await startLine.abandon(error)
                        throw error
                    }
                }
            }
            tasks.addTask {
                // The watchdog: cancelled once every connection is done.
                do {
                    try await Task.sleep(for: .seconds(timeoutSeconds))
                } catch {
                    return nil
                }
                throw LoadError.timedOut(seconds: timeoutSeconds)
            }
            var tallies: [ConnectionTally] = []
            while tallies.count < plan.connections, let next = try await tasks.next() {
                if let tally = next { tallies.append(tally) }
            }
            tasks.cancelAll()
            return LoadResult(plan: plan, start: await startLine.startTime, tallies: tallies)
        }
    }

    static func connect(_ endpoint: ServerEndpoint, group: any EventLoopGroup) async throws -> LineChannel {
        try await ClientBootstrap(group: group)
            .channelOption(.socketOption(.tcp_nodelay), value: 1)
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(ByteToMessageHandler(LineBasedFrameDecoder()))
                    return try LineChannel(wrappingChannelSynchronously: channel)
                }
            }
    }

    /// Sends `REGISTER` and returns the new machine's key, skipping pushes.
    static func register(
        _ name: String, lines: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> PaymentKey {
        guard let machine = MachineName(name) else { preconditionFailure("a generated machine name is valid: \(name)") }
        try await outbound.write(ByteBuffer(string: Request.register(machine).line))
        while let buffer = try await lines.next() {
            let text = String(buffer: buffer)
            switch ServerLine.parse(Substring(text)) {
            case .push: continue
            case let .ok(fields):
                // OK|<machine>|<token>|<key>|<cents>
                guard fields.count == 4, let key = PaymentKey(fields[2]) else {
                    throw LoadError.registrationRefused(machine: name, answer: text)
                }
                return key
            default:
                throw LoadError.registrationRefused(machine: name, answer: text)
            }
        }
        throw LoadError.closedEarly
    }

    static func runConnection(
        _ index: Int, plan: LoadPlan, group: any EventLoopGroup, startLine: StartLine
    ) async throws -> ConnectionTally {
        let channel = try await connect(plan.endpoint, group: group)
        return try await channel.executeThenClose { inbound, outbound in
            var lines = inbound.makeAsyncIterator()
            var payeeKey: PaymentKey?
            if plan.mode.needsMachine {
                let key = try await register("\(plan.prefix)-\(index)", lines: &lines, outbound: outbound)
                payeeKey = try await startLine.arrive(index, key: key)
            } else {
                _ = try await startLine.arrive(index, key: nil)
            }
            let deadline = await startLine.deadline
            var requests = RequestSource(index: index, plan: plan, payeeKey: payeeKey)
            return try await drive(
                pipeline: plan.pipeline, deadline: deadline, requests: &requests, lines: &lines, outbound: outbound)
        }
    }

    /// Keeps `pipeline` requests in flight until `deadline`, then reads the
    /// answers still owed. Answers come strictly in order, so a FIFO of send
    /// times gives each answer's latency.
    static func drive(
        pipeline: Int, deadline: UInt64, requests: inout RequestSource,
        lines: inout NIOAsyncChannelInboundStream<ByteBuffer>.AsyncIterator,
        outbound: NIOAsyncChannelOutboundWriter<ByteBuffer>
    ) async throws -> ConnectionTally {
        var tally = ConnectionTally()
        var sentAt = [UInt64](repeating: 0, count: pipeline)
        var oldest = 0
        var inFlight = 0
        var burst = ByteBuffer()
        let now = monotonicNanoseconds()
        for slot in 0..<pipeline {
            burst.writeString(requests.next())
            sentAt[slot] = now
        }
        inFlight = pipeline
        try await outbound.write(burst)
        while inFlight > 0 {
            guard let line = try await lines.next() else {
                tally.errors["connection_closed", default: 0] += 1
                break
            }
            guard let outcome = Outcome(line) else { continue }
            let answeredAt = monotonicNanoseconds()
            tally.latencies.append(answeredAt - sentAt[oldest])
            tally.lastAnswer = answeredAt
            switch outcome {
            case .ok: tally.ok += 1
            case let .error(code): tally.errors[code, default: 0] += 1
            }
            if answeredAt < deadline {
                // The freed slot is reused: it is the newest now.
                sentAt[oldest] = answeredAt
                try await outbound.write(ByteBuffer(string: requests.next()))
            } else {
                inFlight -= 1
            }
            oldest = (oldest + 1) % pipeline
        }
        return tally
    }
}

/// One answer, classified from its first bytes only: the hot loop must not
/// spend the CPU the server needs.
enum Outcome {
    case ok
    case error(String)

    /// `nil` for a push (`EVT|...`), which answers no request.
    init?(_ line: ByteBuffer) {
        let view = line.readableBytesView
        if view.starts(with: "EVT|".utf8) { return nil }
        if view.starts(with: "OK".utf8) {
            self = .ok
            return
        }
        guard view.starts(with: "ERR|".utf8) else {
            self = .error("unparsed_answer")
            return
        }
        let rest = view.dropFirst(4)
        let code = rest.prefix { $0 != UInt8(ascii: "|") }
        self = .error(String(decoding: code, as: UTF8.self))
    }
}

/// The request lines one connection sends, each `SEND` with a fresh request id.
struct RequestSource {
    let index: Int
    let mode: LoadMode
    let prefix: String
    let payeeKey: PaymentKey?
    var sent = 0

    init(index: Int, plan: LoadPlan, payeeKey: PaymentKey?) {
        self.index = index
        self.mode = plan.mode
        self.prefix = plan.prefix
        self.payeeKey = payeeKey
    }

    mutating func next() -> String {
        sent += 1
        switch mode {
        case .ping: return Request.ping.line
        case .balance: return Request.balance.line
        case .send:
            guard let payeeKey, let requestID = RequestID("\(prefix)-\(index)-\(sent)") else {
                preconditionFailure("send mode has a payee key and generated request ids are valid")
            }
            return Request.send(keyText: payeeKey.text, amount: Centavos(1), requestID: requestID).line
        }
    }
}

/// Where every connection waits until all have registered, so that the
/// timed run measures only the requests and each learns its payee's key.
actor StartLine {
    private let plan: LoadPlan
    private var keys: [PaymentKey?]
    private var extraPayee: PaymentKey?
    private var arrived = 0
    private var waiting: [(index: Int, continuation: CheckedContinuation<PaymentKey?, any Error>)] = []
    private var failure: (any Error)?
    private(set) var startTime: UInt64 = 0
    private(set) var deadline: UInt64 = 0

    init(plan: LoadPlan) {
        self.plan = plan
        self.keys = Array(repeating: nil, count: plan.connections)
    }

    func setExtraPayee(_ key: PaymentKey) {
        extraPayee = key
    }

    /// Returns the key of the next machine in the ring once all have arrived.
    func arrive(_ index: Int, key: PaymentKey?) async throws -> PaymentKey? {
        if let failure { throw failure }
        keys[index] = key
        arrived += 1
        return try await withCheckedThrowingContinuation { continuation in
            waiting.append((index, continuation))
            if arrived == plan.connections { release() }
        }
    }

    /// A connection failed before the start: nobody may wait forever.
    func abandon(_ error: any Error) {
        failure = failure ?? error
        let waiters = waiting
        waiting = []
        for waiter in waiters { waiter.continuation.resume(throwing: error) }
    }

    private func release() {
        startTime = monotonicNanoseconds()
        deadline = startTime + UInt64(plan.seconds) * 1_000_000_000
        let waiters = waiting
        waiting = []
        for waiter in waiters {
            let payee = extraPayee ?? keys[(waiter.index + 1) % plan.connections]
            waiter.continuation.resume(returning: payee)
        }
    }
}
