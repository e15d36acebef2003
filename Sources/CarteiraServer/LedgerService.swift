public import CarteiraCore
import CarteiraJournal
import CarteiraProtocol
import NIOCore

/// What the console's `sessions` shows of one connection.
public struct SessionSummary: Sendable, Hashable {
    public var id: Int
    public var remoteAddress: String
    public var machine: MachineName?
    public var connectedAt: Timestamp
    public var requestsServed: Int
}

/// The one owner of the ledger state. Sessions hand it parsed requests; it
/// decides, applies, hands the event to the journal writer and queues the
/// answer (and any pushes) to be written once the journal is durable. It never
/// waits for the disk, so the next request is decided while a batch syncs.
public actor LedgerService {
    struct Session {
        let id: SessionID
        let remoteAddress: String
        let connectedAt: Timestamp
        let outbox: Outbox
        var machine: MachineName?
        var bucket: TokenBucket
        var requestsServed = 0
    }

    public enum State: Sendable, Equatable {
        case serving
        case shuttingDown
        case journalFailed
    }

    private var ledger: Ledger
    private let writer: JournalWriter
    private let clock: @Sendable () -> Timestamp
    private let initialBalance: Centavos
    private let maximumSessions: Int
    private var sessions: [SessionID: Session] = [:]
    /// Every connection whose task is still running, until `connectionEnded`:
    /// a session ends when its reading stops, its connection only once
    /// everything it owes is written (or it is closed).
    private var connections: [SessionID: any Channel] = [:]
    private var sessionsByMachine: [MachineName: Set<SessionID>] = [:]
    private var nextSessionID = 1
    private var requestRate = RequestRate()
    public private(set) var state = State.serving
    public nonisolated let startedAt: Timestamp

    init(
        ledger: Ledger, writer: JournalWriter, initialBalance: Centavos, maximumSessions: Int,
        clock: @escaping @Sendable () -> Timestamp
    ) {
        self.ledger = ledger
        self.writer = writer
        self.initialBalance = initialBalance
        self.maximumSessions = maximumSessions
        self.clock = clock
        self.startedAt = clock()
    }

    // MARK: Sessions

    /// Admits a connection, or `nil` when the server is full or stopping.
    func openSession(remoteAddress: String, outbox: Outbox) -> SessionID? {
        guard state == .serving, connections.count < maximumSessions else { return nil }
        let id = SessionID(value: nextSessionID)
        nextSessionID += 1
        let now = clock()
        connections[id] = outbox.channel
        sessions[id] = Session(
            id: id, remoteAddress: remoteAddress, connectedAt: now, outbox: outbox,
            bucket: TokenBucket(now: now))
        return id
    }

    func closeSession(_ id: SessionID) {
        guard let session = sessions.removeValue(forKey: id) else { return }
        session.outbox.finish()
        if let machine = session.machine {
            sessionsByMachine[machine]?.remove(id)
            if sessionsByMachine[machine]?.isEmpty == true { sessionsByMachine[machine] = nil }
        }
    }

    /// Stops taking requests: every session's queue is finished, so each
    /// connection writes what it owes and closes.
    func beginShutdown() {
        if state == .serving { state = .shuttingDown }
        for session in sessions.values { session.outbox.finish() }
    }

    /// The connection's task has ended.
    func connectionEnded(_ id: SessionID) {
        closeSession(id)
        connections[id] = nil
    }

    /// Closes every connection at once, for a shutdown whose grace ran out.
    func closeAllConnections() {
        for channel in connections.values { channel.close(promise: nil) }
    }

    /// The journal could not be written: nothing more is served.
    func journalFailed() {
        state = .journalFailed
        for session in sessions.values { session.outbox.finish() }
    }

    public var openSessionCount: Int { sessions.count }

    /// Connections still open, including those only finishing their writes.
    public var openConnectionCount: Int { connections.count }

    public func sessionSummaries() -> [SessionSummary] {
        sessions.sorted { $0.key < $1.key }.map { id, session in
            SessionSummary(
                id: id.value, remoteAddress: session.remoteAddress, machine: session.machine,
                connectedAt: session.connectedAt, requestsServed: session.requestsServed)
        }
    }

    // MARK: Requests

    /// Handles one request from a session and queues its answer. Returns
    /// false when the connection should stop reading (after `QUIT`, or when
    /// its queue overflowed).
    func handle(_ request: Request, from id: SessionID) -> Bool {
        answer(from: id, closing: request == .quit, reflectsState: true) { session, now in
            respond(to: request, session: &session, now: now)
        }
    }

    /// Queues an answer that needed no ledger state (a malformed line).
    func reject(_ rejection: Rejection, from id: SessionID, closing: Bool = false) -> Bool {
        answer(from: id, closing: closing, reflectsState: false) { _, _ in .error(rejection) }
    }

    /// Counts the request, makes its answer and queues it in order; false when
    /// the connection should stop reading (a closing answer, or a full queue).
    private func answer(
        from id: SessionID, closing: Bool, reflectsState: Bool,
        _ makeResponse: (inout Session, Timestamp) -> Response
    ) -> Bool {
        guard var session = sessions[id] else { return false }
        let now = clock()
        requestRate.record(at: now)
        session.requestsServed += 1
        let response = makeResponse(&session, now)
        sessions[id] = session
        let item = Outgoing(
            text: response.wire, kind: closing ? .final : .answer,
            durableThrough: reflectsState ? ledger.lastSeq : 0)
        return session.outbox.send(item) && !closing
    }

    private func respond(to request: Request, session: inout Session, now: Timestamp) -> Response {
        switch state {
        case .serving: break
        case .shuttingDown:
            if request != .ping && request != .quit {
                return .error(Rejection(.unavailable, "server is shutting down; nothing was done"))
            }
        case .journalFailed:
            if request != .ping && request != .quit {
                return .error(Rejection(.unavailable, "server cannot write its journal; nothing was done"))
            }
        }
        if request.needsSession && session.machine == nil {
            return .error(Rejection(.notLoggedIn, "\(request.name) needs REGISTER or LOGIN first"))
        }
        switch request {
        case .ping:
            return .pong

        case let .register(machine):
            if let bound = session.machine {
                return .error(Rejection(.alreadyLoggedIn, "this session is already \(bound)"))
            }
            let token = SecureRandom.token()
            let command = Command.register(
                machine: machine, tokenDigest: SecureRandom.digest(of: token), key: freshKey(),
                initialBalance: initialBalance)
            switch commit(command, at: now) {
            case let .failure(rejection): return .error(rejection)
            case .success:
                bind(&session, to: machine)
                guard let record = ledger.machines[machine] else { preconditionFailure("registered machine is known") }
                return .registered(machine: machine, token: token, key: record.key, balance: record.balance)
            }

        case let .login(machine, token):
            if let bound = session.machine {
                return .error(Rejection(.alreadyLoggedIn, "this session is already \(bound)"))
            }
            if session.bucket.isEmpty(now: now) { return rateLimited() }
            switch ledger.authenticate(machine, tokenDigest: token.map(SecureRandom.digest(of:))) {
            case let .failure(rejection):
                if rejection.code.isCharged { session.bucket.charge(now: now) }
                return .error(rejection)
            case let .success(record):
                bind(&session, to: machine)
                return .loggedIn(machine: machine, key: record.key, balance: record.balance)
            }

        case .whoami:
            let record = currentRecord(session)
            return .whoami(machine: record.name, key: record.key, balance: record.balance, keyExpires: record.keyExpires)

        case .balance:
            return .balance(currentRecord(session).balance)

        case .key:
            let record = currentRecord(session)
            return .key(record.key, expires: record.keyExpires)

        case .rotate:
            let record = currentRecord(session)
            switch rotateKey(of: record.name, reason: .request, at: now, except: session.id) {
            case let .failure(rejection): return .error(rejection)
            case let .success((key, expires)): return .rotated(key, expires: expires)
            }

        case let .check(keyText):
            if session.bucket.isEmpty(now: now) { return rateLimited() }
            switch ledger.owner(ofKey: keyText, at: now) {
            case let .failure(rejection):
                if rejection.code.isCharged { session.bucket.charge(now: now) }
                return .error(rejection)
            case let .success(owner):
                return .owner(owner)
            }

        case let .send(keyText, amount, requestID):
            let sender = currentRecord(session).name
            if session.bucket.isEmpty(now: now) { return rateLimited() }
            let command = Command.transfer(from: sender, keyText: keyText, amount: amount, requestID: requestID)
            switch ledger.decide(command, at: now) {
            case let .reject(rejection):
                if rejection.code.isCharged { session.bucket.charge(now: now) }
                return .error(rejection)
            case let .alreadyDone(tx):
                return .sent(tx: tx, balance: currentRecord(session).balance, again: true)
            case let .accept(event):
                guard record(event) else {
                    return .error(Rejection(.unavailable, "server cannot write its journal; nothing was done"))
                }
                guard case let .transfer(transfer) = event.kind, let payee = ledger.machines[transfer.to] else {
                    preconditionFailure("a transfer decision yields a transfer to a known machine")
                }
                push(
                    .received(tx: transfer.tx, from: sender, amount: amount, balance: payee.balance),
                    to: transfer.to, except: nil)
                return .sent(tx: transfer.tx, balance: currentRecord(session).balance, again: false)
            }

        case let .history(limit):
            let entries = ledger.history(of: currentRecord(session).name, limit: limit).map(HistoryEntry.init)
            return .history(entries)

        case .quit:
            return .bye
        }
    }

    private func rateLimited() -> Response {
        .error(Rejection(.rateLimited, "too many failed key look-ups or logins on this connection; wait a little"))
    }

    private func currentRecord(_ session: Session) -> MachineRecord {
        guard let machine = session.machine, let record = ledger.machines[machine] else {
            preconditionFailure("a bound session's machine is in the ledger")
        }
        return record
    }

    private func bind(_ session: inout Session, to machine: MachineName) {
        session.machine = machine
        sessionsByMachine[machine, default: []].insert(session.id)
    }

    // MARK: Changes

    /// A key no machine ever had.
    private func freshKey() -> PaymentKey {
        while true {
            let key = SecureRandom.key()
            if !ledger.knowsKey(key) { return key }
        }
    }

    /// Decides `command`, applies and journals the event.
    private func commit(_ command: Command, at now: Timestamp) -> Result<Event, Rejection> {
        switch ledger.decide(command, at: now) {
        case let .reject(rejection): return .failure(rejection)
        case .alreadyDone: preconditionFailure("only transfers can be already done")
        case let .accept(event):
            guard record(event) else {
                return .failure(Rejection(.unavailable, "server cannot write its journal; nothing was done"))
            }
            return .success(event)
        }
    }

    /// Applies an accepted event and hands it to the journal writer.
    private func record(_ event: Event) -> Bool {
        guard writer.failure == nil else {
            journalFailed()
            return false
        }
        do {
            try ledger.apply(event)
        } catch {
            preconditionFailure("an event from decide always applies: \(error)")
        }
        writer.append(event)
        return true
    }

    private func rotateKey(
        of machine: MachineName, reason: KeyRotationReason, at now: Timestamp, except: SessionID?
    ) -> Result<(PaymentKey, Timestamp), Rejection> {
        switch commit(.rotateKey(machine: machine, newKey: freshKey(), reason: reason), at: now) {
        case let .failure(rejection): return .failure(rejection)
        case let .success(event):
            guard case let .keyRotated(rotation) = event.kind else { preconditionFailure("rotation yields key_rotated") }
            push(.key(rotation.key, expires: rotation.expires), to: machine, except: except)
            return .success((rotation.key, rotation.expires))
        }
    }

    private func push(_ push: Push, to machine: MachineName, except: SessionID?) {
        guard let ids = sessionsByMachine[machine] else { return }
        let item = Outgoing(text: push.wire, kind: .push, durableThrough: ledger.lastSeq)
        for id in ids where id != except {
            // A payee too far behind to take a push is closed by `send`.
            sessions[id]?.outbox.send(item)
        }
    }

    /// The rotation timer's tick: replaces every expired key. Returns the last
    /// `seq` written, if any, so the timer can wait for it to be durable.
    func rotateExpiredKeys() -> Int64? {
        guard state == .serving else { return nil }
        let now = clock()
        let due = ledger.machinesWithExpiredKeys(at: now)
        guard !due.isEmpty else { return nil }
        for machine in due {
            _ = rotateKey(of: machine, reason: .expired, at: now, except: nil)
        }
        ledger.refreshEarliestExpiry()
        return ledger.lastSeq
    }

    /// The console's `rotate`.
    public func adminRotate(_ machine: MachineName) -> Result<(key: PaymentKey, expires: Timestamp, seq: Int64), Rejection> {
        guard state == .serving else { return .failure(Rejection(.unavailable, "server is not serving")) }
        return rotateKey(of: machine, reason: .admin, at: clock(), except: nil).map { ($0.0, $0.1, ledger.lastSeq) }
    }

    // MARK: Reading for the console

    /// The state and the `seq` it reflects; wait for that `seq` to be durable
    /// before showing it.
    public func snapshot() -> (ledger: Ledger, seq: Int64) {
        (ledger, ledger.lastSeq)
    }

    /// Requests answered in the last 60 seconds.
    public func requestsLastMinute() -> Int {
        requestRate.lastMinute(at: clock())
    }

    /// Milliseconds since the service started.
    public func uptimeMilliseconds() -> Int64 {
        clock().milliseconds - startedAt.milliseconds
    }
}
