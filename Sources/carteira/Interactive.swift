import CarteiraClient
import CarteiraConsole
import CarteiraCore
import CarteiraProtocol
import Foundation

/// Where the interactive mode reads lines and shows pushes. The readline
/// line editor fits behind it (`LineEditor.readLine(prompt:)` on its own
/// thread, `LineEditor.printAbove(_:)`).
protocol LinePrompter: Sendable {
    /// The next line without its ending, or `nil` at end of input.
    func readLine(prompt: String) async -> String?
    /// Shows `text` without garbling the line being typed.
    func printAbove(_ text: String)
}

/// Plain standard input, read on a thread of its own, so a blocking `read`
/// never holds a thread of the cooperative pool.
struct StdinPrompter: LinePrompter {
    private let reader = DedicatedThread(name: "carteira-stdin")

    func readLine(prompt: String) async -> String? {
        await reader.run {
            print(prompt, terminator: "")
            fflush(nil)
            return Swift.readLine(strippingNewline: true)
        }
    }

    func printAbove(_ text: String) {
        print("\n" + text)
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
        guard isatty(STDIN_FILENO) == 1 else { return nil }
        try? FileManager.default.createDirectory(
            atPath: stateDirectory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        let editor = try LineEditor(
            prompt: "> ", historyPath: stateDirectory + "/history", interruptReminder: "(type quit to leave)"
        ) { before, word in
            before.trimmingCharacters(in: .whitespaces).isEmpty ? commands.filter { $0.hasPrefix(word) } : []
        }
        return ReadlinePrompter(editor: editor)
    }

    func readLine(prompt: String) async -> String? {
        await editor.nextLine(prompt: prompt)
    }

    func printAbove(_ text: String) {
        editor.printAbove(text)
    }

    func close() {
        editor.close()
    }
}

/// `carteira` with no subcommand (CLIENT.md, Interactive use).
struct InteractiveSession {
    let session: PeerSession
    let prompter: any LinePrompter

    static let help = """
        Paste a payee's key to pay them. Commands:
          balance   show the balance
          key       show this machine's key and when it rotates
          rotate    replace the key now
          history   show the latest transfers
          help      show this text
          quit      leave
        """

    func run() async throws {
        let me = try await session.whoami()
        let registered = await session.account?.registeredNow == true
        prompter.printAbove(
            """
            Machine \(me.machine)\(registered ? " (registered now)" : "")
            Key: \(me.key) (rotates in \(timeLeft(until: me.keyExpires)))
            Balance: \(me.balance.brl)
            Type help for commands.
            """)
        await withTaskGroup(of: Void.self) { group in
            group.addTask { [session, prompter] in
                for await push in session.pushes { prompter.printAbove(describe(push)) }
            }
            defer { group.cancelAll() }
            await loop()
        }
    }

    private func say(_ text: String) { prompter.printAbove(text) }

    private func loop() async {
        while let line = await prompter.readLine(prompt: "pay key or command> ") {
            let word = line.trimmingCharacters(in: .whitespaces)
            do {
                switch word.lowercased() {
                case "": continue
                case "quit", "exit": return
                case "help": say(Self.help)
                case "balance": say("Balance: \(try await session.balance().brl)")
                case "key":
                    let info = try await session.key()
                    say("Key: \(info.key) (rotates in \(timeLeft(until: info.expires)))")
                case "rotate":
                    let info = try await session.rotate()
                    say("New key: \(info.key) (rotates in \(timeLeft(until: info.expires)))")
                case "history": say(historyTable(try await session.history()))
                default:
                    guard let key = PaymentKey(word) else {
                        say("That is neither a payment key (a UUID like 7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8) nor a command; type help.")
                        continue
                    }
                    guard try await pay(key) else { return }
                }
            } catch let error as ClientError {
                say("\(error.message)")
            } catch {
                say("\(error)")
            }
        }
    }

    /// One payment: CHECK, confirm, amount, SEND. `false` when input ended.
    private func pay(_ key: PaymentKey) async throws -> Bool {
        let payee: MachineName
        do {
            payee = try await session.check(key)
        } catch let error as ClientError where error.errorCode != nil {
            say("Cannot pay that key: \(error.message)")
            return true
        }
        guard let answer = await prompter.readLine(prompt: "Pay \(payee)? [y/N] ") else { return false }
        guard ["y", "yes", "s", "sim"].contains(answer.trimmingCharacters(in: .whitespaces).lowercased()) else {
            say("Nothing sent.")
            return true
        }
        var amount: Centavos?
        while amount == nil {
            guard let text = await prompter.readLine(prompt: "Amount in R$ (like 50 or 12,50; empty to cancel): ") else { return false }
            let trimmed = text.trimmingCharacters(in: .whitespaces)
            if trimmed.isEmpty {
                say("Nothing sent.")
                return true
            }
            amount = Centavos(amount: trimmed)
            if amount == nil { say("An amount is reais greater than zero: 50, 50,5 or 50,25 (up to 12 digits before the comma).") }
        }
        guard let amount, let requestID = freshRequestID() else { return true }
        let receipt = try await session.send(key: key, amount: amount, requestID: requestID)
        let note = receipt.confirmedAfterRetry ? " The connection dropped; the retry confirmed it was made once." : ""
        say("Sent \(amount.brl) to \(payee) (tx \(receipt.tx)). Balance: \(receipt.balance.brl).\(note)")
        return true
    }
}
