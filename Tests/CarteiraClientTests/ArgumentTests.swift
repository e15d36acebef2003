import ArgumentParser
import CarteiraCore
import CarteiraProtocol
import Testing

@testable import carteira

@Suite("carteira argument parsing")
struct ArgumentTests {
    @Test("good command lines parse to their subcommand with their options")
    func goodUsage() throws {
        let key = "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"
        let send = try #require(
            try Carteira.parseAsRoot([
                "send", key, "50,25", "--request-id", "pay-1", "--server", "10.0.0.2:8080", "--machine", "alice",
                "--json", "--connect-timeout", "2",
            ]) as? Send)
        #expect(send.key == key)
        #expect(send.amount == "50,25")
        #expect(send.requestID == "pay-1")
        #expect(send.options.json)
        #expect(try send.options.serverAddress().port == 8080)
        #expect(try send.options.machineName().text == "alice")
        #expect(send.options.connectTimeoutSeconds == 2)

        let history = try #require(try Carteira.parseAsRoot(["history", "--limit", "5"]) as? History)
        #expect(history.limit == 5)
        for name in ["register", "whoami", "balance", "key", "rotate", "watch"] {
            _ = try Carteira.parseAsRoot([name, "--machine", "alice"])
        }
        _ = try #require(try Carteira.parseAsRoot(["check", key]) as? Check)
        _ = try #require(try Carteira.parseAsRoot([]) as? Carteira)
    }

    @Test("bad usage is refused while parsing, so it exits 2 before anything is sent")
    func badUsage() {
        let key = "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"
        let bad: [[String]] = [
            ["send", "not-a-key", "5"], ["send", key, "0"], ["send", key, "5,555"], ["send", key],
            ["send", key, "5", "--request-id", "-"], ["check", "nope"], ["history", "--limit", "0"],
            ["history", "--limit", "1001"], ["balance", "--server", "nohost"], ["balance", "--machine", "a b"],
            ["balance", "--connect-timeout", "0"], ["fly"],
        ]
        for arguments in bad {
            #expect(throws: (any Error).self, "\(arguments)") { try Carteira.parseAsRoot(arguments) }
            do {
                _ = try Carteira.parseAsRoot(arguments)
            } catch {
                #expect(Carteira.exitCode(for: error) == .validationFailure, "\(arguments)")
            }
        }
    }

    @Test("the default machine name is the host name's first label cleaned to the allowed characters")
    func defaultMachine() {
        #expect(defaultMachineName(hostName: "pc-1.example.org").text == "pc-1")
        #expect(defaultMachineName(hostName: "joão's pc").text == "jo-o-s-pc")
        #expect(defaultMachineName(hostName: "").text == "peer")
    }
}

@Suite("carteira output")
struct OutputTests {
    @Test("pushes read as CLIENT.md shows them, and JSON escapes text and keeps integer cents")
    func rendering() throws {
        let push = try Push.parse("EVT|received|T000000000007|bob|5000|15000"[...]).unwrap()
        #expect(describe(push) == "Received R$ 50,00 from bob (balance R$ 150,00)")
        #expect(pushJSON(push).encoded
            == #"{"event":"received","tx":"T000000000007","from":"bob","amount_cents":5000,"balance_cents":15000}"#)
        #expect(JSON.object(["message": .string("a \"b\"\n\u{1}")]).encoded == #"{"message":"a \"b\"\n\u0001"}"#)
        #expect(timeLeft(until: Timestamp(milliseconds: 161_000), now: 0) == "2m 41s")
    }
}

private extension Optional {
    func unwrap() throws -> Wrapped { try #require(self) }
}
