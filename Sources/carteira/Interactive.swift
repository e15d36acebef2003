import CarteiraClient
import CarteiraTerminal
import CarteiraCore
import CarteiraProtocol
import Foundation

/// Where the interactive mode reads lines and shows pushes. The readline
/// line editor fits behind it (`LineEditor.readInput(prompt:)` on its own
/// thread, `LineEditor.printAbove(_:)`).
protocol LinePrompter: Sendable {
    /// The next line without its ending, Ctrl-C, or the end of input.
    func readInput(prompt: String) async -> LineEditor.Input
    /// Shows `text` without garbling the line being typed.
    func printAbove(_ text: String)
}

/// Plain standard input, read on a thread of its own, so a blocking `read`
/// never holds a thread of the cooperative pool.
struct StdinPrompter: LinePrompter {
    private let reader = DedicatedThread(name: "carteira-stdin")

    func readInput(prompt: String) async -> LineEditor.Input {
        await reader.run {
            print(prompt, terminator: "")
            fflush(nil)
            return Swift.readLine(strippingNewline: true).map(LineEditor.Input.line) ?? .end
        }
    }

    func printAbove(_ text: String) {
        print(text)
        fflush(nil)
    }
}

/// GNU readline, the same editor as the server's console: line editing,
/// history in `<state dir>/history`, Tab completion of the commands, and
/// pushes printed above the line being typed.
struct ReadlinePrompter: LinePrompter {
    static let commands = ["balance", "key", "rotate", "history", "help", "quit"]

    let editor: LineEditor

    /// An editor when standard input is a terminal; `nil` on a pipe.
    static func openIfTerminal(stateDirectory: String) throws -> ReadlinePrompter? {
        guard Terminal.isTerminal(fd: STDIN_FILENO) else { return nil }
        try? FileManager.default.createDirectory(
            atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let editor = try LineEditor(
            prompt: "> ", historyPath: stateDirectory + "/history", interruptReminder: "(type quit to leave)"
        ) { before, word in
            before.trimmingCharacters(in: .whitespaces).isEmpty ? commands.filter { $0.hasPrefix(word) } : []
        }
        return ReadlinePrompter(editor: editor)
    }

    func readInput(prompt: String) async -> LineEditor.Input {
        await editor.nextInput(prompt: prompt)
    }

    func printAbove(_ text: String) {
        editor.printAbove(text)
    }

    func close() {
        editor.close()
    }
}

/// What this interactive session paid, for the goodbye.
private final class Tally: Sendable {
    private struct State {
        var count = 0
        var total = Centavos.zero
        var unknown: [RequestID] = []
        var ownKey: PaymentKey?
    }

    private let state = Locked(State())

    func paid(_ amount: Centavos) {
        state.withLock {
            $0.count += 1
            $0.total = $0.total.adding(amount) ?? $0.total
        }
    }

    func unknown(_ id: RequestID) { state.withLock { $0.unknown.append(id) } }

    var ownKey: PaymentKey? {
        get { state.withLock { $0.ownKey } }
        set { state.withLock { $0.ownKey = newValue } }
    }

    var summary: String {
        state.withLock { state in
            var text =
                state.count == 0
                ? "No payment was sent in this session."
                : "This session sent \(state.count) payment\(state.count == 1 ? "" : "s"), \(state.total.brl) in all."
            for id in state.unknown {
                text +=
                    " The outcome of request \(id) is unknown: `carteira send KEY AMOUNT --request-id \(id)` tells (it never pays twice)."
            }
            return text
        }
    }
}

/// `carteira` with no subcommand (CLIENT.md, Interactive use), paying in the
/// order of a PIX app: the key, the payee's name, the amount, then one
/// confirmation of amount and payee before anything is sent.
struct InteractiveSession {
    let session: PeerSession
    let prompter: any LinePrompter
    private let tally = Tally()

    init(session: PeerSession, prompter: any LinePrompter) {
        self.session = session
        self.prompter = prompter
    }

    static let help = """
        Paste a payee's key, or a Pix Copia e Cola code (from `carteira request`), to pay.
        Ctrl-C cancels the payment being entered; Ctrl-D or quit leaves. Commands:
          balance   show the balance
          key       show this machine's key and when it rotates
          rotate    replace the key now
          history   show the latest transfers with the balance after each
          help      show this text
          quit      leave
        """

    /// How a payment ended.
    private enum Ending {
        case done
        /// End of input: leave.
        case leave
    }

    func run() async throws {
        let me = try await session.whoami()
        tally.ownKey = me.key
        let registered = await session.account?.registeredNow == true
        prompter.printAbove(
            """
            Machine \(me.machine)\(registered ? " (registered now)" : "")
            Key: \(me.key) (rotates in \(timeLeft(until: me.keyExpires)))
            Balance: \(me.balance.brl)
            Type help for commands.
            """)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [session, prompter, tally] in
                for await event in session.events {
                    if case let .push(.key(key, _)) = event { tally.ownKey = key }
                    show(
                        event, emit: { text, _ in prompter.printAbove(text) },
                        note: { text, _ in prompter.printAbove(text) })
                }
            }
            defer { group.cancelAll() }
            await loop()
        }
        say(tally.summary)
    }

    private func say(_ text: String) { prompter.printAbove(text) }

    private func loop() async {
        while true {
            let word: String
            switch await prompter.readInput(prompt: "pay key or code, or a command> ") {
            case .end: return
            case .interrupted:
                say("(type quit to leave)")
                continue
            case let .line(line): word = line.trimmingCharacters(in: .whitespaces)
            }
            do {
                switch word.lowercased() {
                case "": continue
                case "quit", "exit": return
                case "help": say(Self.help)
                case "balance": say("Balance: \(try await session.balance().brl)")
                case "key":
                    let info = try await session.key()
                    tally.ownKey = info.key
                    say("Key: \(info.key) (rotates in \(timeLeft(until: info.expires)))")
                case "rotate":
                    let info = try await session.rotate()
                    tally.ownKey = info.key
                    say("New key: \(info.key) (rotates in \(timeLeft(until: info.expires)))")
                case "history": say(statementTable(try await session.statement()))
                default:
                    if try await pay(word) == .leave { return }
                }
            } catch let error as ClientError {
                say(sentence(humanMessage(error)))
            } catch {
                say(sentence("\(error)"))
            }
        }
    }

    /// A pasted key or code: one payment, or an explanation.
    private func pay(_ word: String) async throws -> Ending {
        if word.hasPrefix("000201") {
            let request: PaymentRequest
            do { request = try PaymentRequest.decode(word) } catch {
                say(sentence(error.description))
                return .done
            }
            return try await payCode(request, payload: word)
        }
        guard let key = PaymentKey(word) else {
            say(
                "That is neither a payment key (a UUID like 7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8), nor a Pix code, nor a command; type help."
            )
            return .done
        }
        if key == tally.ownKey {
            say("That is your own key: a machine cannot pay itself.")
            return .done
        }
        guard let payee = try await payee(of: key) else { return .done }
        say("This key belongs to \(payee).")
        while true {
            let amount: Centavos
            switch await askAmount(for: payee) {
            case .cancel: return .done
            case .leave: return leave(payee)
            case let .amount(value): amount = value
            }
            switch await confirm("Pay \(amount.brl) to \(payee)? [y/N] ") {
            case .leave: return leave(payee)
            case .no: return .done
            case .yes: break
            }
            switch try await send(key: key, amount: amount, payee: payee, requestID: freshRequestID()) {
            case .insufficientFunds:
                say("Enter a smaller amount, or press Ctrl-C to cancel.")
                continue
            case .finished: return .done
            }
        }
    }

    private func payCode(_ request: PaymentRequest, payload: String) async throws -> Ending {
        let key: PaymentKey
        let amount: Centavos
        do { (key, amount) = try payableParts(request) } catch {
            say(sentence("\(error)"))
            return .done
        }
        if key == tally.ownKey {
            say("That is your own payment request: a machine cannot pay itself.")
            return .done
        }
        guard let payee = try await payee(of: key) else { return .done }
        switch await confirm("Pay \(amount.brl) to \(payee), reference \(request.reference)? [y/N] ") {
        case .leave: return leave(payee)
        case .no: return .done
        case .yes: break
        }
        _ = try await send(key: key, amount: amount, payee: payee, requestID: requestID(for: request, payload: payload))
        return .done
    }

    /// The key's owner from `CHECK`, or `nil` after saying why it cannot be paid.
    private func payee(of key: PaymentKey) async throws -> MachineName? {
        let payee: MachineName
        do {
            payee = try await session.check(key)
        } catch let error as ClientError where error.errorCode != nil {
            say(sentence(humanMessage(error)))
            return nil
        }
        if payee == (await session.account?.machine) {
            say("That is your own key: a machine cannot pay itself.")
            return nil
        }
        return payee
    }

    private enum AmountAnswer {
        case amount(Centavos)
        case cancel
        case leave
    }

    private func askAmount(for payee: MachineName) async -> AmountAnswer {
        while true {
            switch await prompter.readInput(prompt: "Amount to pay \(payee), in R$ (like 50 or 12,50): ") {
            case .end: return .leave
            case .interrupted:
                say("Nothing sent.")
                return .cancel
            case let .line(text):
                let trimmed = text.trimmingCharacters(in: .whitespaces)
                if trimmed.isEmpty {
                    say("Nothing sent.")
                    return .cancel
                }
                if let amount = Centavos(amount: trimmed) { return .amount(amount) }
                say(sentence(amountProblem(trimmed)))
            }
        }
    }

    private enum Confirmation {
        case yes
        case no
        case leave
    }

    private func confirm(_ question: String) async -> Confirmation {
        switch await prompter.readInput(prompt: question) {
        case .end: return .leave
        case let .line(answer) where isYes(answer): return .yes
        case .interrupted, .line:
            say("Nothing sent.")
            return .no
        }
    }

    private func leave(_ payee: MachineName) -> Ending {
        say("Nothing was sent to \(payee).")
        return .leave
    }

    private enum SendResult {
        case finished
        case insufficientFunds
    }

    private func send(key: PaymentKey, amount: Centavos, payee: MachineName, requestID: RequestID?) async throws
        -> SendResult
    {
        guard let requestID else { return .finished }
        do {
            let receipt = try await session.send(key: key, amount: amount, requestID: requestID)
            if receipt.alreadyDone && !receipt.confirmedAfterRetry {
                say("Already paid earlier (tx \(receipt.tx)); no money moved now. Balance: \(receipt.balance.brl).")
                return .finished
            }
            tally.paid(amount)
            let note =
                receipt.confirmedAfterRetry ? " The connection dropped; the retry confirmed it was made once." : ""
            say("Sent \(amount.brl) to \(payee) (tx \(receipt.tx)). Balance: \(receipt.balance.brl).\(note)")
            return .finished
        } catch let error as ClientError {
            say(sentence(humanMessage(error)))
            if error.errorCode == .insufficientFunds { return .insufficientFunds }
            if case let .paymentOutcomeUnknown(id, _) = error { tally.unknown(id) }
            return .finished
        }
    }
}
