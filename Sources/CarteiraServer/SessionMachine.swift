public import CarteiraCore
public import CarteiraProtocol

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
    case check(keyText: String)
    case send(from: MachineName, keyText: String, amount: Centavos, requestID: RequestID?)
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

    public init(now: Timestamp, bucket: TokenBucket? = nil) {
        self.bucket = bucket ?? TokenBucket(now: now)
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
        // are refused unread while the bucket is empty.
        if request.isRateGuarded && bucket.isEmpty(now: now) {
            return .answer(
                .error(
                    Rejection(.rateLimited, "too many failed key look-ups or logins on this connection; wait a little")
                ))
        }
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
        switch response {
        case let .error(rejection) where rejection.code.isCharged:
            bucket.charge(now: now)
        case let .registered(machine, _, _, _), let .loggedIn(machine, _, _):
            self.machine = machine
        default:
            break
        }
    }

    /// Tokens left in the bucket, for the console.
    public mutating func bucketRemaining(now: Timestamp) -> Int { bucket.remaining(now: now) }

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
