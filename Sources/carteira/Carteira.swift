import ArgumentParser
import CarteiraClient
import CarteiraConsole
import CarteiraCore
import CarteiraProtocol
import Foundation

/// The peer client (CLIENT.md). With no subcommand it runs interactively.
struct Carteira: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "carteira",
        abstract: "Pay other machines from this machine's Carteira wallet.",
        discussion: "With no subcommand, carteira runs interactively. Exit status: 0 done, 1 refused, 2 bad usage, 3 cannot reach the server.",
        subcommands: [Register.self, Whoami.self, Balance.self, Key.self, Rotate.self, Check.self, Send.self, History.self, Watch.self]
    )

    @OptionGroup var options: SharedOptions

    func run() async throws {
        let prompter = try ReadlinePrompter.openIfTerminal(stateDirectory: options.resolvedStateDirectory)
        defer { prompter?.close() }
        try await options.withSession(mayRegister: true) { session in
            try await InteractiveSession(session: session, prompter: prompter ?? StdinPrompter()).run()
        }
    }

    /// Like `main()`, but bad usage exits 2 (ArgumentParser's own choice is 64).
    static func runAsMain(_ arguments: [String]? = nil) async {
        do {
            var command = try parseAsRoot(arguments)
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch {
            if exitCode(for: error) == .validationFailure {
                FileHandle.standardError.write(Data((fullMessage(for: error) + "\n").utf8))
                Foundation.exit(2)
            }
            exit(withError: error)
        }
    }
}

struct Register: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Register this machine (or log in if its token is saved).")
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
    static let configuration = CommandConfiguration(abstract: "Show this machine, its key, the key's expiry and the balance.")
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
                "key_expires_ms": .int(me.keyExpires.milliseconds), "balance_cents": .int(me.balance.value),
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
        json: .object(["key": .string(info.key.text), "key_expires_ms": .int(info.expires.milliseconds)]))
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

/// A payment key argument, checked for form before anything is sent.
private func paymentKey(_ text: String) throws -> PaymentKey {
    guard let key = PaymentKey(text) else {
        throw ValidationError("a payment key is a UUID like 7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8, got \(text)")
    }
    return key
}

struct Check: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show which machine owns a payment key.")
    @OptionGroup var options: SharedOptions
    @Argument(help: "The payee's payment key.") var key: String

    func validate() throws { _ = try paymentKey(key) }

    func run() async throws {
        let key = try paymentKey(key)
        let owner = try await options.withSession { try await $0.check(key) }
        Output(json: options.json).emit(text: owner.text, json: .object(["machine": .string(owner.text)]))
    }
}

struct Send: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Pay AMOUNT reais (50, 50,5, 50,25 or 50.25) to the owner of KEY.",
        discussion: "Re-running with the same --request-id never pays twice: the server answers the first payment.")
    @OptionGroup var options: SharedOptions
    @Argument(help: "The payee's payment key.") var key: String
    @Argument(help: "Reais, like 50 or 12,50.") var amount: String
    @Option(name: .customLong("request-id"), help: "An id for safe retries: 1-64 of A-Z a-z 0-9 _ - (default: a fresh one).")
    var requestID: String?

    func validate() throws {
        _ = try paymentKey(key)
        guard Centavos(amount: amount) != nil else {
            throw ValidationError("the amount must be reais greater than zero, like 50, 50,5 or 50,25, got \(amount)")
        }
        if let requestID, RequestID(requestID) == nil {
            throw ValidationError("--request-id must be 1-64 of A-Z a-z 0-9 _ -, and not - alone")
        }
    }

    func run() async throws {
        let key = try paymentKey(key)
        let id: RequestID? = if let requestID { RequestID(requestID) } else { freshRequestID() }
        guard let amount = Centavos(amount: amount), let id else {
            throw ValidationError("invalid amount or request id")
        }
        let receipt = try await options.withSession { try await $0.send(key: key, amount: amount, requestID: id) }
        let note = receipt.confirmedAfterRetry ? "\nThe connection dropped; the retry confirmed the payment was made once." : ""
        Output(json: options.json).emit(
            text: "Sent \(amount.brl) (tx \(receipt.tx), request id \(id))\nBalance: \(receipt.balance.brl)\(note)",
            json: .object([
                "tx": .string(receipt.tx.text), "amount_cents": .int(amount.value), "balance_cents": .int(receipt.balance.value),
                "request_id": .string(id.text), "retried": .bool(receipt.confirmedAfterRetry),
            ]))
    }
}

/// A request id no other payment of this machine will have.
func freshRequestID() -> RequestID? {
    RequestID("c-" + UUID().uuidString.lowercased())
}

struct History: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Show this machine's transfers, newest first.")
    @OptionGroup var options: SharedOptions
    @Option(help: "How many transfers, 1-1000.") var limit: Int = HistoryLimit.defaultValue

    func validate() throws {
        guard HistoryLimit.range.contains(limit) else { throw ValidationError("--limit must be from 1 to 1000") }
    }

    func run() async throws {
        let entries = try await options.withSession { try await $0.history(limit: limit) }
        Output(json: options.json).emit(
            text: historyTable(entries),
            json: .object([
                "transfers": .array(entries.map { entry in
                    .object([
                        "tx": .string(entry.tx.text), "time_ms": .int(entry.at.milliseconds), "from": .string(entry.from.text),
                        "to": .string(entry.to.text), "amount_cents": .int(entry.amount.value),
                    ])
                })
            ]))
    }
}

/// Transfers as aligned columns.
func historyTable(_ entries: [HistoryEntry]) -> String {
    guard !entries.isEmpty else { return "No transfers yet." }
    var table = TextTable(columns: [
        .init("tx"), .init("time"), .init("from"), .init("to"), .init("amount", alignment: .right),
    ])
    for entry in entries {
        table.append([entry.tx.text, ConsoleTime.local(entry.at), entry.from.text, entry.to.text, entry.amount.brl])
    }
    return table.render()
}

struct Watch: AsyncParsableCommand {
    static let configuration = CommandConfiguration(abstract: "Print each push as it arrives, until interrupted.")
    @OptionGroup var options: SharedOptions

    func run() async throws {
        let output = Output(json: options.json)
        try await options.withSession { session in
            for await push in session.pushes {
                output.emit(text: describe(push), json: pushJSON(push))
            }
        }
    }
}

/// A push for people: `Received R$ 50,00 from bob (balance R$ 150,00)`.
func describe(_ push: Push) -> String {
    switch push {
    case let .received(_, from, amount, balance): "Received \(amount.brl) from \(from) (balance \(balance.brl))"
    case let .key(key, expires): "New key: \(key) (rotates in \(timeLeft(until: expires)))"
    }
}

func pushJSON(_ push: Push) -> JSON {
    switch push {
    case let .received(tx, from, amount, balance):
        .object([
            "event": .string("received"), "tx": .string(tx.text), "from": .string(from.text),
            "amount_cents": .int(amount.value), "balance_cents": .int(balance.value),
        ])
    case let .key(key, expires):
        .object(["event": .string("key"), "key": .string(key.text), "key_expires_ms": .int(expires.milliseconds)])
    }
}
