import CarteiraTerminal
import CarteiraCore
import Foundation
import CarteiraTestSupport
import Testing

@Suite("Tables, records, CSV, JSON and times")
struct RenderingTests {
    @Test("a text table pads each column to its widest cell and trims trailing spaces")
    func textTable() {
        var table = TextTable(columns: [TextTable.Column("name"), TextTable.Column("n", alignment: .right)])
        table.append(["a", "1234"])
        table.append(["longer name", "5"])
        #expect(
            table.render() == """
                name            n
                -----------  ----
                a            1234
                longer name     5
                """)
    }

    @Test("CSV quotes fields with commas, quotes and line breaks; JSON escapes strings so they parse back")
    func escaping() throws {
        let tricky = "a,\"b\"\n\\c\t\u{01}é"
        let rows = Rows(
            fields: [Field("text", "text"), Field("amount", "amount_cents")],
            rows: [[.text(tricky), .money(Centavos(-5))]])
        #expect(rows.renderCSV() == "text,amount_cents\n\"a,\"\"b\"\"\n\\c\t\u{01}é\",-5")
        let objects = try parseJSONArray(rows.renderJSON())
        #expect(objects[0]["text"] as? String == tricky)
        #expect((objects[0]["amount_cents"] as? NSNumber)?.int64Value == -5)
        #expect(Rows(fields: [Field("x", "x")]).renderJSON() == "[]")
    }

    @Test("durations read as hours, minutes and seconds, with days when there are any")
    func durations() {
        #expect(TerminalTime.duration(seconds: 0) == "0h 00m 00s")
        #expect(TerminalTime.duration(seconds: 3725) == "1h 02m 05s")
        #expect(TerminalTime.duration(seconds: 2 * 86_400 + 61) == "2d 0h 01m 01s")
    }

    @Test("UTC console times drop the milliseconds; local times have the same shape")
    func times() {
        let moment = Timestamp(iso8601: "2026-01-02T03:04:05.678Z")!
        #expect(TerminalTime.utc(moment) == "2026-01-02 03:04:05")
        let local = TerminalTime.local(moment)
        #expect(local.count == 19)
        #expect(local.hasPrefix("2026-01-0"))
    }

    @Test(
        "rows for people: a table with a row-count footer; records with \\x on, or on auto when wider than the terminal"
    )
    func recordView() {
        let rows = Rows(
            fields: [Field("machine", "machine"), Field("balance", "balance_cents", alignment: .right)],
            rows: [[.text("alpha"), .money(Centavos(8816))], [.text("beta"), .missing]])
        let table = rows.renderForPeople(expanded: .off, width: 10, time: TerminalTime.utc)
        #expect(
            table == """
                machine   balance
                -------  --------
                alpha    R$ 88,16
                beta            -
                (2 rows)
                """)
        let records = """
            -[ RECORD 1 ]
            machine | alpha
            balance | R$ 88,16
            -[ RECORD 2 ]
            machine | beta
            balance | -
            (2 rows)
            """
        #expect(rows.renderForPeople(expanded: .on, width: nil, time: TerminalTime.utc) == records)
        #expect(rows.renderForPeople(expanded: .auto, width: 10, time: TerminalTime.utc) == records)
        #expect(rows.renderForPeople(expanded: .auto, width: 80, time: TerminalTime.utc) == table)
        #expect(rows.renderForPeople(expanded: .auto, width: nil, time: TerminalTime.utc) == table)
        let one = Rows(fields: rows.fields, rows: [rows.rows[0]])
        #expect(one.renderForPeople(expanded: .off, width: nil, time: TerminalTime.utc).hasSuffix("\n(1 row)"))
        let none = Rows(fields: rows.fields)
        #expect(
            none.renderForPeople(expanded: .on, width: nil, time: TerminalTime.utc)
                == "machine  balance\n-------  -------\n(0 rows)")
        #expect(
            !none.renderForPeople(expanded: .off, width: nil, footer: false, time: TerminalTime.utc).contains("rows"))
        #expect(one.renderRecord(time: TerminalTime.utc) == "machine  alpha\nbalance  R$ 88,16")
    }
}

@Suite("Terminals, pipes and their sizes")
struct TerminalIOTests {
    @Test("the pipe reader cuts an over-long line, drops \\r, and keeps a last line without a newline")
    func readerLimits() throws {
        let long = String(repeating: "x", count: 10_000)
        let input = pipeContaining("\(long)\nstats\r\nlast")
        let reader = try FileLineReader(fd: input.fileHandleForReading.fileDescriptor)
        #expect(reader.readLine() == String(repeating: "x", count: FileLineReader.maximumLineBytes))
        #expect(reader.readLine() == "stats")
        #expect(reader.readLine() == "last")
        #expect(reader.readLine() == nil)
    }

    @Test("isTerminal is false on a pipe, and a pipe has no terminal size")
    func notATerminal() {
        let pipe = Pipe()
        #expect(!Terminal.isTerminal(fd: pipe.fileHandleForReading.fileDescriptor))
        #expect(Terminal.size(fd: pipe.fileHandleForWriting.fileDescriptor) == nil)
        #expect(Terminal.columns(fd: pipe.fileHandleForWriting.fileDescriptor) == nil)
    }

    @Test("a pseudo-terminal reports the size it was given")
    func terminalSize() throws {
        let terminal = try PseudoTerminal(rows: 12, columns: 70)
        #expect(Terminal.isTerminal(fd: terminal.slave))
        #expect(Terminal.size(fd: terminal.slave) == TerminalSize(rows: 12, columns: 70))
    }
}

/// A pipe whose write end got `input` and was closed.
func pipeContaining(_ input: String) -> Pipe {
    let pipe = Pipe()
    pipe.fileHandleForWriting.write(Data(input.utf8))
    try? pipe.fileHandleForWriting.close()
    return pipe
}

func parseJSONArray(_ text: String) throws -> [[String: Any]] {
    let value = try JSONSerialization.jsonObject(with: Data(text.utf8))
    return try #require(value as? [[String: Any]])
}
