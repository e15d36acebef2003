public import CarteiraCore
public import CarteiraProtocol

/// What a session knows about its machine after logging in or registering.
public struct Account: Sendable, Hashable {
    public var machine: MachineName
    public var key: PaymentKey
    public var balance: Centavos
    /// Whether this session created the machine (`REGISTER`) rather than logging in.
    public var registeredNow: Bool
}

/// The current key and when the server will replace it.
public struct KeyInfo: Sendable, Hashable {
    public var key: PaymentKey
    public var expires: Timestamp
}

/// `WHOAMI`.
public struct Identity: Sendable, Hashable {
    public var machine: MachineName
    public var key: PaymentKey
    public var balance: Centavos
    public var keyExpires: Timestamp
}

/// A payment the server accepted.
public struct SendReceipt: Sendable, Hashable {
    public var tx: TxID
    /// The sender's balance after it.
    public var balance: Centavos
    public var requestID: RequestID
    /// The server that answered (one of several given: the leader).
    public var server: ServerAddress
    /// The first answer was lost and the retry with the same request id got
    /// it: the payment was still made exactly once.
    public var confirmedAfterRetry: Bool
    /// The server answered `OK|tx|cents|again`: this request id had already
    /// been carried out, so no money moved for this answer.
    public var alreadyDone: Bool
}

/// What a session tells the program besides answers.
public enum SessionEvent: Sendable, Hashable {
    /// A push the server wrote (`EVT|...`).
    case push(Push)
    /// A transfer to this machine made while the session was reconnecting,
    /// found in `HISTORY` after logging in again (only with `catchUp`).
    case missed(HistoryEntry)
    /// The logged-in connection dropped; the session is reconnecting.
    case reconnecting
    /// Logged in again after `reconnecting` (and, with `catchUp`, the
    /// missed transfers follow before any live push).
    case reconnected
}

/// A machine's logged-in session with the server that survives dropped
/// connections.
///
/// `run()` keeps one connection: it connects (each attempt bounded by the
/// connect timeout), logs in with the saved token or registers when allowed
/// (bounded by the request timeout), and when the connection drops it
/// reconnects with capped exponential back-off and logs in again. Every
/// request has a deadline, the request timeout, that covers waiting for a
/// logged-in connection, the answer and any retry; past it the connection the
/// request was written on is abandoned (reset), so the server cannot carry it
/// out later from that connection. `withSession` runs a session for the
/// length of a closure.
public actor PeerSession {
    public struct Configuration: Sendable {
        public var server: ServerAddress
        public var machine: MachineName
        public var tokens: TokenStore
        /// Whether a machine with no saved token may be registered.
        public var mayRegister: Bool
        public var connectTimeout: Duration
        /// The deadline of every request, counted from when it is asked.
        public var requestTimeout: Duration = .seconds(10)
        /// After every reconnect, fetch `HISTORY` and report the transfers
        /// received meanwhile (`SessionEvent.missed`) before live pushes.
        public var catchUp = false
        public var initialBackoff: Duration = .milliseconds(100)
        public var maximumBackoff: Duration = .seconds(5)
        /// How many times a request whose answer was lost is sent again.
        public var maximumRetries = 5
        /// More servers sharing the same journal (leaders and standbys on
        /// PostgreSQL). The session tries `server`, then these in turn, and
        /// moves on when one refuses the connection, closes it or answers
        /// `unavailable`. Tokens are saved under `server`.
        public var alternates: [ServerAddress] = []

        /// `server`, then `alternates`.
        public var addresses: [ServerAddress] { [server] + alternates.filter { $0 != server } }

        /// Speak TLS and check the server's certificate (`--tls`).
        public var tls: ClientTLS?

        public init(
            server: ServerAddress, machine: MachineName, tokens: TokenStore, mayRegister: Bool, connectTimeout: Duration
        ) {
            self.server = server
            self.machine = machine
            self.tokens = tokens
            self.mayRegister = mayRegister
            self.connectTimeout = connectTimeout
        }
    }

    private enum State {
        case connecting(since: ContinuousClock.Instant)
        case ready(CarteiraConnection)
        /// No connection within the connect timeout; `run()` keeps trying.
        case unreachable(ClientError)
        /// Login failed for good (refused, no token); `run()` has returned.
        case failed(any Error)
        case stopped
    }

    private enum Outcome {
        case served
        case couldNotConnect(ClientError)
        case fatal(any Error)
    }

    public let configuration: Configuration
    /// Pushes from every connection the session has had, in order, and the
    /// reconnect events between them.
    public nonisolated let events: AsyncStream<SessionEvent>
    private nonisolated let eventSink: AsyncStream<SessionEvent>.Continuation
    private var state: State = .connecting(since: .now)
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Set by the latest login or registration.
    public private(set) var account: Account?
    /// How many times a connection was logged in; more than one means it reconnected.
    public private(set) var logins = 0
    /// Which of `configuration.addresses` the session connects to now.
    private var addressIndex = 0
    /// The server the session connects to (or last did).
    public var currentServer: ServerAddress {
        let addresses = configuration.addresses
        return addresses[addressIndex % addresses.count]
    }

    // Catch-up bookkeeping (only with `catchUp`).
    /// The newest transfer this session has accounted for.
    private var newestKnown: TxID?
    private var hasBaseline = false
    /// Received transfers already reported, so a push is never shown twice.
    private var reported: Set<TxID> = []
    private var reportedOrder: [TxID] = []
    static let reportedLimit = 4096

    public init(configuration: Configuration) {
        self.configuration = configuration
        (events, eventSink) = AsyncStream.makeStream(of: SessionEvent.self)
    }

    /// Runs a session while `body` runs, then stops it. Without a saved token
    /// and without leave to register this fails at once, without connecting.
    public static func withSession<Result: Sendable>(
        _ configuration: Configuration,
        _ body: (PeerSession) async throws -> Result
    ) async throws -> Result {
        if !configuration.mayRegister,
            try configuration.tokens.load(server: configuration.server, machine: configuration.machine) == nil
        {
            throw ClientError.notRegistered(
                configuration.machine, server: configuration.server,
                path: configuration.tokens.path(server: configuration.server, machine: configuration.machine))
        }
        let session = PeerSession(configuration: configuration)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { await session.run() }
            defer { group.cancelAll() }
            return try await body(session)
        }
    }

    /// Keeps the session connected and logged in until the task is cancelled
    /// or login fails for good.
    public func run() async {
        var delay = configuration.initialBackoff
        setState(.connecting(since: .now))
        while !Task.isCancelled {
            switch await connectAndServe() {
            case let .fatal(error):
                setState(.failed(error))
                eventSink.finish()
                return
            case .served:
                delay = movedOn ? .milliseconds(1) : configuration.initialBackoff
                movedOn = false
                setState(.connecting(since: .now))
                if !Task.isCancelled { eventSink.yield(.reconnecting) }
            case let .couldNotConnect(error):
                // The next address is tried at once; a whole round without
                // one backs off as before.
                moveOn()
                if addressIndex != 0 {
                    do { try await Task.sleep(for: .milliseconds(1)) } catch { break }
                    continue
                }
                if case let .connecting(since) = state, ContinuousClock.now - since >= configuration.connectTimeout {
                    setState(.unreachable(error))
                }
            }
            // Do not sleep past the connect deadline: waiting requests learn it on time.
            var pause = delay
            if case let .connecting(since) = state {
                pause = max(.milliseconds(1), min(delay, since + configuration.connectTimeout - .now))
            }
            do { try await Task.sleep(for: pause) } catch { break }
            delay = min(delay * 2, configuration.maximumBackoff)
        }
        setState(.stopped)
        eventSink.finish()
    }

    private func connectAndServe() async -> Outcome {
        let connection: CarteiraConnection
        do {
            connection = try await CarteiraConnection.connect(
                to: currentServer, timeout: configuration.connectTimeout, tls: configuration.tls)
        } catch {
            // A certificate that fails the check will fail it again.
            if case .tlsFailed = error { return .fatal(error) }
            return .couldNotConnect(error)
        }
        return await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await connection.run() }
                let outcome: Outcome
                do {
                    let reconnected = logins > 0
                    try await logIn(on: connection)
                    if configuration.catchUp { try await catchUp(on: connection, reconnected: reconnected) }
                    if reconnected { eventSink.yield(.reconnected) }
                    for entry in missedNow { eventSink.yield(.missed(entry)) }
                    missedNow = []
                    // Pushes waited in the connection's stream until now, so
                    // none overtakes the missed transfers.
                    group.addTask {
                        for await push in connection.pushes { await self.forward(push) }
                    }
                    setState(.ready(connection))
                    await group.waitForAll()
                    outcome = .served
                } catch let error as ClientError {
                    switch error {
                    case .connectionLost, .cannotConnect, .timedOut: outcome = .couldNotConnect(error)
                    case .refused where error.errorCode == .unavailable: outcome = .couldNotConnect(error)
                    default: outcome = .fatal(error)
                    }
                } catch {
                    outcome = .fatal(error)
                }
                connection.close()
                return outcome
            }
        } onCancel: {
            connection.close()
        }
    }

    private var missedNow: [HistoryEntry] = []

    /// The current server closed, refused or is a standby: try the next.
    private func moveOn() {
        addressIndex = (addressIndex + 1) % configuration.addresses.count
    }

    /// Set when a request was answered `unavailable`: the connection is
    /// dropped and the next address tried without a pause.
    private var movedOn = false

    /// `connection`'s server answered `unavailable` (a standby, or a leader
    /// that lost its journal): leave it for the next address.
    private func leave(_ connection: CarteiraConnection) {
        if case let .ready(current) = state, current === connection {
            moveOn()
            movedOn = true
            setState(.connecting(since: .now))
        }
        connection.close()
    }

    private func timeoutError() -> ClientError {
        .timedOut(configuration.server, seconds: configuration.requestTimeout.seconds)
    }

    private func logIn(on connection: CarteiraConnection) async throws {
        let machine = configuration.machine
        let deadline = ContinuousClock.now + configuration.requestTimeout
        let tokenPath = configuration.tokens.path(server: configuration.server, machine: machine)
        if let token = try configuration.tokens.load(server: configuration.server, machine: machine) {
            let answer: Response
            do {
                answer = try await connection.perform(
                    .login(machine, token: token), deadline: deadline, timeoutError: timeoutError())
            } catch let error as ClientError where error.errorCode == .badToken || error.errorCode == .unknownMachine {
                throw ClientError.staleToken(machine, server: configuration.server, path: tokenPath, code: error.code)
            }
            guard case let .loggedIn(name, key, balance) = answer else {
                throw ClientError.protocolViolation("unexpected answer to LOGIN")
            }
            account = Account(machine: name, key: key, balance: balance, registeredNow: account?.registeredNow ?? false)
        } else if configuration.mayRegister {
            let answer = try await connection.perform(
                .register(machine), deadline: deadline, timeoutError: timeoutError())
            guard case let .registered(name, token, key, balance) = answer else {
                throw ClientError.protocolViolation("unexpected answer to REGISTER")
            }
            try configuration.tokens.save(token, server: configuration.server, machine: machine)
            account = Account(machine: name, key: key, balance: balance, registeredNow: true)
        } else {
            throw ClientError.notRegistered(machine, server: configuration.server, path: tokenPath)
        }
        logins += 1
    }

    /// The first time, notes the newest transfer; after a reconnect, finds
    /// the transfers received since the newest one accounted for.
    private func catchUp(on connection: CarteiraConnection, reconnected: Bool) async throws {
        let deadline = ContinuousClock.now + configuration.requestTimeout
        guard hasBaseline else {
            guard
                case let .history(entries) = try await connection.perform(
                    .history(limit: 1), deadline: deadline, timeoutError: timeoutError())
            else { throw ClientError.protocolViolation("unexpected answer to HISTORY") }
            newestKnown = entries.first?.tx
            hasBaseline = true
            return
        }
        guard
            case let .history(entries) = try await connection.perform(
                .history(limit: HistoryLimit.range.upperBound), deadline: deadline, timeoutError: timeoutError())
        else { throw ClientError.protocolViolation("unexpected answer to HISTORY") }
        // Newest first: everything before the newest known transfer is new.
        let cut = newestKnown.flatMap { known in entries.firstIndex { $0.tx == known } } ?? entries.endIndex
        let me = account?.machine ?? configuration.machine
        var missed: [HistoryEntry] = []
        for entry in entries[..<cut].reversed() where entry.to == me && !reported.contains(entry.tx) {
            missed.append(entry)
            remember(entry.tx)
        }
        missedNow = missed
        if let newest = entries.first?.tx { newestKnown = newest }
    }

    private func remember(_ tx: TxID) {
        guard reported.insert(tx).inserted else { return }
        reportedOrder.append(tx)
        if reportedOrder.count > Self.reportedLimit {
            reported.remove(reportedOrder.removeFirst())
        }
    }

    private func forward(_ push: Push) {
        if configuration.catchUp, case let .received(tx, _, _, _) = push {
            guard !reported.contains(tx) else { return }
            remember(tx)
            newestKnown = tx
        }
        eventSink.yield(.push(push))
    }

    private func setState(_ newState: State) {
        state = newState
        wakeWaiters()
    }

    private func wakeWaiters() {
        let woken = waiters
        waiters = []
        for waiter in woken { waiter.resume() }
    }

    /// The logged-in connection, once there is one; past `deadline`, the
    /// request timeout error.
    private func readyConnection(until deadline: ContinuousClock.Instant) async throws -> CarteiraConnection {
        while true {
            switch state {
            case let .ready(connection): return connection
            case let .unreachable(error): throw error
            case let .failed(error): throw error
            case .stopped: throw ClientError.connectionLost
            case .connecting:
                guard ContinuousClock.now < deadline else { throw timeoutError() }
                await withTaskGroup(of: Void.self) { group in
                    group.addTask {
                        do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return }
                        await self.wakeWaiters()
                    }
                    await withCheckedContinuation { waiters.append($0) }
                    group.cancelAll()
                }
            }
        }
    }

    /// A request failed on `connection`: stop handing it out.
    private func lost(_ connection: CarteiraConnection) {
        if case let .ready(current) = state, current === connection {
            setState(.connecting(since: .now))
        }
    }

    /// Sends `request` on the logged-in connection within the request
    /// timeout; a lost answer is asked again when `retry` says the request
    /// is safe to repeat.
    private func perform(_ request: Request, retry: Bool) async throws -> Response {
        let deadline = ContinuousClock.now + configuration.requestTimeout
        var attempt = 0
        while true {
            let connection = try await readyConnection(until: deadline)
            do {
                return try await connection.perform(request, deadline: deadline, timeoutError: timeoutError())
            } catch ClientError.connectionLost where retry && attempt < configuration.maximumRetries {
                attempt += 1
                lost(connection)
            } catch let error as ClientError
                where error.errorCode == .unavailable && configuration.addresses.count > 1 && retry
                && attempt < configuration.maximumRetries
            {
                attempt += 1
                leave(connection)
            } catch let error as ClientError {
                if case .timedOut = error { lost(connection) }
                throw error
            }
        }
    }

    private func unexpected(_ request: Request) -> ClientError {
        .protocolViolation("unexpected answer to \(request.name)")
    }

    /// Waits until the session is logged in and returns what the login said.
    @discardableResult
    public func loggedIn() async throws -> Account {
        _ = try await readyConnection(until: ContinuousClock.now + configuration.requestTimeout)
        guard let account else { throw ClientError.connectionLost }
        return account
    }

    public func whoami() async throws -> Identity {
        guard case let .whoami(machine, key, balance, expires) = try await perform(.whoami, retry: true) else {
            throw unexpected(.whoami)
        }
        return Identity(machine: machine, key: key, balance: balance, keyExpires: expires)
    }

    public func balance() async throws -> Centavos {
        guard case let .balance(balance) = try await perform(.balance, retry: true) else { throw unexpected(.balance) }
        return balance
    }

    public func key() async throws -> KeyInfo {
        guard case let .key(key, expires) = try await perform(.key, retry: true) else { throw unexpected(.key) }
        return KeyInfo(key: key, expires: expires)
    }

    /// Not retried when the answer is lost: a second `ROTATE` would replace the key again.
    public func rotate() async throws -> KeyInfo {
        guard case let .rotated(key, expires) = try await perform(.rotate, retry: false) else {
            throw unexpected(.rotate)
        }
        return KeyInfo(key: key, expires: expires)
    }

    /// The name of the machine that owns `key`.
    public func check(_ key: PaymentKey) async throws -> MachineName {
        let request = Request.check(keyText: KeyText(key))
        guard case let .owner(machine) = try await perform(request, retry: true) else { throw unexpected(request) }
        return machine
    }

    public func history(limit: Int = HistoryLimit.defaultValue) async throws -> [HistoryEntry] {
        let request = Request.history(limit: limit)
        guard case let .history(entries) = try await perform(request, retry: true) else { throw unexpected(request) }
        return entries
    }

    /// A statement: the latest transfers with the balance after each, taken
    /// from one consistent moment: `HISTORY`, `BALANCE`, then `HISTORY|1`;
    /// when a transfer slipped in between (the newest differs), asked again.
    public func statement(limit: Int = HistoryLimit.defaultValue) async throws -> Statement {
        let me = account?.machine ?? configuration.machine
        for _ in 0..<3 {
            let all = try await history(limit: limit)
            let now = try await balance()
            let check = try await history(limit: 1)
            if all.first?.tx == check.first?.tx { return Statement(machine: me, entries: all, balance: now) }
        }
        return Statement(
            machine: me, entries: try await history(limit: limit), balance: try await balance(), exact: false)
    }

    /// Pays `amount` to the owner of `key`, within the request timeout. A
    /// lost answer is retried with the same `requestID`, which the server
    /// answers with the first transfer's `OK`, so the payment is made at
    /// most once. Past the deadline this throws `paymentOutcomeUnknown` when
    /// the `SEND` was written, `paymentNotSent` when it never was.
    public func send(key: PaymentKey, amount: Centavos, requestID: RequestID) async throws -> SendReceipt {
        let request = Request.send(keyText: KeyText(key), amount: amount, requestID: requestID)
        let deadline = ContinuousClock.now + configuration.requestTimeout
        var written = false
        var lostAnswers = 0
        while true {
            let connection: CarteiraConnection
            do {
                connection = try await readyConnection(until: deadline)
            } catch let error as ClientError where error.isReachability {
                throw written
                    ? ClientError.paymentOutcomeUnknown(requestID, because: error.message)
                    : ClientError.paymentNotSent(requestID, because: error.message)
            }
            written = true
            do {
                guard
                    case let .sent(tx, balance, again) = try await connection.perform(
                        request, deadline: deadline, timeoutError: timeoutError())
                else { throw unexpected(request) }
                return SendReceipt(
                    tx: tx, balance: balance, requestID: requestID, server: connection.address,
                    confirmedAfterRetry: lostAnswers > 0, alreadyDone: again)
            } catch let error as ClientError
                where error.errorCode == .unavailable && configuration.addresses.count > 1
            {
                // A standby, or a leader that could not make it durable: the
                // same request id on the next server is made at most once.
                lostAnswers += 1
                leave(connection)
                guard lostAnswers <= configuration.maximumRetries else {
                    throw ClientError.paymentOutcomeUnknown(
                        requestID, because: "no server of \(configuration.addresses.count) took it")
                }
            } catch ClientError.connectionLost {
                lostAnswers += 1
                lost(connection)
                guard lostAnswers <= configuration.maximumRetries else {
                    throw ClientError.paymentOutcomeUnknown(
                        requestID, because: "the connection to the server was lost \(lostAnswers) times")
                }
            } catch let error as ClientError {
                guard case .timedOut = error else { throw error }
                lost(connection)
                throw ClientError.paymentOutcomeUnknown(requestID, because: error.message)
            }
        }
    }
}

/// A machine's transfers with the balance after each (newest first).
public struct Statement: Sendable, Hashable {
    public struct Line: Sendable, Hashable {
        public var entry: HistoryEntry
        /// Whether money came in.
        public var received: Bool
        /// The other machine.
        public var counterparty: MachineName
        /// `+amount` when received, `-amount` when sent.
        public var change: Centavos
        /// This machine's balance right after the transfer.
        public var balanceAfter: Centavos
    }

    public var balance: Centavos
    public var lines: [Line]
    /// False when transfers kept arriving while it was taken, so the running
    /// balance may be off by them.
    public var exact: Bool

    public init(machine: MachineName, entries: [HistoryEntry], balance: Centavos, exact: Bool = true) {
        self.balance = balance
        self.exact = exact
        var after = balance
        var lines: [Line] = []
        for entry in entries {
            let received = entry.to == machine
            let change = Centavos(received ? entry.amount.value : -entry.amount.value)
            lines.append(
                Line(
                    entry: entry, received: received, counterparty: received ? entry.from : entry.to, change: change,
                    balanceAfter: after))
            // The balance before this transfer is the balance after the next older one.
            after = after.subtracting(change) ?? after
        }
        self.lines = lines
    }
}
