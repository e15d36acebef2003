import ArgumentParser
import CarteiraClient
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

    @Test(
        "amounts are trimmed, and each kind of bad amount is named: negative, thousands separator, zero, centavos, size"
    )
    func amounts() throws {
        #expect(try parseAmount(" 12,50 ") == Centavos(1250))
        #expect(
            try parsePaymentKey(" 7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8 ").text == "7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8"
        )
        let cases: [(String, String)] = [
            ("-1", "-1 is a negative amount"), ("-0,50", "negative amount"), ("1.234,56", "no thousands separator"),
            ("1,234.56", "no thousands separator"), ("1.000", "no thousands separator"), ("0", "greater than zero"),
            ("0,00", "greater than zero"), ("5,555", "no thousands separator"), ("5,5555", "at most two digits"),
            ("1234567890123", "too large"), ("", "missing"), ("dez", "reais greater than zero"),
            ("+5", "without a sign"),
        ]
        for (text, problem) in cases {
            #expect(amountProblem(text).contains(problem), "\(text): \(amountProblem(text))")
            #expect(throws: ValidationError.self) { try parseAmount(text) }
        }
        // `send KEY -1` is caught before ArgumentParser reads -1 as an option.
        #expect(Carteira.negativeAmount(in: ["send", "k", "-1"])?.contains("negative amount") == true)
        #expect(Carteira.negativeAmount(in: ["--machine", "a", "request", "-5"]) != nil)
        #expect(Carteira.negativeAmount(in: ["send", "k", "5", "--timeout", "-1"]) == nil)
        #expect(Carteira.negativeAmount(in: ["balance"]) == nil)
    }

    @Test("--timeout and --connect-timeout parse and are bounded; --version names the protocol")
    func timeouts() throws {
        let balance = try #require(try Carteira.parseAsRoot(["balance", "--timeout", "2.5"]) as? Balance)
        #expect(balance.options.timeoutSeconds == 2.5)
        #expect(try balance.options.configuration(mayRegister: false).requestTimeout == .milliseconds(2500))
        let plain = try #require(try Carteira.parseAsRoot(["balance"]) as? Balance)
        #expect(plain.options.timeoutSeconds == 10)
        for bad in [["balance", "--timeout", "0"], ["balance", "--timeout", "4000"]] {
            #expect(throws: (any Error).self) { try Carteira.parseAsRoot(bad) }
        }
        #expect(carteiraVersion.contains("protocol 1"))
    }

    @Test("refusals read as sentences; known codes get words of their own")
    func refusalSentences() {
        #expect(
            humanMessage(.refused(code: "insufficient_funds", message: "balance R$ 5,00 is below R$ 6,00"))
                == "Not enough money: balance R$ 5,00 is below R$ 6,00.")
        #expect(humanMessage(.refused(code: "self_transfer", message: "x")).hasPrefix("That is your own key"))
        #expect(humanMessage(.refused(code: "some_new_code", message: "the server says no")) == "The server says no.")
        #expect(sentence("done already.") == "Done already.")
    }

    @Test("a code without a reference is paid with an id derived from the code itself, so twice is still once")
    func derivedRequestID() throws {
        let request = try PaymentRequest.decode(PublishedCodes.bcbStatic)
        let first = try #require(requestID(for: request, payload: PublishedCodes.bcbStatic))
        #expect(first.text.hasPrefix("pix-"))
        #expect(requestID(for: request, payload: " " + PublishedCodes.bcbStatic + "\n") == first)
        let named = try PaymentRequest.decode(PublishedCodes.withDescription)
        #expect(requestID(for: named, payload: PublishedCodes.withDescription)?.text == "123")
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
        #expect(
            pushJSON(push).encoded
                == #"{"event":"received","tx":"T000000000007","from":"bob","amount_cents":5000,"balance_cents":15000}"#)
        #expect(JSON.object(["message": .string("a \"b\"\n\u{1}")]).encoded == #"{"message":"a \"b\"\n\u0001"}"#)
        #expect(timeLeft(until: Timestamp(milliseconds: 161_000), now: 0) == "2m 41s")
    }
}

private extension Optional {
    func unwrap() throws -> Wrapped { try #require(self) }
}

@Suite("carteira server lists")
struct ServerListTests {
    @Test("--server A:PORT,B:PORT lists the servers in order; tokens go under the first")
    func serverList() throws {
        let balance = try #require(
            try Carteira.parseAsRoot(["balance", "--server", "10.0.0.2:7070, 10.0.0.3:7071,10.0.0.2:7070"])
                as? Balance)
        let addresses = try balance.options.serverAddresses()
        #expect(addresses.map(\.description) == ["10.0.0.2:7070", "10.0.0.3:7071"])
        #expect(try balance.options.serverAddress().description == "10.0.0.2:7070")
        let configuration = try balance.options.configuration(mayRegister: false)
        #expect(configuration.server.description == "10.0.0.2:7070")
        #expect(configuration.addresses.map(\.description) == ["10.0.0.2:7070", "10.0.0.3:7071"])
    }

    @Test("a list with a bad entry is refused while parsing, naming the option")
    func badList() {
        for bad in ["10.0.0.2:7070,", "10.0.0.2:7070,nope", ",10.0.0.2:7070"] {
            #expect(throws: (any Error).self) { try Carteira.parseAsRoot(["balance", "--server", bad]) }
        }
    }
}
