public import CarteiraCore
public import CarteiraProtocol
public import NIOCore
import Synchronization

/// Whether the server takes changes.
public enum ServingState: Sendable, Hashable {
    case serving
    case shuttingDown
    case journalFailed
}

extension ServingState {
    static let journalUnavailable = Rejection(.unavailable, "server cannot write its journal; nothing was done")

    /// The answer to every change while not serving.
    var refusal: Rejection? {
        switch self {
        case .serving: nil
        case .shuttingDown: Rejection(.unavailable, "server is shutting down; nothing was done")
        case .journalFailed: Self.journalUnavailable
        }
    }
}

/// What one session asks of the single owner of the ledger. The session has
/// already checked everything that needs no ledger state.
public enum LedgerQuery: Sendable, Hashable {
    case register(MachineName)
    case login(MachineName, token: Token?)
    case whoami(MachineName)
    case balance(MachineName)
    case key(MachineName)
    case rotate(MachineName)
    case check(keyText: KeyText)
    case send(from: MachineName, keyText: KeyText, amount: Centavos, requestID: RequestID?)
    case history(MachineName, limit: Int)
}

/// What the connection does with one line. Every answer is written in
/// request order; only answers from the ledger wait for the journal.
public enum SessionAction: Sendable, Hashable {
    /// Not a request (an empty line, or input after the session ended).
    case ignore
    /// Answer now: the answer reflects no ledger state.
    case answer(Response)
    /// Answer, then close the connection once it is written.
    case answerAndClose(Response)
    /// Ask the ledger owner; its answer waits until what it reflects is durable.
    case ask(LedgerQuery)
}

/// The protocol rules of one session (PROTOCOL.md, Session, Limits and Error
/// codes) as a pure state machine: which machine it is bound to, its
/// rate-limit bucket, the order of the checks that need no ledger state, and
/// when it ends. The connection handler performs the actions; the clock is
/// passed in.
public struct SessionMachine: Sendable {
    public private(set) var machine: MachineName?
    /// After `QUIT` or an over-long line nothing more is read.
    public private(set) var ended = false
    private var bucket: TokenBucket
    /// The buckets shared with every other connection, this peer's key in
    /// them, and where the console reads whether this connection is limited.
    private var shared: (limits: RateLimits, address: String, state: ConnectionRateState)?
    /// The machine of the `LOGIN` being asked, whose failure its bucket pays.
    private var loggingIn: MachineName?

    public init(now: Timestamp, bucket: TokenBucket? = nil) {
        self.bucket = bucket ?? TokenBucket(now: now)
    }

    /// Charges this session's failures to the buckets of its remote address
    /// (see `RateLimits.addressKey`) and of the machine names it fails to
    /// log in as, besides its own.
    public mutating func share(_ limits: RateLimits, address: String, state: ConnectionRateState) {
        shared = (limits, address, state)
    }

    /// One parsed line (`nil` for an empty one).
    public mutating func receive(
        _ parsed: Result<Request, Rejection>?, serving: ServingState, now: Timestamp
    ) -> SessionAction {
        guard !ended, let parsed else { return .ignore }
        let request: Request
        switch parsed {
        case let .failure(rejection): return .answer(.error(rejection))
        case let .success(parsedRequest): request = parsedRequest
        }
        if request == .quit {
            ended = true
            return .answerAndClose(.bye)
        }
        if request == .ping { return .answer(.pong) }
        if let refusal = serving.refusal { return .answer(.error(refusal)) }
        guard let query = query(for: request) else {
            return .answer(.error(Rejection(.notLoggedIn, "\(request.name) needs REGISTER or LOGIN first")))
        }
        switch request {
        case .register, .login:
            if let machine {
                return .answer(.error(Rejection(.alreadyLoggedIn, "this session is already \(machine)")))
            }
        default: break
        }
        // The one rate-limit check (PROTOCOL.md, Limits): guarded commands
        // are refused unread while any bucket they are charged to is empty.
        if request.isRateGuarded, let refusal = rateLimitRefusal(request, now: now) {
            return .answer(.error(refusal))
        }
        if case let .login(name, _) = query { loggingIn = name } else { loggingIn = nil }
        return .ask(query)
    }

    /// A line over the length limit: answered, then the connection closes.
    public mutating func receiveTooLong() -> SessionAction {
        guard !ended else { return .ignore }
        ended = true
        return .answerAndClose(
            .error(Rejection(.lineTooLong, "a line may hold at most \(maximumLineBytes) bytes; closing")))
    }

    /// The owner's answer to `ask`: charges the bucket for a charged refusal
    /// and binds the session after `REGISTER` or `LOGIN`.
    public mutating func answered(_ response: Response, now: Timestamp) {
        let login = loggingIn
        loggingIn = nil
        switch response {
        case let .error(rejection) where rejection.code.isCharged:
            bucket.charge(now: now)
            guard let shared else { return }
            shared.limits.addresses.charge(shared.address, now: now)
            if rejection.code == .badToken, let login { shared.limits.machines.charge(login, now: now) }
            if let until = bucket.emptyUntil(now: now) { shared.state.limited(until: until) }
        case let .registered(machine, _, _, _), let .loggedIn(machine, _, _):
            self.machine = machine
        default:
            break
        }
    }

    /// Tokens left in the bucket, for the console.
    public mutating func bucketRemaining(now: Timestamp) -> Int { bucket.remaining(now: now) }

    /// The refusal of a guarded request while one of its buckets is empty:
    /// this connection's, then its address's, then (for `LOGIN`) the
    /// machine's.
    private mutating func rateLimitRefusal(_ request: Request, now: Timestamp) -> Rejection? {
        if bucket.isEmpty(now: now) {
            shared?.limits.countConnectionRefusal()
            return Rejection(.rateLimited, "too many failed key look-ups or logins on this connection; wait a little")
        }
        guard let shared else { return nil }
        if shared.limits.addresses.isEmpty(shared.address, now: now) {
            return Rejection(
                .rateLimited,
                "too many failed key look-ups or logins from your address (\(shared.address)); wait a little")
        }
        if case let .login(name, _) = request, shared.limits.machines.isEmpty(name, now: now) {
            return Rejection(.rateLimited, "too many failed logins as \(name) from anywhere; wait a little")
        }
        return nil
    }

    /// What to ask the owner; `nil` when the command needs a session and
    /// this one has no machine.
    private func query(for request: Request) -> LedgerQuery? {
        switch request {
        case let .register(name): return .register(name)
        case let .login(name, token): return .login(name, token: token)
        case let .check(keyText): return .check(keyText: keyText)
        case .ping, .quit: preconditionFailure("PING and QUIT are answered by the session")
        default: break
        }
        guard let bound = machine else { return nil }
        switch request {
        case .whoami: return .whoami(bound)
        case .balance: return .balance(bound)
        case .key: return .key(bound)
        case .rotate: return .rotate(bound)
        case let .send(keyText, amount, requestID):
            return .send(from: bound, keyText: keyText, amount: amount, requestID: requestID)
        case let .history(limit): return .history(bound, limit: limit)
        case .ping, .quit, .register, .login, .check: return nil
        }
    }
}

extension Request {
    /// The commands that the rate-limit bucket guards.
    var isRateGuarded: Bool {
        switch self {
        case .login, .check, .send: true
        default: false
        }
    }
}

/// The rate-limit buckets every connection shares (docs/protocol.md,
/// Limits): failed key look-ups and logins are charged to the remote
/// address's bucket, failed logins also to the machine name's, besides the
/// connection's own. Reconnecting gets no fresh allowance, and guessing one
/// machine's token from many addresses is as slow as from one.
public final class RateLimits: Sendable {
    /// Five connection buckets: a few honest peers behind one NAT address
    /// may each make mistakes, a scanner that reconnects gains nothing.
    public static let defaultAddressCapacity = 5 * TokenBucket.defaultCapacity
    /// Two connection buckets: a machine's owner retrying from a second
    /// place still gets in; guessing from many addresses gets no more.
    public static let defaultMachineCapacity = 2 * TokenBucket.defaultCapacity

    public let addresses: SharedBuckets<String>
    public let machines: SharedBuckets<MachineName>
    private let connectionRefusals = Atomic<Int64>(0)

    public init(
        addressCapacity: Int = RateLimits.defaultAddressCapacity,
        machineCapacity: Int = RateLimits.defaultMachineCapacity,
        refillMilliseconds: Int64 = TokenBucket.defaultRefillMilliseconds,
        maximumKeys: Int = 65_536
    ) {
        addresses = SharedBuckets(
            capacity: addressCapacity, refillMilliseconds: refillMilliseconds, maximumKeys: maximumKeys)
        machines = SharedBuckets(
            capacity: machineCapacity, refillMilliseconds: refillMilliseconds, maximumKeys: maximumKeys)
    }

    func countConnectionRefusal() {
        connectionRefusals.wrappingAdd(1, ordering: .relaxed)
    }

    /// Requests answered `rate_limited`, whichever bucket was empty.
    public var refusals: Int64 {
        connectionRefusals.load(ordering: .relaxed) + addresses.refusalCount + machines.refusalCount
    }

    /// The key a peer's address is charged under: an IPv4 address as is
    /// (also when it reaches a dual-stack listener as `::ffff:a.b.c.d`), an
    /// IPv6 address by its /64, the block one subscriber is usually given.
    public static func addressKey(_ address: SocketAddress?) -> String {
        switch address {
        case .v4:
            return address?.ipAddress ?? "unknown"
        case let .v6(v6):
            let bytes = withUnsafeBytes(of: v6.address.sin6_addr) { Array($0) }
            if bytes[0..<10].allSatisfy({ $0 == 0 }), bytes[10] == 0xff, bytes[11] == 0xff {
                return "\(bytes[12]).\(bytes[13]).\(bytes[14]).\(bytes[15])"
            }
            var groups: [String] = []
            for index in stride(from: 0, to: 8, by: 2) {
                groups.append(String(UInt16(bytes[index]) << 8 | UInt16(bytes[index + 1]), radix: 16))
            }
            return groups.joined(separator: ":") + "::/64"
        case .unixDomainSocket, .none:
            return "local"
        }
    }
}

/// Whether one connection's own bucket is empty, readable by the console
/// from any thread.
public final class ConnectionRateState: Sendable {
    private let limitedUntil = Atomic<Int64>(0)

    public init() {}

    func limited(until: Timestamp) {
        limitedUntil.store(until.milliseconds, ordering: .relaxed)
    }

    public func isLimited(now: Timestamp) -> Bool {
        now.milliseconds < limitedUntil.load(ordering: .relaxed)
    }
}
