import ArgumentParser
import CarteiraClient
import CarteiraTerminal
import CarteiraCore
import CarteiraProtocol
import Foundation

let carteiraVersion = "carteira 1.1.0 (wire protocol 1)"

/// The peer client (CLIENT.md). With no subcommand it runs interactively.
struct Carteira: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira",
        abstract: "Pay other machines from this machine's Carteira wallet.",
        discussion: """
            With no subcommand, carteira runs interactively: paste a payee's key or a Pix Copia e Cola code.

            Exit status:
              0  done
              1  not done: refused by the server (reason on standard error),
                 no usable token, or a confirmation declined
              2  bad usage (nothing was sent)
              3  server unreachable, silent past --timeout, or not Carteira;
                 a payment's message says whether it was sent and names
                 the request id to retry with
            """,
        version: carteiraVersion,
        subcommands: [
            Register.self, Whoami.self, Balance.self, Key.self, Rotate.self, Check.self, Send.self, RequestPayment.self,
            Pay.self, History.self, Watch.self,
        ]
    )

    @OptionGroup var options: SharedOptions

    func run() async throws {
        let prompter = try ReadlinePrompter.openIfTerminal(stateDirectory: options.resolvedStateDirectory)
        defer { prompter?.close() }
        let lines: any LinePrompter = prompter ?? StdinPrompter()
        // Registering creates a wallet: ask first, so a mistyped --machine does not.
        let configuration = try options.configuration(mayRegister: false)
        guard let hasToken = savedTokenExists(configuration) else { throw ExitCode(1) }
        if !hasToken {
            let path = configuration.tokens.path(server: configuration.server, machine: configuration.machine)
            lines.printAbove(
                "Machine \(configuration.machine) has no saved token for \(configuration.server) (looked for \(path)).")
            let answer = await lines.readInput(
                prompt: "Register \(configuration.machine) on \(configuration.server) now? [y/N] ")
            guard case let .line(text) = answer, isYes(text) else {
                lines.printAbove("Nothing registered.")
                throw ExitCode(1)
            }
        }
        try await options.withSession(mayRegister: !hasToken, catchUp: true) { session in
            try await InteractiveSession(session: session, prompter: lines).run()
        }
    }

    /// Whether a token is saved; `nil` after reporting a token file that cannot be used.
    private func savedTokenExists(_ configuration: PeerSession.Configuration) -> Bool? {
        let result = Result {
            try configuration.tokens.load(server: configuration.server, machine: configuration.machine)
        }
        switch result {
        case let .success(token): return token != nil
        case let .failure(error):
            Output(json: options.json).fail(code: "token_store", message: sentence(String(describing: error)))
            return nil
        }
    }

    /// Like `main()`, but bad usage is one line and a hint (JSON with
    /// `--json`) and exits 2 (ArgumentParser's own choice is 64).
    static func runAsMain(_ arguments: [String]? = nil) async {
        let arguments = arguments ?? Array(CommandLine.arguments.dropFirst())
        if let problem = negativeAmount(in: arguments) {
            usageFailure(problem, arguments: arguments)
        }
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                usageFailure(message(for: error), arguments: arguments)
            }
            exit(withError: error)
        }
    }

    /// A usage error: one line, a hint, exit 2.
    static func usageFailure(_ message: String, arguments: [String]) -> Never {
        let names = Set(configuration.subcommands.map { $0._commandName })
        let subcommand = arguments.first { names.contains($0) }
        let hint = "see `carteira \(subcommand.map { $0 + " " } ?? "")--help`"
        var text = message.trimmingCharacters(in: .whitespacesAndNewlines)
        if text.hasPrefix("Error: ") { text.removeFirst("Error: ".count) }
        text = text.split(separator: "\n").first.map(String.init) ?? text
        if arguments.contains("--json") {
            Output(json: true).fail(code: "usage", message: text, hint: hint)
        } else {
            FileHandle.standardError.write(Data("carteira: \(text)\n(\(hint))\n".utf8))
        }
        Foundation.exit(2)
    }

    /// `send KEY -1` would otherwise read as an unknown option `-1`.
    static func negativeAmount(in arguments: [String]) -> String? {
        guard let index = arguments.firstIndex(where: { $0 == "send" || $0 == "request" }) else { return nil }
        for (position, argument) in arguments.enumerated() where position > index {
            let text = argument.trimmingCharacters(in: .whitespaces)
            guard text.count > 1, text.hasPrefix("-"), text.dropFirst().first?.isNumber == true else { continue }
            if position > 0, arguments[position - 1].hasPrefix("--"), arguments[position - 1] != "--" { continue }
            return amountProblem(text)
        }
        return nil
    }
}

func isYes(_ text: String) -> Bool {
    ["y", "yes", "s", "sim"].contains(text.trimmingCharacters(in: .whitespaces).lowercased())
}

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Register this machine (or log in if its token is saved).")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        let account = try await options.withSession(mayRegister: true) { try await $0.loggedIn() }
        let what = account.registeredNow ? "registered" : "already registered; logged in with the saved token"
        Output(json: options.json).emit(
            text: "Machine \(account.machine) \(what)\nKey: \(account.key)\nBalance: \(account.balance.brl)",
            json: .object([
                "machine": .string(account.machine.text), "key": .string(account.key.text),
                "balance_cents": .int(account.balance.value), "registered": .bool(account.registeredNow),
            ]))
    }
}

struct Whoami: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this machine, its key, the key's expiry and the balance.")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        let me = try await options.withSession { try await $0.whoami() }
        Output(json: options.json).emit(
            text: """
                Machine: \(me.machine)
                Key: \(me.key) (rotates in \(timeLeft(until: me.keyExpires)), at \(me.keyExpires.iso8601))
                Balance: \(me.balance.brl)
                """,
            json: .object([
                "machine": .string(me.machine.text), "key": .string(me.key.text),
                "key_expires_at": .string(me.keyExpires.iso8601), "balance_cents": .int(me.balance.value),
            ]))
    }
}

struct Balance: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show the balance.")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        let balance = try await options.withSession { try await $0.balance() }
        Output(json: options.json).emit(text: balance.brl, json: .object(["balance_cents": .int(balance.value)]))
    }
}

/// `key` and `rotate` print alike: the key alone on a line, for `$(...)`.
private func printKey(_ info: KeyInfo, _ options: SharedOptions) {
    Output(json: options.json).emit(
        text: info.key.text,
        json: .object(["key": .string(info.key.text), "key_expires_at": .string(info.expires.iso8601)]))
}

struct Key: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print the current payment key.")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        printKey(try await options.withSession { try await $0.key() }, options)
    }
}

struct Rotate: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Replace the payment key now and print the new one.")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        printKey(try await options.withSession { try await $0.rotate() }, options)
    }
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show which machine owns a payment key.")
    @OptionGroup var options: SharedOptions
    @Argument(help: "The payee's payment key.") var key: String

    func validate() throws { _ = try parsePaymentKey(key) }

    func run() async throws {
        let key = try parsePaymentKey(key)
        let owner = try await options.withSession { try await $0.check(key) }
        Output(json: options.json).emit(text: owner.text, json: .object(["machine": .string(owner.text)]))
    }
}

/// A payment's result, for people and for JSON.
func reportPayment(_ receipt: SendReceipt, amount: Centavos, payee: MachineName?, output: Output) {
    let to = payee.map { " to \($0)" } ?? ""
    let text: String
    if receipt.alreadyDone && !receipt.confirmedAfterRetry {
        text =
            "Already sent earlier (tx \(receipt.tx), request id \(receipt.requestID)); no money moved now.\nBalance: \(receipt.balance.brl)"
    } else {
        let note =
            receipt.confirmedAfterRetry
            ? "\nThe connection dropped; the retry confirmed the payment was made once (answered by \(receipt.server))."
            : ""
        text =
            "Sent \(amount.brl)\(to) (tx \(receipt.tx), request id \(receipt.requestID))\nBalance: \(receipt.balance.brl)\(note)"
    }
    var fields: [(String, JSON)] = [
        ("tx", .string(receipt.tx.text)), ("amount_cents", .int(amount.value)),
        ("balance_cents", .int(receipt.balance.value)),
        ("request_id", .string(receipt.requestID.text)), ("retried", .bool(receipt.confirmedAfterRetry)),
        ("already_done", .bool(receipt.alreadyDone)), ("server", .string(receipt.server.description)),
    ]
    if let payee { fields.append(("payee", .string(payee.text))) }
    output.emit(text: text, json: .fields(fields))
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pay AMOUNT reais (50, 50,5, 50,25 or 50.25) to the owner of KEY.",
        discussion: "Re-running with the same --request-id never pays twice: the server answers the first payment.")
    @OptionGroup var options: SharedOptions
    @Argument(help: "The payee's payment key.") var key: String
    @Argument(help: "Reais, like 50 or 12,50 (no thousands separator).") var amount: String
    @Option(
        name: .customLong("request-id"), help: "An id for safe retries: 1-64 of A-Z a-z 0-9 _ - (default: a fresh one)."
    )
    var requestID: String?

    func validate() throws {
        _ = try parsePaymentKey(key)
        _ = try parseAmount(amount)
        if let requestID, RequestID(requestID.trimmingCharacters(in: .whitespaces)) == nil {
            throw ValidationError("--request-id must be 1-64 of A-Z a-z 0-9 _ -, and not - alone")
        }
    }

    func run() async throws {
        let key = try parsePaymentKey(key)
        let amount = try parseAmount(amount)
        let id: RequestID? =
            if let requestID { RequestID(requestID.trimmingCharacters(in: .whitespaces)) } else { freshRequestID() }
        guard let id else { throw ValidationError("invalid request id") }
        let receipt = try await options.withSession(payment: id) {
            try await $0.send(key: key, amount: amount, requestID: id)
        }
        reportPayment(receipt, amount: amount, payee: nil, output: Output(json: options.json))
    }
}

/// A request id no other payment of this machine will have.
func freshRequestID() -> RequestID? {
    RequestID("c-" + UUID().uuidString.lowercased())
}

/// A fresh BR Code reference: `R` and 20 random letters and digits.
func freshReference() -> String {
    let alphabet = Array("ABCDEFGHJKLMNPQRSTUVWXYZ23456789")
    var generator = SystemRandomNumberGenerator()
    return "R" + String((0..<20).map { _ in alphabet[Int(generator.next() % UInt64(alphabet.count))] })
}

struct RequestPayment: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "request",
        abstract: "Print a payment request for AMOUNT reais to this machine, as a Pix Copia e Cola code.",
        discussion: """
            The code (a BR Code) goes alone to standard output, for $(...); what it asks for and when this \
            machine's key expires go to standard error. The payer runs `carteira pay CODE`. Paying the same \
            code twice from one machine moves money once: its reference is the payment's request id.
            """)
    @OptionGroup var options: SharedOptions
    @Argument(help: "Reais, like 50 or 12,50.") var amount: String
    @Option(name: .customLong("id"), help: "The request's reference: 1-25 of A-Z a-z 0-9 (default: a fresh one).")
    var reference: String?
    @Option(help: "The city written in the code (default: BRASILIA).") var city: String = PaymentRequest.defaultCity

    func validate() throws {
        _ = try parseAmount(amount)
        if let reference, !PaymentRequest.isValidReference(reference.trimmingCharacters(in: .whitespaces)) {
            throw ValidationError(
                "--id must be 1-25 of A-Z a-z 0-9 (the Pix manual's form of a reference), got \(reference)")
        }
    }

    func run() async throws {
        let amount = try parseAmount(amount)
        let reference = reference?.trimmingCharacters(in: .whitespaces) ?? freshReference()
        let me = try await options.withSession { try await $0.whoami() }
        let request = PaymentRequest(key: me.key, machine: me.machine, amount: amount, reference: reference, city: city)
        let expiry = "key expires in \(timeLeft(until: me.keyExpires)), at \(TerminalTime.local(me.keyExpires))"
        if options.json {
            Output(json: true).emit(
                text: "",
                json: .fields([
                    ("code", .string(request.payload)), ("amount_cents", .int(amount.value)),
                    ("reference", .string(reference)),
                    ("machine", .string(me.machine.text)), ("key", .string(me.key.text)),
                    ("key_expires_at", .string(me.keyExpires.iso8601)),
                ]))
        } else {
            print(request.payload)
            fflush(nil)
            FileHandle.standardError.write(
                Data("Pay \(amount.brl) to \(me.machine), reference \(reference) (\(expiry)): carteira pay CODE\n".utf8)
            )
        }
    }
}

/// The request id a code is paid with: its reference, or for a code without
/// one a digest of the code, so paying the same code twice still pays once.
func requestID(for request: PaymentRequest, payload: String) -> RequestID? {
    if request.reference != PaymentRequest.noReference, let id = RequestID(request.reference) { return id }
    var hash: UInt64 = 0xcbf2_9ce4_8422_2325  // FNV-1a, 64 bits
    for byte in payload.trimmingCharacters(in: .whitespacesAndNewlines).utf8 {
        hash = (hash ^ UInt64(byte)) &* 0x0000_0100_0000_01B3
    }
    let hex = String(hash, radix: 16)
    return RequestID("pix-" + String(repeating: "0", count: 16 - hex.count) + hex)
}

/// Why a decoded code cannot be paid here, before anything is asked.
func payableParts(_ request: PaymentRequest) throws -> (PaymentKey, Centavos) {
    guard let key = PaymentKey(request.keyText) else {
        throw ValidationError(
            "that Pix code's key \(request.keyText) is not a Carteira key (a UUID issued by carteira-server)")
    }
    guard let amount = request.amount else {
        throw ValidationError("that Pix code carries no amount; ask for one made with `carteira request AMOUNT`")
    }
    return (key, amount)
}

struct Pay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pay a payment request (a Pix Copia e Cola code from `carteira request`).",
        discussion: "Shows the payee and the amount and asks to confirm; --yes skips the question, for scripts.")
    @OptionGroup var options: SharedOptions
    @Argument(help: "The code, as printed by `carteira request`.") var code: String
    @Flag(help: "Pay without asking.") var yes = false

    func validate() throws {
        do {
            _ = try payableParts(try PaymentRequest.decode(code))
        } catch let error as BRCodeError {
            throw ValidationError(error.description)
        }
    }

    func run() async throws {
        let output = Output(json: options.json)
        let request: PaymentRequest
        do { request = try PaymentRequest.decode(code) } catch { throw ValidationError(error.description) }
        let (key, amount) = try payableParts(request)
        guard let id = requestID(for: request, payload: code) else {
            throw ValidationError("that code's reference is unusable")
        }
        let outcome: (SendReceipt, MachineName)? = try await options.withSession(payment: id) { session in
            let payee: MachineName
            do {
                payee = try await session.check(key)
            } catch let error as ClientError where error.errorCode == .expiredKey {
                throw ClientError.refused(
                    code: "expired_request",
                    message: "this payment request has expired: the payee's key was replaced; ask them for a new code")
            }
            if let me = await session.account?.machine, me == payee {
                throw ClientError.refused(
                    code: "own_request", message: "that is your own payment request: a machine cannot pay itself")
            }
            let named =
                request.name.isEmpty || payee.text.hasPrefix(request.name)
                ? "" : " (the code calls them \(request.name))"
            if !yes {
                let answer = await StdinPrompter().readInput(
                    prompt: "Pay \(amount.brl) to \(payee)\(named), reference \(request.reference)? [y/N] ")
                guard case let .line(text) = answer, isYes(text) else { return nil }
            }
            return (try await session.send(key: key, amount: amount, requestID: id), payee)
        }
        guard let (receipt, payee) = outcome else {
            output.fail(code: "declined", message: "Nothing sent.")
            throw ExitCode(1)
        }
        reportPayment(receipt, amount: amount, payee: payee, output: output)
    }
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show this machine's statement: transfers newest first, with the balance after each.")
    @OptionGroup var options: SharedOptions
    @Option(help: "How many transfers, 1-1000.") var limit: Int = HistoryLimit.defaultValue

    func validate() throws {
        guard HistoryLimit.range.contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
    }

    func run() async throws {
        let statement = try await options.withSession { try await $0.statement(limit: limit) }
        guard options.json else {
            // On a terminal, a statement longer (or wider) than the screen
            // goes through the pager, as psql's results do (docs/client.md).
            let text = statementTable(statement)
            fflush(nil)
            await DedicatedThread(name: "carteira-pager").run { Pager().print(text) }
            return
        }
        Output(json: options.json).emit(
            text: statementTable(statement),
            json: .fields([
                ("balance_cents", .int(statement.balance.value)),
                ("transfers", .array(statement.lines.map(lineJSON))),
            ]))
    }
}

func lineJSON(_ line: Statement.Line) -> JSON {
    .fields([
        ("tx", .string(line.entry.tx.text)), ("transferred_at", .string(line.entry.at.iso8601)),
        ("direction", .string(line.received ? "received" : "sent")), ("counterparty", .string(line.counterparty.text)),
        ("from", .string(line.entry.from.text)), ("to", .string(line.entry.to.text)),
        ("amount_cents", .int(line.entry.amount.value)), ("change_cents", .int(line.change.value)),
        ("balance_after_cents", .int(line.balanceAfter.value)),
    ])
}

/// `+R$ 50,00` or `−R$ 5,00` (a true minus sign, as statements print it).
func signed(_ change: Centavos) -> String {
    (change.value < 0 ? "\u{2212}" : "+") + Centavos(change.value == .min ? .max : abs(change.value)).brl
}

/// A statement as aligned columns, newest first.
func statementTable(_ statement: Statement) -> String {
    guard !statement.lines.isEmpty else { return "No transfers yet. Balance: \(statement.balance.brl)" }
    var table = TextTable(columns: [
        .init("time"), .init("transfer"), .init("amount", alignment: .right), .init("balance", alignment: .right),
        .init("tx"),
    ])
    for line in statement.lines {
        table.append([
            TerminalTime.local(line.entry.at), (line.received ? "received from " : "sent to ") + line.counterparty.text,
            signed(line.change), line.balanceAfter.brl, line.entry.tx.text,
        ])
    }
    let note =
        statement.exact ? "" : "\n(transfers kept arriving while this was taken; the balances may be off by them)"
    return table.render() + note
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print each payment received and each new key as it arrives, until interrupted.",
        discussion: """
            After a dropped connection it reconnects by itself ("reconnecting…" and "reconnected" on standard \
            error) and first prints, oldest first, every payment received while it was away.
            """)
    @OptionGroup var options: SharedOptions

    func run() async throws {
        let output = Output(json: options.json)
        try await options.withSession(catchUp: true) { session in
            let account = try await session.loggedIn()
            output.note(
                text: "Watching payments to \(account.machine) (Ctrl-C to stop)",
                json: .object(["event": .string("watching"), "machine": .string(account.machine.text)]))
            for await event in session.events {
                show(event, emit: { output.emit(text: $0, json: $1) }, note: { output.note(text: $0, json: $1) })
            }
        }
    }
}

/// Writes a session event: payments and keys through `emit` (standard
/// output), reconnect notes through `note` (standard error).
func show(_ event: SessionEvent, emit: (String, JSON) -> Void, note: (String, JSON) -> Void) {
    switch event {
    case let .push(push): emit(describe(push), pushJSON(push))
    case let .missed(entry): emit(describeMissed(entry), missedJSON(entry))
    case .reconnecting: note("reconnecting…", .object(["event": .string("reconnecting")]))
    case .reconnected: note("reconnected", .object(["event": .string("reconnected")]))
    }
}

/// A push for people: `Received R$ 50,00 from bob (balance R$ 150,00)`.
func describe(_ push: Push) -> String {
    switch push {
    case let .received(_, from, amount, balance): "Received \(amount.brl) from \(from) (balance \(balance.brl))"
    case let .key(key, expires): "New key: \(key) (rotates in \(timeLeft(until: expires)))"
    }
}

func describeMissed(_ entry: HistoryEntry) -> String {
    "Received \(entry.amount.brl) from \(entry.from) at \(TerminalTime.local(entry.at)), while reconnecting (tx \(entry.tx))"
}

func missedJSON(_ entry: HistoryEntry) -> JSON {
    .fields([
        ("event", .string("received")), ("tx", .string(entry.tx.text)), ("from", .string(entry.from.text)),
        ("amount_cents", .int(entry.amount.value)), ("transferred_at", .string(entry.at.iso8601)),
        ("missed", .bool(true)),
    ])
}

func pushJSON(_ push: Push) -> JSON {
    switch push {
    case let .received(tx, from, amount, balance):
        .object([
            "event": .string("received"), "tx": .string(tx.text), "from": .string(from.text),
            "amount_cents": .int(amount.value), "balance_cents": .int(balance.value),
        ])
    case let .key(key, expires):
        .object(["event": .string("key"), "key": .string(key.text), "key_expires_at": .string(expires.iso8601)])
    }
}
