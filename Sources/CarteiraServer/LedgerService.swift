public import CarteiraCore
import CarteiraJournal
public import CarteiraProtocol
import Synchronization

/// What the console's `sessions` shows of one connection.
public struct SessionSummary: Sendable, Hashable {
    public var id: Int
    public var remoteAddress: String
    public var machine: MachineName?
    public var connectedAt: Timestamp
    public var requestsServed: Int
    /// Which bucket refuses its guarded requests now: `connection`,
    /// `address` or `machine`; `nil` when none does.
    public var rateLimited: String? = nil
}

extension ServingState {
    fileprivate var code: UInt8 {
        switch self {
        case .serving: 0
        case .shuttingDown: 1
        case .journalFailed: 2
        }
    }

    fileprivate init(code: UInt8) {
        switch code {
        case 0: self = .serving
        case 1: self = .shuttingDown
        default: self = .journalFailed
        }
    }
}

/// One line that waits in a connection's queue until the journal is durable
/// through `durableThrough`: no answer and no push shows a change that is not
/// yet on disk.
public struct Outgoing: Sendable {
    public enum Kind: Sendable {
        /// The answer to a request. If the journal fails before it is
        /// durable, `ERR|unavailable` is written instead.
        case answer
        /// A push; dropped if the journal fails before it is durable.
        case push
        /// The last answer: the connection closes once it is written.
        case final
    }

    /// What is written: a line of text, or a `SEND`'s answer kept as its
    /// parts and written straight into the output, so the commonest answer
    /// costs no string.
    public enum Body: Sendable {
        case text(String)
        case sent(tx: TxID, balance: Int64, again: Bool)
    }

    public var body: Body
    public var kind: Kind
    public var durableThrough: Int64

    public init(text: String, kind: Kind, durableThrough: Int64) {
        self.body = .text(text)
        self.kind = kind
        self.durableThrough = durableThrough
    }

    public init(_ response: Response, kind: Kind, durableThrough: Int64) {
        if case let .sent(tx, balance, again) = response {
            self.body = .sent(tx: tx, balance: balance.value, again: again)
        } else {
            self.body = .text(response.wire)
        }
        self.kind = kind
        self.durableThrough = durableThrough
    }
}

/// How the owner reaches a connection from any thread: each closure hops to
/// the connection's event loop itself. A class, so that the request path
/// passes one reference instead of copying closures and strings.
public final class ConnectionLink: Sendable {
    public let id: Int
    public let remoteAddress: String
    public let connectedAt: Timestamp
    /// Queues a push on the connection.
    public let deliver: @Sendable (Outgoing) -> Void
    /// Stops reading; the connection closes once it has written what it owes.
    public let finish: @Sendable () -> Void
    /// Closes the connection at once.
    public let close: @Sendable () -> Void
    /// Requests this connection has had answered.
    public let requestsServed: @Sendable () -> Int
    /// The key its failures are charged under in `RateLimits.addresses`.
    public let rateLimitKey: String
    /// Whether its own bucket is empty.
    public let rateState = ConnectionRateState()

    public init(
        id: Int, remoteAddress: String, connectedAt: Timestamp, rateLimitKey: String = "unknown",
        deliver: @escaping @Sendable (Outgoing) -> Void, finish: @escaping @Sendable () -> Void,
        close: @escaping @Sendable () -> Void, requestsServed: @escaping @Sendable () -> Int
    ) {
        self.id = id
        self.remoteAddress = remoteAddress
        self.connectedAt = connectedAt
        self.rateLimitKey = rateLimitKey
        self.deliver = deliver
        self.finish = finish
        self.close = close
        self.requestsServed = requestsServed
    }
}

/// The owner's answer to a `LedgerQuery`.
public struct LedgerAnswer: Sendable {
    public var response: Response
    /// The `seq` the answer reflects: it is written once that is durable.
    public var durableThrough: Int64
    /// Pushes for other sessions, to be delivered once the lock is released.
    var pushes: [(ConnectionLink, Outgoing)] = []
}

/// The one owner of the ledger state, behind a lock held for microseconds:
/// `perform` decides, applies, hands the event's line to the journal writer
/// and returns the answer with the `seq` it must wait for. It never waits for
/// the disk, so the next request is decided while a batch syncs. Callers are
/// event-loop threads (one request at a time per connection), the rotation
/// timer and the console.
public final class LedgerService: Sendable {
    private struct State {
        var ledger: Ledger
        var serving = ServingState.serving
        var connections: [Int: (link: ConnectionLink, machine: MachineName?, id: MachineID?)] = [:]
        /// The sessions bound to each machine, which its pushes go to.
        var sessionsByMachine: [MachineID: [Int: ConnectionLink]] = [:]
        var nextConnectionID = 1
    }

    private let state: Locked<State>
    /// `State.serving`, read without the lock on every request.
    private let servingNow = Atomic<UInt8>(ServingState.serving.code)
    private let writer: JournalWriter
    private let clock: @Sendable () -> Timestamp
    private let initialBalance: Centavos
    private let maximumConnections: Int
    public let startedAt: Timestamp
    /// The rate-limit buckets shared by all connections.
    public let rateLimits = RateLimits()

    init(
        ledger: Ledger, writer: JournalWriter, initialBalance: Centavos, maximumConnections: Int,
        clock: @escaping @Sendable () -> Timestamp
    ) {
        state = Locked(State(ledger: ledger))
        self.writer = writer
        self.initialBalance = initialBalance
        self.maximumConnections = maximumConnections
        self.clock = clock
        self.startedAt = clock()
    }

    public var serving: ServingState { ServingState(code: servingNow.load(ordering: .relaxed)) }

    /// Changes the serving state; only ever away from `.serving`.
    private func stopServing(_ new: ServingState, _ state: inout State) {
        guard state.serving == .serving else { return }
        state.serving = new
        servingNow.store(new.code, ordering: .relaxed)
    }

    // MARK: Connections

    /// Admits a connection and returns its id, or `nil` when the server is
    /// full or stopping. `makeLink` gets the id.
    func admit(_ makeLink: (Int) -> ConnectionLink) -> ConnectionLink? {
        state.withLock { state in
            guard state.serving == .serving, state.connections.count < maximumConnections else { return nil }
            let link = makeLink(state.nextConnectionID)
            state.nextConnectionID += 1
            state.connections[link.id] = (link, nil, nil)
            return link
        }
    }

    /// The connection has closed.
    func connectionClosed(_ id: Int) {
        state.withLock { state in
            guard let entry = state.connections.removeValue(forKey: id), let machine = entry.id else { return }
            state.sessionsByMachine[machine]?[id] = nil
            if state.sessionsByMachine[machine]?.isEmpty == true { state.sessionsByMachine[machine] = nil }
        }
    }

    /// Connections still open, including those only finishing their writes.
    public var openConnectionCount: Int { state.withLock { $0.connections.count } }

    /// Connections bound to a machine.
    public var openSessionCount: Int {
        state.withLock { state in state.connections.values.count { $0.machine != nil } }
    }

    public func sessionSummaries() -> [SessionSummary] {
        let entries = state.withLock { state in state.connections.values.sorted { $0.link.id < $1.link.id } }
        let now = clock()
        return entries.map { entry in
            var limited: String?
            if entry.link.rateState.isLimited(now: now) {
                limited = "connection"
            } else if rateLimits.addresses.isLimited(entry.link.rateLimitKey, now: now) {
                limited = "address"
            } else if let machine = entry.machine, rateLimits.machines.isLimited(machine, now: now) {
                limited = "machine"
            }
            return SessionSummary(
                id: entry.link.id, remoteAddress: entry.link.remoteAddress, machine: entry.machine,
                connectedAt: entry.link.connectedAt, requestsServed: entry.link.requestsServed(), rateLimited: limited)
        }
    }

    /// Stops taking changes; every connection stops reading and closes once
    /// it has written what it owes.
    func beginShutdown() {
        let links = state.withLock { state in
            stopServing(.shuttingDown, &state)
            return state.connections.values.map(\.link)
        }
        for link in links { link.finish() }
    }

    /// Closes every connection at once, for a shutdown whose grace ran out.
    func closeAllConnections() {
        let links = state.withLock { state in state.connections.values.map(\.link) }
        for link in links { link.close() }
    }

    /// The journal could not be written: nothing more is served.
    func journalFailed() {
        state.withLock { state in
            // A failure during a shutdown still counts: nothing more is durable.
            state.serving = .journalFailed
            servingNow.store(ServingState.journalFailed.code, ordering: .relaxed)
        }
    }

    // MARK: Requests

    /// Answers `query` for the connection `link`, applying and journaling
    /// any change. Pushes for other sessions are delivered before it returns,
    /// outside the lock.
    func perform(_ query: LedgerQuery, for link: ConnectionLink, now: Timestamp) -> LedgerAnswer {
        let answer = state.withLock { state in respond(to: query, link: link, now: now, state: &state) }
        for (target, push) in answer.pushes { target.deliver(push) }
        return answer
    }

    private func respond(to query: LedgerQuery, link: ConnectionLink, now: Timestamp, state: inout State)
        -> LedgerAnswer
    {
        func answer(_ response: Response) -> LedgerAnswer {
            LedgerAnswer(response: response, durableThrough: state.ledger.lastSeq)
        }
        if let refusal = state.serving.refusal { return LedgerAnswer(response: .error(refusal), durableThrough: 0) }
        switch query {
        case let .register(machine):
            let token = SecureRandom.token()
            let command = Command.register(
                machine: machine, tokenDigest: SecureRandom.digest(of: token), key: freshKey(state.ledger),
                initialBalance: initialBalance)
            switch commit(command, at: now, wakeWriter: false, state: &state) {
            case let .failure(rejection): return answer(.error(rejection))
            case .success:
                bind(link, to: machine, state: &state)
                let record = currentRecord(machine, state)
                return answer(.registered(machine: machine, token: token, key: record.key, balance: record.balance))
            }

        case let .login(machine, token):
            switch state.ledger.authenticate(machine, tokenDigest: token.map(SecureRandom.digest(of:))) {
            case let .failure(rejection): return answer(.error(rejection))
            case let .success(record):
                bind(link, to: machine, state: &state)
                return answer(.loggedIn(machine: machine, key: record.key, balance: record.balance))
            }

        case let .whoami(machine):
            let record = currentRecord(machine, state)
            return answer(
                .whoami(machine: record.name, key: record.key, balance: record.balance, keyExpires: record.keyExpires))

        case let .balance(machine):
            return answer(.balance(currentBalance(machine, state)))

        case let .key(machine):
            let record = currentRecord(machine, state)
            return answer(.key(record.key, expires: record.keyExpires))

        case let .rotate(machine):
            var pushes: [(ConnectionLink, Outgoing)] = []
            switch rotateKey(
                of: machine, reason: .request, at: now, except: link.id, wakeWriter: false, pushes: &pushes,
                state: &state)
            {
            case let .failure(rejection): return answer(.error(rejection))
            case let .success((key, expires)):
                var result = answer(.rotated(key, expires: expires))
                result.pushes = pushes
                return result
            }

        case let .check(keyText):
            switch state.ledger.owner(ofKey: keyText, at: now) {
            case let .failure(rejection): return answer(.error(rejection))
            case let .success(owner): return answer(.owner(owner))
            }

        case let .send(sender, keyText, amount, requestID):
            switch state.ledger.decideTransfer(
                from: sender, keyText: keyText, amount: amount, requestID: requestID, at: now)
            {
            case let .reject(rejection):
                return answer(.error(rejection))
            case let .alreadyDone(tx):
                return answer(.sent(tx: tx, balance: currentBalance(sender, state), again: true))
            case let .accept(accepted):
                guard journal(accepted.event, wakeWriter: false, state: &state) else {
                    return answer(.error(ServingState.journalUnavailable))
                }
                let balances = state.ledger.apply(accepted)
                let tx = accepted.tx
                var result = answer(.sent(tx: tx, balance: balances.payer, again: false))
                collectPushes(
                    .received(tx: tx, from: sender, amount: amount, balance: balances.payee), to: accepted.payee,
                    except: nil, into: &result.pushes, state: state)
                return result
            }

        case let .history(machine, limit):
            return answer(.history(state.ledger.history(of: machine, limit: limit).map(HistoryEntry.init)))
        }
    }

    private func currentRecord(_ machine: MachineName, _ state: State) -> MachineRecord {
        guard let record = state.ledger.machines[machine] else {
            preconditionFailure("a bound session's machine is in the ledger")
        }
        return record
    }

    private func currentBalance(_ machine: MachineName, _ state: State) -> Centavos {
        guard let balance = state.ledger.balance(of: machine) else {
            preconditionFailure("a bound session's machine is in the ledger")
        }
        return balance
    }

    private func bind(_ link: ConnectionLink, to machine: MachineName, state: inout State) {
        guard let id = state.ledger.machineID(of: machine) else {
            preconditionFailure("a session binds to a registered machine")
        }
        state.connections[link.id]?.machine = machine
        state.connections[link.id]?.id = id
        state.sessionsByMachine[id, default: [:]][link.id] = link
    }

    // MARK: Changes

    /// A key no machine ever had.
    private func freshKey(_ ledger: Ledger) -> PaymentKey {
        while true {
            let key = SecureRandom.key()
            if !ledger.knowsKey(key) { return key }
        }
    }

    /// Decides `command`, applies and journals the event.
    private func commit(_ command: Command, at now: Timestamp, wakeWriter: Bool, state: inout State)
        -> Result<Event, Rejection>
    {
        switch state.ledger.decide(command, at: now) {
        case let .reject(rejection): return .failure(rejection)
        case .alreadyDone: preconditionFailure("only transfers can be already done")
        case let .accept(event):
            guard record(event, wakeWriter: wakeWriter, state: &state) else {
                return .failure(ServingState.journalUnavailable)
            }
            return .success(event)
        }
    }

    /// Applies an accepted event and hands it to the journal writer; false
    /// (and nothing changed) once the writer has failed. A request's event
    /// leaves a parked writer thread parked (`wakeWriter: false`): its event
    /// loop runs the batch at the end of its turn (`LoopRelease.syncSoon`).
    private func record(_ event: Event, wakeWriter: Bool, state: inout State) -> Bool {
        guard journal(event, wakeWriter: wakeWriter, state: &state) else { return false }
        do {
            try state.ledger.apply(event)
        } catch {
            preconditionFailure("an event from decide always applies: \(error)")
        }
        return true
    }

    /// Hands an accepted event to the journal writer, to be applied next;
    /// false once the writer has failed or stopped, and then nothing more is
    /// served.
    private func journal(_ event: Event, wakeWriter: Bool, state: inout State) -> Bool {
        guard writer.append(event, wakeWriter: wakeWriter) else {
            // The writer failed, or stopped at the very end of a shutdown.
            stopServing(writer.failure == nil ? .shuttingDown : .journalFailed, &state)
            return false
        }
        return true
    }

    private func rotateKey(
        of machine: MachineName, reason: KeyRotationReason, at now: Timestamp, except: Int?, wakeWriter: Bool = true,
        pushes: inout [(ConnectionLink, Outgoing)], state: inout State
    ) -> Result<(PaymentKey, Timestamp), Rejection> {
        let command = Command.rotateKey(machine: machine, newKey: freshKey(state.ledger), reason: reason)
        switch commit(command, at: now, wakeWriter: wakeWriter, state: &state) {
        case let .failure(rejection): return .failure(rejection)
        case let .success(event):
            guard case let .keyRotated(rotation) = event.kind else {
                preconditionFailure("rotation yields key_rotated")
            }
            if let id = state.ledger.machineID(of: machine) {
                collectPushes(
                    .key(rotation.key, expires: rotation.expires), to: id, except: except, into: &pushes, state: state)
            }
            return .success((rotation.key, rotation.expires))
        }
    }

    /// Queues `push` for `machine`'s sessions but `except`; the push is
    /// only built when the machine has one.
    private func collectPushes(
        _ push: @autoclosure () -> Push, to machine: MachineID, except: Int?,
        into pushes: inout [(ConnectionLink, Outgoing)], state: State
    ) {
        guard let links = state.sessionsByMachine[machine] else { return }
        let item = Outgoing(text: push().wire, kind: .push, durableThrough: state.ledger.lastSeq)
        for (id, link) in links where id != except { pushes.append((link, item)) }
    }

    /// The rotation timer's tick: replaces every expired key. Returns the last
    /// `seq` written, if any, so the timer can wait for it to be durable.
    func rotateExpiredKeys() -> Int64? {
        let now = clock()
        var pushes: [(ConnectionLink, Outgoing)] = []
        let seq = state.withLock { state -> Int64? in
            guard state.serving == .serving else { return nil }
            let due = state.ledger.machinesWithExpiredKeys(at: now)
            guard !due.isEmpty else { return nil }
            for machine in due {
                _ = rotateKey(of: machine, reason: .expired, at: now, except: nil, pushes: &pushes, state: &state)
            }
            state.ledger.refreshEarliestExpiry()
            return state.ledger.lastSeq
        }
        for (link, push) in pushes { link.deliver(push) }
        return seq
    }

    /// The console's `rotate`: the new key and the `seq` to wait for.
    func adminRotate(_ machine: MachineName) -> Result<(key: PaymentKey, expires: Timestamp, seq: Int64), Rejection> {
        var pushes: [(ConnectionLink, Outgoing)] = []
        let result = state.withLock { state -> Result<(key: PaymentKey, expires: Timestamp, seq: Int64), Rejection> in
            guard state.serving == .serving else { return .failure(Rejection(.unavailable, "server is not serving")) }
            let rotated = rotateKey(
                of: machine, reason: .admin, at: clock(), except: nil, pushes: &pushes, state: &state)
            return rotated.map { ($0.0, $0.1, state.ledger.lastSeq) }
        }
        for (link, push) in pushes { link.deliver(push) }
        return result
    }

    /// The state and the `seq` it reflects; show it only once that is durable.
    func snapshot() -> (ledger: Ledger, seq: Int64) {
        state.withLock { ($0.ledger, $0.ledger.lastSeq) }
    }

    /// Milliseconds since the service started.
    public func uptimeMilliseconds() -> Int64 {
        clock().milliseconds - startedAt.milliseconds
    }
}
