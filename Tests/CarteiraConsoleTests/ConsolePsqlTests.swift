@testable import CarteiraConsole
import CarteiraCore
import CarteiraTerminal
import Foundation
import Testing

@Suite("The console like psql: names, toggles, filters, point in time, statements")
struct ConsolePsqlTests {
    @Test("command names are case-insensitive; exit and \\q are quit, ? and \\? are help")
    func namesAndAliases() async throws {
        let (console, _) = try makeInterpreter()
        #expect(await console.run("BALANCE beta").text == "beta: R$ 111,84")
        #expect(await console.run("exit").action == .quit)
        #expect(await console.run("\\q").action == .quit)
        #expect(await console.run("?").text.hasPrefix("commands"))
        #expect(await console.run("\\?").text.hasPrefix("commands"))
        #expect(await console.run("help exit").text.hasPrefix("usage: quit"))
    }

    @Test("tx takes the seq as well as the full id")
    func txBySeq() async throws {
        let (console, _) = try makeInterpreter()
        #expect(await console.run("tx 4").text == (await console.run("tx T000000000004").text))
        #expect(await console.run("tx t000000000004").text.hasPrefix("tx          T000000000004"))
        #expect(await console.run("tx 3") == .error("no transfer T000000000003"))
    }

    @Test("machines --sort balance|last|name orders the rows")
    func sorting() async throws {
        let (console, _) = try makeInterpreter()
        func order(_ line: String) async throws -> [String?] {
            try parseJSONArray(await console.run(line).text).map { $0["machine"] as? String }
        }
        #expect(try await order("machines --sort balance --format json") == ["beta", "gamma", "alpha"])
        #expect(try await order("machines --sort=last --format json") == ["alpha", "beta", "gamma"])
        #expect(try await order("machines --sort name --format json") == ["alpha", "beta", "gamma"])
        #expect(
            await console.run("machines --sort size")
                == .error("machines: --sort takes name, balance or last, not size"))
    }

    @Test("history filters by payer, payee and time; a date and a time may be two words or quoted")
    func historyFilters() async throws {
        let (console, _) = try makeInterpreter()
        func txs(_ line: String) async throws -> [String?] {
            try parseJSONArray(await console.run(line + " --format json").text).map { $0["tx"] as? String }
        }
        #expect(try await txs("history --from alpha") == ["T000000000004"])
        #expect(try await txs("history --to alpha") == ["T000000000005"])
        #expect(try await txs("history beta --from beta --to alpha") == ["T000000000005"])
        #expect(try await txs("history --since 2026-11-26T19:00:05Z") == ["T000000000005"])
        #expect(try await txs("history --until 2026-11-26T19:00:04.500Z") == ["T000000000004"])
        #expect(
            try await txs("history --since \"2026-11-26 00:00\" --until 2026-11-27") == [
                "T000000000005", "T000000000004",
            ])
        #expect(
            await console.run("history --since 2026-11-27 --until 2026-11-26")
                == .error("history: --until is before --since"))
        #expect(
            await console.run("history --since yesterday")
                == .error("history: --since takes a time, \(TerminalTime.inputForms); not yesterday"))
        #expect(await console.run("history --from nobody") == .error("no machine named nobody"))
        #expect(await console.run("history --since \"2026-11-26") == .error("a quote \" is not closed"))
    }

    @Test("balance --at gives the balance as a replay of the journal's prefix does")
    func balanceAt() async throws {
        let (console, backend) = try makeInterpreter()
        for seq in Int64(1)...5 {
            guard case let .success(ledger) = await backend.ledger(at: .seq(seq)) else {
                Issue.record("no ledger at \(seq)")
                continue
            }
            let objects = try parseJSONArray(await console.run("balance alpha --at \(seq) --format json").text)
            #expect(
                (objects.first?["balance_cents"] as? NSNumber)?.int64Value
                    == ledger.machines[Fixture.alpha]?.balance.value)
            #expect((objects.first?["seq"] as? NSNumber)?.int64Value == seq)
        }
        #expect(await console.run("balance alpha --at 4").text == "alpha: R$ 87,66 as of seq 4")
        #expect(await console.run("balance alpha --at 2026-11-26T19:00:04Z").text == "alpha: R$ 87,66 as of seq 4")
        #expect(await console.run("balance gamma --at 2") == .error("no machine named gamma as of seq 2"))
        #expect(
            await console.run("balance alpha --at 99") == .error("balance: the journal ends at seq 5, before seq 99"))
        #expect(
            await console.run("balance alpha --at soon")
                == .error("balance: --at takes a seq or a time, \(TerminalTime.inputForms); not soon"))
    }

    @Test("statement: opening, each line with the running balance, closing and totals")
    func statement() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("statement alpha").text == """
                statement of alpha from its registration
                opening balance  R$ 100,00
                seq  tx             time                 direction  counterparty    amount   balance
                ---  -------------  -------------------  ---------  ------------  --------  --------
                  4  T000000000004  2026-11-26 19:00:04  out        beta          R$ 12,34  R$ 87,66
                  5  T000000000005  2026-11-26 19:00:05  in         beta           R$ 0,50  R$ 88,16
                closing balance  R$ 88,16
                total in         R$ 0,50 (1 transfer)
                total out        R$ 12,34 (1 transfer)
                """)
        let since = try parseJSONArray(
            await console.run("statement alpha --since 2026-11-26T19:00:05Z --format json").text)
        #expect((since.first?["opening_balance_cents"] as? NSNumber)?.int64Value == 8766)
        #expect((since.first?["lines"] as? [[String: Any]])?.count == 1)
        #expect(
            await console.run("statement alpha --format csv").text == """
                seq,tx,time,direction,counterparty,amount_cents,balance_cents
                ,,,opening,,,10000
                4,T000000000004,2026-11-26T19:00:04.000Z,out,beta,1234,8766
                5,T000000000005,2026-11-26T19:00:05.000Z,in,beta,50,8816
                ,,,closing,,,8816
                ,,,total in,,50,
                ,,,total out,,1234,
                """)
        #expect(await console.run("statement nobody") == .error("no machine named nobody"))
        #expect(
            await console.run("statement")
                == .error("statement: missing argument (usage: \(ConsoleCommand.named("statement")?.usage ?? ""))"))
    }

    @Test("\\x on shows records, off tables, auto records only when too wide for the terminal")
    func expandedDisplay() async throws {
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let console = ConsoleInterpreter(backend: backend, time: TerminalTime.utc, width: { 80 })
        #expect(await console.run("sessions").text.contains("remote address"))
        // The machines table is 117 columns: auto makes records on 80.
        let machines = await console.run("machines").text
        #expect(machines.hasPrefix("-[ RECORD 1 ]"))
        #expect(machines.contains("\nbalance          | R$ 88,16\n"))
        #expect(machines.hasSuffix("(3 rows)"))
        #expect(await console.run("\\x off") == ConsoleOutput("Expanded display is off.", stream: .diagnostics))
        #expect(await console.run("machines").text.hasPrefix("machine  key"))
        #expect(await console.run("\\x") == ConsoleOutput("Expanded display is on.", stream: .diagnostics))
        #expect(await console.run("sessions").text.hasPrefix("-[ RECORD 1 ]"))
        #expect(await console.run("\\x sideways") == .error("\\x takes on, off or auto, not sideways"))
    }

    @Test("\\timing prints how long a command took, from the injected clock")
    func timing() async throws {
        let ticks = Locked<UInt64>(0)
        let clock: @Sendable () -> UInt64 = {
            ticks.withLock { now in
                defer { now += 1_234_000 }
                return now
            }
        }
        let console = ConsoleInterpreter(
            backend: FakeBackend(ledger: try Fixture.ledger()), time: TerminalTime.utc, clock: clock)
        #expect(await console.run("\\timing on").text == "Timing is on.\nTime: 1.234 ms")
        #expect(await console.run("balance beta").text == "beta: R$ 111,84\nTime: 1.234 ms")
        #expect(await console.run("\\timing").text == "Timing is off.")
        #expect(await console.run("balance beta").text == "beta: R$ 111,84")
        #expect(await console.run("\\timing maybe") == .error("\\timing takes on or off, not maybe"))
        // A refusal repeats at most 40 characters of the value, as \\pager's does.
        let long = String(repeating: "x", count: 500)
        #expect(await console.run("\\timing \(long)") == .error("\\timing takes on or off, not \(long.prefix(40))"))
    }

    @Test("\\pager turns the pager off and on; it starts on; anything but on or off is refused")
    func pagerToggle() async throws {
        let console = ConsoleInterpreter(backend: FakeBackend(ledger: try Fixture.ledger()), time: TerminalTime.utc)
        #expect(console.pagerOn)
        #expect(await console.run("\\pager") == ConsoleOutput("Pager usage is off.", stream: .diagnostics))
        #expect(!console.pagerOn)
        #expect(
            await console.run("\\PAGER on") == ConsoleOutput("Pager is used for long output.", stream: .diagnostics))
        #expect(console.pagerOn)
        #expect(await console.run("\\pager off").text == "Pager usage is off.")
        #expect(await console.run("\\pager always") == .error("\\pager takes on or off, not always"))
        #expect(!console.pagerOn)
        #expect(await console.run("help \\pager").text.hasPrefix("usage: \\pager [on|off]"))
    }

    @Test("shutdown asks again while sessions are open on a terminal; anything else in between cancels")
    func shutdownConfirmation() async throws {
        let backend = FakeBackend(ledger: try Fixture.ledger())
        let console = ConsoleInterpreter(backend: backend, time: TerminalTime.utc, confirmsShutdown: true)
        let asked = ConsoleOutput("2 sessions are open; type shutdown again to stop the server", stream: .diagnostics)
        #expect(await console.run("shutdown") == asked)
        _ = await console.run("stats")
        #expect(await console.run("shutdown") == asked)
        #expect(await console.run("shutdown").action == .shutdown)
        // quit does not ask: it is the operator's explicit way out.
        #expect(await console.run("quit").action == .quit)
        #expect(ConsoleInterpreter.staysOutOfHistory("shutdown"))
        #expect(ConsoleInterpreter.staysOutOfHistory("  QUIT "))
        #expect(ConsoleInterpreter.staysOutOfHistory("exit"))
        #expect(!ConsoleInterpreter.staysOutOfHistory("machines"))
    }

    @Test("times read as local YYYY-MM-DD[ HH:MM[:SS]] or ISO 8601 with a zone; anything else is refused")
    func timeParsing() {
        #expect(TerminalTime.parse("2026-11-26T19:22:09Z") == Timestamp(iso8601: "2026-11-26T19:22:09.000Z"))
        #expect(TerminalTime.parse("2026-11-26T19:22:09.123Z") == Timestamp(iso8601: "2026-11-26T19:22:09.123Z"))
        #expect(TerminalTime.parse("2026-11-26T16:22:09-03:00") == Timestamp(iso8601: "2026-11-26T19:22:09.000Z"))
        for local in ["2026-11-26", "2026-11-26 19:22", "2026-11-26 19:22:09", "2026-11-26T19:22"] {
            let parsed = TerminalTime.parse(local)
            #expect(parsed != nil, "\(local)")
            // Shown back in local time, it reads the same.
            if let parsed {
                #expect(TerminalTime.local(parsed).hasPrefix(local.replacingOccurrences(of: "T", with: " ")))
            }
        }
        for bad in [
            "", "yesterday", "2026-13-01", "2026-02-30", "2026-11-26 25:00", "2026-11-26 19", "2026-11-26Z1",
            "2026-11-26T19:22:09+3", "20261126",
        ] {
            #expect(TerminalTime.parse(bad) == nil, "\(bad)")
        }
        #expect(PointInTime("42") == .seq(42))
        #expect(PointInTime("2026-11-26T19:22:09Z") == .time(Timestamp(iso8601: "2026-11-26T19:22:09.000Z")!))
        #expect(PointInTime("99999999999999999999") == nil)
    }

    @Test("every command that prints rows gives JSON that parses")
    func everyCommandJSON() async throws {
        let (console, _) = try makeInterpreter()
        let lines = [
            "machines", "machine alpha", "balance alpha", "balance alpha --at 4", "history", "statement alpha",
            "tx 4", "sessions", "stats", "verify",
        ]
        for command in ConsoleCommand.all where command.printsRows {
            #expect(lines.contains { $0.hasPrefix(command.name + " ") || $0 == command.name }, "\(command.name)")
        }
        for line in lines {
            let output = await console.run(line + " --format json")
            #expect(output.stream == .output, "\(line)")
            #expect(try !parseJSONArray(output.text).isEmpty, "\(line)")
        }
    }
}
