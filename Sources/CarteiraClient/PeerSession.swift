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
    /// The first answer was lost and the retry with the same request id got
    /// it: the payment was still made exactly once.
    public var confirmedAfterRetry: Bool
}

/// A machine's logged-in session with the server that survives dropped
/// connections.
///
/// `run()` keeps one connection: it connects (each attempt bounded by the
/// connect timeout), logs in with the saved token or registers when allowed,
/// and when the connection drops it reconnects with capped exponential
/// back-off and logs in again. Requests wait for a logged-in connection; if
/// none comes within the connect timeout they fail with `cannotConnect`.
/// `withSession` runs a session for the length of a closure.
public actor PeerSession {
    public struct Configuration: Sendable {
        public var server: ServerAddress
        public var machine: MachineName
        public var tokens: TokenStore
        /// Whether a machine with no saved token may be registered.
        public var mayRegister: Bool
        public var connectTimeout: Duration
        public var initialBackoff: Duration = .milliseconds(100)
        public var maximumBackoff: Duration = .seconds(5)
        /// How many times a request whose answer was lost is sent again.
        public var maximumRetries = 5

        public init(server: ServerAddress, machine: MachineName, tokens: TokenStore, mayRegister: Bool, connectTimeout: Duration) {
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
    /// Pushes from every connection the session has had, in order.
    public nonisolated let pushes: AsyncStream<Push>
    private nonisolated let pushSink: AsyncStream<Push>.Continuation
    private var state: State = .connecting(since: .now)
    private var waiters: [CheckedContinuation<Void, Never>] = []
    /// Set by the latest login or registration.
    public private(set) var account: Account?
    /// How many times a connection was logged in; more than one means it reconnected.
    public private(set) var logins = 0

    public init(configuration: Configuration) {
        self.configuration = configuration
        (pushes, pushSink) = AsyncStream.makeStream(of: Push.self)
    }

    /// Runs a session while `body` runs, then stops it.
    public static func withSession<Result: Sendable>(
        _ configuration: Configuration,
        _ body: (PeerSession) async throws -> Result
    ) async throws -> Result {
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
                pushSink.finish()
                return
            case .served:
                delay = configuration.initialBackoff
                setState(.connecting(since: .now))
            case let .couldNotConnect(error):
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
        pushSink.finish()
    }

    private func connectAndServe() async -> Outcome {
        let connection: CarteiraConnection
        do {
            connection = try await CarteiraConnection.connect(to: configuration.server, timeout: configuration.connectTimeout)
        } catch {
            return .couldNotConnect(error)
        }
        return await withTaskCancellationHandler {
            await withTaskGroup(of: Void.self) { group in
                group.addTask { await connection.run() }
                group.addTask { [pushSink] in
                    for await push in connection.pushes { pushSink.yield(push) }
                }
                let outcome: Outcome
                do {
                    try await logIn(on: connection)
                    setState(.ready(connection))
                    await group.waitForAll()
                    outcome = .served
                } catch let error as ClientError {
                    switch error {
                    case .connectionLost, .cannotConnect: outcome = .couldNotConnect(error)
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

    private func logIn(on connection: CarteiraConnection) async throws {
        let machine = configuration.machine
        if let token = try configuration.tokens.load(server: configuration.server, machine: machine) {
            guard case let .loggedIn(name, key, balance) = try await connection.perform(.login(machine, token: token)) else {
                throw ClientError.protocolViolation("LOGIN answer")
            }
            account = Account(machine: name, key: key, balance: balance, registeredNow: account?.registeredNow ?? false)
        } else if configuration.mayRegister {
            guard case let .registered(name, token, key, balance) = try await connection.perform(.register(machine)) else {
                throw ClientError.protocolViolation("REGISTER answer")
            }
            try configuration.tokens.save(token, server: configuration.server, machine: machine)
            account = Account(machine: name, key: key, balance: balance, registeredNow: true)
        } else {
            throw ClientError.notRegistered(machine, server: configuration.server)
        }
        logins += 1
    }

    private func setState(_ newState: State) {
        state = newState
        let woken = waiters
        waiters = []
        for waiter in woken { waiter.resume() }
    }

    /// The logged-in connection, once there is one.
    private func readyConnection() async throws -> CarteiraConnection {
        while true {
            switch state {
            case let .ready(connection): return connection
            case let .unreachable(error): throw error
            case let .failed(error): throw error
            case .stopped: throw ClientError.connectionLost
            case .connecting: await withCheckedContinuation { waiters.append($0) }
            }
        }
    }

    /// A request failed with `connectionLost` on `connection`: stop handing it out.
    private func lost(_ connection: CarteiraConnection) {
        if case let .ready(current) = state, current === connection {
            setState(.connecting(since: .now))
        }
    }

    /// Sends `request` on the logged-in connection; a lost answer is asked again
    /// when `retry` says the request is safe to repeat.
    private func perform(_ request: Request, retry: Bool) async throws -> Response {
        var attempt = 0
        while true {
            let connection = try await readyConnection()
            do {
                return try await connection.perform(request)
            } catch ClientError.connectionLost where retry && attempt < configuration.maximumRetries {
                attempt += 1
                lost(connection)
            }
        }
    }

    private func unexpected(_ request: Request) -> ClientError {
        .protocolViolation("unexpected answer to \(request.name)")
    }

    /// Waits until the session is logged in and returns what the login said.
    @discardableResult
    public func loggedIn() async throws -> Account {
        _ = try await readyConnection()
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
        guard case let .rotated(key, expires) = try await perform(.rotate, retry: false) else { throw unexpected(.rotate) }
        return KeyInfo(key: key, expires: expires)
    }

    /// The name of the machine that owns `key`.
    public func check(_ key: PaymentKey) async throws -> MachineName {
        let request = Request.check(keyText: key.text)
        guard case let .owner(machine) = try await perform(request, retry: true) else { throw unexpected(request) }
        return machine
    }

    public func history(limit: Int = HistoryLimit.defaultValue) async throws -> [HistoryEntry] {
        let request = Request.history(limit: limit)
        guard case let .history(entries) = try await perform(request, retry: true) else { throw unexpected(request) }
        return entries
    }

    /// Pays `amount` to the owner of `key`. A lost answer is retried with the
    /// same `requestID`, which the server answers with the first transfer's
    /// `OK`, so the payment is made at most once; when no retry gets through,
    /// this throws `paymentOutcomeUnknown`.
    public func send(key: PaymentKey, amount: Centavos, requestID: RequestID) async throws -> SendReceipt {
        let request = Request.send(keyText: key.text, amount: amount, requestID: requestID)
        var lostAnswers = 0
        while true {
            let connection: CarteiraConnection
            do {
                connection = try await readyConnection()
            } catch where lostAnswers > 0 {
                throw ClientError.paymentOutcomeUnknown(requestID)
            }
            do {
                guard case let .sent(tx, balance, _) = try await connection.perform(request) else { throw unexpected(request) }
                return SendReceipt(tx: tx, balance: balance, requestID: requestID, confirmedAfterRetry: lostAnswers > 0)
            } catch ClientError.connectionLost {
                lostAnswers += 1
                guard lostAnswers <= configuration.maximumRetries else { throw ClientError.paymentOutcomeUnknown(requestID) }
                lost(connection)
            }
        }
    }
}
