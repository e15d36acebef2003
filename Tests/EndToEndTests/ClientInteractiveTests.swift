import CarteiraTestSupport
import Foundation
import Testing

private enum Step {
    case expect(String)
    case send(String)

    var json: [String] {
        switch self {
        case let .expect(text): ["expect", text]
        case let .send(text): ["send", text]
        }
    }
}

/// Runs `carteira ARGS` on a pseudo-terminal through the steps; returns the
/// transcript and the exit status line.
private func onTerminal(_ arguments: [String], _ steps: [Step]) async throws -> (
    transcript: String, errors: String, status: Int32?
) {
    try await onPseudoTerminal("carteira", arguments, steps: steps.map(\.json))
}

@Suite("The interactive client on a pseudo-terminal", .timeLimit(.minutes(2)))
struct ClientInteractiveTests {
    @Test(
        "pays in the PIX order: key, payee's name, amount, one confirmation; Ctrl-C cancels; Ctrl-D says what was sent")
    func pixOrder() async throws {
        let peers = try await TwoPeers.start()
        let aliceKey = try await peers.run(["key"], as: "alice").output.trimmingCharacters(in: .whitespacesAndNewlines)
        let code = try await peers.run(["request", "2", "--id", "INT1"], as: "bob").output
            .trimmingCharacters(in: .whitespacesAndNewlines)
        let prompt = "pay key or code, or a command> "
        let session = try await onTerminal(
            ["--server", "127.0.0.1:\(peers.port)", "--state-dir", peers.state, "--machine", "alice"],
            [
                .expect(prompt), .send(aliceKey + "\r"), .expect("That is your own key"),
                // Too much: refused after the confirmation, and the amount is asked again.
                .expect(prompt), .send(peers.bobKey + "\r"), .expect("This key belongs to bob."),
                .expect("Amount to pay bob"), .send("500\r"), .expect("Pay R$ 500,00 to bob? [y/N] "), .send("y\r"),
                .expect("Not enough money"), .expect("Amount to pay bob"),
                // Ctrl-C cancels the payment in progress.
                .send("\u{3}"), .expect("Nothing sent."), .expect(prompt),
                .send(" \(peers.bobKey) \r"), .expect("Amount to pay bob"), .send(" 1,5 \r"),
                .expect("Pay R$ 1,50 to bob? [y/N] "), .send("y\r"), .expect("Sent R$ 1,50 to bob"),
                // A pasted payment request.
                .expect(prompt), .send(code + "\r"), .expect("Pay R$ 2,00 to bob, reference INT1? [y/N] "),
                .send("s\r"),
                .expect("Sent R$ 2,00 to bob"),
                // Ctrl-D at the confirmation: nothing sent for this one, and the tally.
                .expect(prompt), .send(peers.bobKey + "\r"), .expect("Amount to pay bob"), .send("9\r"),
                .expect("Pay R$ 9,00 to bob? [y/N] "), .send("\u{4}"),
                .expect("Nothing was sent to bob."), .expect("This session sent 2 payments, R$ 3,50 in all."),
            ])
        #expect(session.errors.contains("EXIT 0"), "\(session.errors)\n\(session.transcript)")
        // The amount is confirmed last, after the payee's name.
        let text = session.transcript
        let name = try #require(text.range(of: "This key belongs to bob."))
        let amount = try #require(text.range(of: "Amount to pay bob"))
        let confirm = try #require(text.range(of: "Pay R$ 500,00 to bob?"))
        #expect(name.lowerBound < amount.lowerBound && amount.lowerBound < confirm.lowerBound)
        #expect(try await peers.balanceCents(of: "bob") == 10_350)
        #expect(try await peers.balanceCents(of: "alice") == 9_650)
        await peers.stop()
    }

    @Test("a machine without a token is registered only after the person says yes")
    func asksBeforeRegistering() async throws {
        let peers = try await TwoPeers.start()
        let declined = try await peers.run([], as: "carol", input: "n\n")
        #expect(declined.status == 1)
        #expect(declined.output.contains("Register carol on 127.0.0.1:\(peers.port) now? [y/N]"))
        #expect(declined.output.contains("Nothing registered."))
        #expect(!FileManager.default.fileExists(atPath: peers.state + "/127.0.0.1_\(peers.port)/carol.token"))
        let accepted = try await peers.run([], as: "carol", input: "y\nbalance\n")
        #expect(accepted.status == 0, "\(accepted.errors)")
        #expect(accepted.output.contains("Machine carol (registered now)"))
        #expect(accepted.output.contains("Balance: R$ 100,00"))
        #expect(accepted.output.contains("No payment was sent in this session."))
        await peers.stop()
    }
}
