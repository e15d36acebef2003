import CarteiraConsole
import CarteiraCore
import CarteiraTerminal
import Foundation
import Testing

@Suite("Console commands over a real ledger")
struct ConsoleInterpreterTests {
    let historyTable = """
        tx             time                 from   to       amount
        -------------  -------------------  -----  -----  --------
        T000000000005  2026-11-26 19:00:05  beta   alpha   R$ 0,50
        T000000000004  2026-11-26 19:00:04  alpha  beta   R$ 12,34
        """

    @Test("machines prints every machine as an aligned table with money right-aligned and - for no transfer")
    func machinesTable() async throws {
        let (console, _) = try makeInterpreter()
        let output = await console.run("machines")
        #expect(output.action == .continue)
        #expect(
            output.text == """
                machine  key                                     balance  sessions  registered at        last transfer at
                -------  ------------------------------------  ---------  --------  -------------------  -------------------
                alpha    11111111-1111-4111-8111-111111111111   R$ 88,16         1  2026-11-26 19:00:01  2026-11-26 19:00:05
                beta     22222222-2222-4222-9222-222222222222  R$ 111,84         0  2026-11-26 19:00:02  2026-11-26 19:00:05
                gamma    33333333-3333-4333-a333-333333333333  R$ 100,00         0  2026-11-26 19:00:03  -
                (3 rows)
                """)
    }

    @Test("machines --limit cuts the table and says how many were left out")
    func machinesLimit() async throws {
        let (console, _) = try makeInterpreter()
        let lines = await console.run("machines --limit 1").text.split(separator: "\n")
        #expect(lines.count == 4)
        #expect(lines[2].hasPrefix("alpha "))
        #expect(lines[3] == "(1 row; 2 more machines, use --limit or --format)")
    }

    @Test("machines --format json is one array of objects with centavos and UTC times, null for none")
    func machinesJSON() async throws {
        let (console, _) = try makeInterpreter()
        let objects = try parseJSONArray(await console.run("machines --format json").text)
        #expect(objects.count == 3)
        #expect(objects[0]["machine"] as? String == "alpha")
        #expect(objects[0]["key"] as? String == Fixture.alphaKey.text)
        #expect((objects[0]["balance_cents"] as? NSNumber)?.int64Value == 8816)
        #expect((objects[0]["sessions"] as? NSNumber)?.intValue == 1)
        #expect(objects[0]["registered_at"] as? String == "2026-11-26T19:00:01.000Z")
        #expect(objects[0]["last_transfer_at"] as? String == "2026-11-26T19:00:05.000Z")
        #expect((objects[1]["balance_cents"] as? NSNumber)?.int64Value == 11184)
        #expect(objects[2]["last_transfer_at"] is NSNull)
    }

    @Test("machines --format=csv prints a header row and one row per machine")
    func machinesCSV() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("machines --format=csv").text == """
                machine,key,balance_cents,sessions,registered_at,last_transfer_at
                alpha,11111111-1111-4111-8111-111111111111,8816,1,2026-11-26T19:00:01.000Z,2026-11-26T19:00:05.000Z
                beta,22222222-2222-4222-9222-222222222222,11184,0,2026-11-26T19:00:02.000Z,2026-11-26T19:00:05.000Z
                gamma,33333333-3333-4333-a333-333333333333,10000,0,2026-11-26T19:00:03.000Z,
                """)
    }

    @Test("machine <name> shows the record in full and its last transfers")
    func machineRecord() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("machine alpha").text == """
                machine           alpha
                key               11111111-1111-4111-8111-111111111111
                key expires       2026-11-26 19:03:01
                balance           R$ 88,16
                sessions          1
                registered at     2026-11-26 19:00:01
                last transfer at  2026-11-26 19:00:05
                transfers         2

                last 2 transfers:
                """ + "\n" + historyTable)
        #expect(await console.run("machine gamma").text.hasSuffix("transfers         0\n\nno transfers yet"))
        let objects = try parseJSONArray(await console.run("machine beta --format json").text)
        #expect(objects.count == 1)
        #expect((objects[0]["transfers"] as? NSNumber)?.intValue == 2)
        #expect(objects[0]["key_expires_at"] as? String == "2026-11-26T19:03:02.000Z")
    }

    @Test("balance finds a machine by name and by its current key, upper-case key too")
    func balance() async throws {
        let (console, _) = try makeInterpreter()
        #expect(await console.run("balance beta").text == "beta: R$ 111,84")
        #expect(await console.run("balance \(Fixture.alphaKey.text)").text == "alpha: R$ 88,16")
        #expect(await console.run("balance \(Fixture.gammaKey.text.uppercased())").text == "gamma: R$ 100,00")
        #expect(
            await console.run("balance alpha --format csv").text == """
                machine,balance_cents,seq
                alpha,8816,5
                """)
        #expect(
            await console.run("balance 55555555-5555-4555-8555-555555555555").text
                == "no machine has or had the key 55555555-5555-4555-8555-555555555555")
    }

    @Test("balance finds the owner of a replaced key (regression: it looked at current keys only)")
    func balanceOfReplacedKey() async throws {
        var ledger = try Fixture.ledger()
        try ledger.apply(
            Event(
                seq: 6, at: Fixture.at(6),
                kind: .keyRotated(
                    Event.KeyRotation(
                        machine: Fixture.gamma, key: Fixture.rotatedKey, expires: Fixture.at(600), reason: .admin))))
        let console = ConsoleInterpreter(backend: FakeBackend(ledger: ledger), time: TerminalTime.utc)
        #expect(
            await console.run("balance \(Fixture.gammaKey.text)").text
                == "gamma: R$ 100,00 (a replaced key; its current key is \(Fixture.rotatedKey))")
        #expect(await console.run("balance \(Fixture.rotatedKey.text)").text == "gamma: R$ 100,00")
        let objects = try parseJSONArray(await console.run("balance \(Fixture.gammaKey.text) --format json").text)
        #expect(objects.first?["machine"] as? String == "gamma")
    }

    @Test("machine --format json and csv carry the last transfers the table shows (regression)")
    func machineRowsCarryTransfers() async throws {
        let (console, _) = try makeInterpreter()
        let objects = try parseJSONArray(await console.run("machine alpha --format json").text)
        let transfers = try #require(objects.first?["last_transfers"] as? [[String: Any]])
        #expect(transfers.map { $0["tx"] as? String } == ["T000000000005", "T000000000004"])
        #expect((transfers[1]["amount_cents"] as? NSNumber)?.int64Value == 1234)
        let csv = await console.run("machine alpha --format csv").text.split(separator: "\n")
        #expect(csv.count == 3)
        #expect(csv[0].hasSuffix(",transfers,tx,time,from,to,amount_cents"))
        #expect(
            csv[1].hasPrefix("alpha,") && csv[1].hasSuffix(",2,T000000000005,2026-11-26T19:00:05.000Z,beta,alpha,50"))
        #expect(csv[2].hasSuffix(",T000000000004,2026-11-26T19:00:04.000Z,alpha,beta,1234"))
        let none = try parseJSONArray(await console.run("machine gamma --format json").text)
        #expect((none.first?["last_transfers"] as? [Any])?.isEmpty == true)
        let noneCSV = await console.run("machine gamma --format csv").text.split(separator: "\n")
        #expect(noneCSV.count == 2 && noneCSV[1].hasSuffix(",0,,,,,"))
    }

    @Test("history lists transfers newest first, for all or one machine, within the limit")
    func history() async throws {
        let (console, _) = try makeInterpreter()
        #expect(await console.run("history").text == historyTable + "\n(2 rows)")
        #expect(await console.run("history alpha").text == historyTable + "\n(2 rows)")
        let limited = await console.run("history --limit 1").text.split(separator: "\n")
        #expect(limited.count == 4)
        #expect(limited[3] == "(1 row)")
        #expect(limited[2].hasPrefix("T000000000005"))
        #expect(
            await console.run("history gamma").text == """
                tx  time  from  to  amount
                --  ----  ----  --  ------
                (0 rows)
                """)
        #expect(
            await console.run("history beta --limit 5 --format csv").text == """
                tx,time,from,to,amount_cents
                T000000000005,2026-11-26T19:00:05.000Z,beta,alpha,50
                T000000000004,2026-11-26T19:00:04.000Z,alpha,beta,1234
                """)
    }

    @Test("tx shows one transfer in full with its journal seq")
    func transfer() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("tx T000000000004").text == """
                tx          T000000000004
                seq         4
                time        2026-11-26 19:00:04
                from        alpha
                to          beta
                key         22222222-2222-4222-9222-222222222222
                amount      R$ 12,34
                request id  pay-1
                """)
        let objects = try parseJSONArray(await console.run("tx T000000000005 --format json").text)
        #expect((objects[0]["seq"] as? NSNumber)?.int64Value == 5)
        #expect((objects[0]["amount_cents"] as? NSNumber)?.int64Value == 50)
        #expect(objects[0]["request_id"] is NSNull)
        #expect(await console.run("tx T000000000003").text == "no transfer T000000000003")
    }

    @Test("sessions lists open connections with - for a connection not logged in")
    func sessions() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("sessions").text == """
                remote address   machine  connected since      requests served  rate limited
                ---------------  -------  -------------------  ---------------  ------------
                127.0.0.1:50001  alpha    2026-11-26 19:00:10               12  -
                127.0.0.1:50002  -        2026-11-26 19:00:20                0  address
                (2 rows)
                """)
        let objects = try parseJSONArray(await console.run("sessions --format json").text)
        #expect(objects[1]["machine"] is NSNull)
        #expect(objects[0]["rate_limited"] is NSNull)
        #expect(objects[1]["rate_limited"] as? String == "address")
        #expect(objects[0]["connected_at"] as? String == "2026-11-26T19:00:10.000Z")
    }

    @Test("stats shows the ledger totals and the server's figures")
    func statistics() async throws {
        let (console, _) = try makeInterpreter()
        #expect(
            await console.run("stats").text == """
                machines               3
                transfers              2
                money in circulation   R$ 300,00
                journal                /var/lib/carteira/journal.log
                journal size (bytes)   2048
                last seq               5
                last hash              \(Fixture.headHash)
                syncs                  4
                events synced          6
                events per sync        1.50
                requests last minute   90
                requests per second    1.50
                uptime                 1h 02m 05s
                started at             2026-11-26 17:57:55
                rate-limited refusals  7
                limited connections    1
                limited addresses      127.0.0.1 192.0.2.7
                limited machines       -
                """)
        let objects = try parseJSONArray(await console.run("stats --format json").text)
        #expect((objects[0]["total_money_cents"] as? NSNumber)?.int64Value == 30000)
        #expect((objects[0]["uptime_seconds"] as? NSNumber)?.int64Value == 3725)
        #expect(objects[0]["last_hash"] as? String == Fixture.headHash)
        #expect((objects[0]["requests_per_second"] as? NSNumber)?.doubleValue == 1.5)
        #expect(objects[0]["limited_addresses"] as? String == "127.0.0.1 192.0.2.7")
        #expect(objects[0]["limited_machines"] is NSNull)
    }

    @Test("rotate asks the backend and prints the new key; an unknown machine is one line")
    func rotate() async throws {
        let (console, backend) = try makeInterpreter()
        #expect(
            await console.run("rotate beta").text
                == "rotated beta's key: 44444444-4444-4444-b444-444444444444 (expires 2026-11-26 19:10:00)")
        #expect(await console.run("rotate nobody").text == "rotate: no machine named nobody")
        #expect(await backend.rotations == [Fixture.beta])
    }

    @Test("verify prints the backend's summary or its problem")
    func verify() async throws {
        let (console, backend) = try makeInterpreter()
        #expect(await console.run("verify").text == "journal ok: 6 events, 3 machines")
        await backend.setVerifyResult(.failure(JournalVerifyFailure("line 7: hash does not chain")))
        #expect(await console.run("verify").text == "verify failed: line 7: hash does not chain")
    }

    @Test("help lists every command; help <command> gives its usage")
    func help() async throws {
        let (console, _) = try makeInterpreter()
        let text = await console.run("help").text
        for command in ConsoleCommand.all {
            #expect(text.contains("  \(command.usage)  "), "help lacks \(command.name)")
        }
        #expect(
            await console.run("help history").text == """
                usage: history [machine] [--from M] [--to M] [--since TIME] [--until TIME] [--limit N] [--format csv|json]
                transfers, newest first (default limit 20, at most 1000)
                """)
    }

    @Test("quit and shutdown end the console with their action; a blank line prints nothing")
    func actions() async throws {
        let (console, _) = try makeInterpreter()
        #expect(await console.run("quit") == ConsoleOutput("shutting down", action: .quit, stream: .diagnostics))
        #expect(
            await console.run("  shutdown ") == ConsoleOutput("shutting down", action: .shutdown, stream: .diagnostics))
        #expect(await console.run("   ") == ConsoleOutput(""))
    }

    @Test(
        "an unknown command or a bad argument prints one clear line and the console goes on",
        arguments: [
            ("frobnicate", "unknown command frobnicate; type help (or \\?) for the commands"),
            ("machine", "machine: missing argument (usage: machine <name> [--format csv|json])"),
            ("machine alpha beta", "machine: unexpected argument beta (usage: machine <name> [--format csv|json])"),
            ("machine nobody", "no machine named nobody"),
            ("machine bad/name", "bad/name is not a machine name"),
            ("balance what?", "what? is not a machine name or a key"),
            ("history --limit 0", "history: --limit takes a number from 1 to 1000, not 0"),
            ("history --limit 1001", "history: --limit takes a number from 1 to 1000, not 1001"),
            (
                "history --limit",
                "history: --limit needs a value (usage: history [machine] [--from M] [--to M] [--since TIME] [--until TIME] [--limit N] [--format csv|json])"
            ),
            ("history nobody", "no machine named nobody"),
            ("machines --format xml", "machines: --format takes table, csv or json, not xml"),
            ("rotate alpha --format json", "rotate: unknown option --format (usage: rotate <machine>)"),
            ("sessions --limit 3", "sessions: unknown option --limit (usage: sessions [--format csv|json])"),
            ("stats now", "stats: unexpected argument now (usage: stats [--format csv|json])"),
            ("tx 42!", "tx: 42! is not a transfer id (like T000000000042) or a seq (like 42)"),
            ("help nothing", "help: no command named nothing; type help for the commands"),
            ("quit now", "quit: unexpected argument now (usage: quit)"),
        ])
    func badInput(line: String, message: String) async throws {
        let (console, backend) = try makeInterpreter()
        let output = await console.run(line)
        #expect(output == ConsoleOutput.error(message))
        #expect(!output.text.contains("\n"))
        #expect(await backend.shutdowns == 0)
    }
}
