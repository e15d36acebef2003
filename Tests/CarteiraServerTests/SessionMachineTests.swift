import CarteiraCore
import CarteiraProtocol
import CarteiraServer
import Testing

/// Drives the pure session state machine without sockets, with the clock
/// passed in.
private struct Driver {
    var session: SessionMachine
    var now = Timestamp(milliseconds: 1_800_000_000_000)
    var serving = ServingState.serving

    init() {
        session = SessionMachine(now: now)
    }

    mutating func receive(_ line: String) -> SessionAction {
        session.receive(Request.parse(line[...]), serving: serving, now: now)
    }

    /// Receives `line`, and if it asks the ledger, answers it with `response`.
    mutating func exchange(_ line: String, ledgerAnswers response: Response) -> SessionAction {
        let action = receive(line)
        if case .ask = action { session.answered(response, now: now) }
        return action
    }
}

private let key = "0f8d3c1e-6b2a-4c9e-9a7d-3e5f1b2c4d6e"
private let token = String(repeating: "a", count: 32)
private let alice = MachineName("alice")
private let unknownKey = Response.error(Rejection(.unknownKey, "no machine has that key"))

private func code(_ action: SessionAction) -> ErrorCode? {
    if case let .answer(.error(rejection)) = action { return rejection.code }
    if case let .answerAndClose(.error(rejection)) = action { return rejection.code }
    return nil
}

private func asks(_ action: SessionAction) -> Bool {
    if case .ask = action { return true }
    return false
}

@Suite("The session state machine, without sockets")
struct SessionMachineTests {
    @Test("PING and malformed lines are answered by the session itself; an empty line gets nothing")
    func answeredBySession() {
        var driver = Driver()
        #expect(driver.receive("PING") == .answer(.pong))
        #expect(driver.receive("") == .ignore)
        #expect(code(driver.receive("SEND|x")) == .badRequest)
        #expect(code(driver.receive("PAY|x")) == .unknownCommand)
    }

    @Test("session commands need a machine; REGISTER and LOGIN bind it, and then are already_logged_in")
    func binding() throws {
        var driver = Driver()
        for line in ["WHOAMI", "BALANCE", "KEY", "ROTATE", "HISTORY", "SEND|\(key)|1"] {
            #expect(code(driver.receive(line)) == .notLoggedIn, "\(line)")
        }
        #expect(driver.receive("CHECK|\(key)") == .ask(.check(keyText: KeyText(key))))
        let name = try #require(alice)
        let token = try #require(Token(token))
        let registered = Response.registered(
            machine: name, token: token, key: try #require(PaymentKey(key)), balance: Centavos(10_000))
        #expect(driver.exchange("REGISTER|alice", ledgerAnswers: registered) == .ask(.register(name)))
        #expect(driver.session.machine == name)
        #expect(driver.receive("BALANCE") == .ask(.balance(name)))
        #expect(code(driver.receive("REGISTER|bob")) == .alreadyLoggedIn)
        #expect(code(driver.receive("LOGIN|bob|\(token.text)")) == .alreadyLoggedIn)
    }

    @Test("a refused REGISTER binds nothing")
    func refusedRegister() {
        var driver = Driver()
        _ = driver.exchange("REGISTER|alice", ledgerAnswers: .error(Rejection(.machineExists, "taken")))
        #expect(driver.session.machine == nil)
        #expect(code(driver.receive("BALANCE")) == .notLoggedIn)
    }

    @Test(
        "30 charged answers empty the bucket: CHECK, SEND and LOGIN are refused unasked, others still ask; one token returns every 2 s"
    )
    func rateLimit() {
        var driver = Driver()
        for _ in 0..<TokenBucket.defaultCapacity {
            #expect(asks(driver.exchange("CHECK|\(key)", ledgerAnswers: unknownKey)))
        }
        #expect(code(driver.receive("CHECK|\(key)")) == .rateLimited)
        #expect(code(driver.receive("LOGIN|alice|\(token)")) == .rateLimited)
        #expect(asks(driver.receive("REGISTER|alice")))
        #expect(driver.receive("PING") == .answer(.pong))
        // Form errors come before the rate limit.
        #expect(code(driver.receive("CHECK")) == .badRequest)
        driver.now = driver.now.adding(milliseconds: 1999)
        #expect(code(driver.receive("CHECK|\(key)")) == .rateLimited)
        driver.now = driver.now.adding(milliseconds: 1)
        #expect(asks(driver.exchange("CHECK|\(key)", ledgerAnswers: unknownKey)))
        #expect(code(driver.receive("CHECK|\(key)")) == .rateLimited)
    }

    @Test("answers that are not charged leave the bucket full")
    func unchargedAnswers() {
        var driver = Driver()
        for _ in 0..<100 {
            _ = driver.exchange("CHECK|\(key)", ledgerAnswers: .error(Rejection(.selfTransfer, "own key")))
        }
        #expect(driver.session.bucketRemaining(now: driver.now) == TokenBucket.defaultCapacity)
    }

    @Test("the error order: not_logged_in comes before the rate limit for SEND, already_logged_in before it for LOGIN")
    func errorOrder() throws {
        var driver = Driver()
        for _ in 0..<TokenBucket.defaultCapacity { _ = driver.exchange("CHECK|\(key)", ledgerAnswers: unknownKey) }
        #expect(code(driver.receive("SEND|\(key)|1")) == .notLoggedIn)
        let name = try #require(alice)
        driver.session.answered(
            .loggedIn(machine: name, key: try #require(PaymentKey(key)), balance: .zero), now: driver.now)
        #expect(code(driver.receive("LOGIN|alice|\(token)")) == .alreadyLoggedIn)
        #expect(code(driver.receive("SEND|\(key)|1")) == .rateLimited)
        #expect(code(driver.receive("SEND|\(key)|0")) == .badAmount)
    }

    @Test("while shutting down or after a journal failure every request but PING and QUIT is unavailable")
    func notServing() {
        for state in [ServingState.shuttingDown, .journalFailed] {
            var driver = Driver()
            driver.serving = state
            #expect(code(driver.receive("REGISTER|alice")) == .unavailable)
            #expect(code(driver.receive("CHECK|\(key)")) == .unavailable)
            #expect(driver.receive("PING") == .answer(.pong))
            #expect(driver.receive("QUIT") == .answerAndClose(.bye))
        }
    }

    @Test("QUIT and an over-long line end the session: nothing after them is looked at")
    func ending() {
        var driver = Driver()
        #expect(driver.receive("QUIT") == .answerAndClose(.bye))
        #expect(driver.receive("PING") == .ignore)
        var long = Driver()
        #expect(code(long.session.receiveTooLong()) == .lineTooLong)
        #expect(long.session.receiveTooLong() == .ignore)
        #expect(long.receive("PING") == .ignore)
    }
}
