import CarteiraConsole
import CarteiraCore
import Foundation
import Testing

@Suite("Tables, CSV, JSON, times and completion")
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
        #expect(ConsoleTime.duration(seconds: 0) == "0h 00m 00s")
        #expect(ConsoleTime.duration(seconds: 3725) == "1h 02m 05s")
        #expect(ConsoleTime.duration(seconds: 2 * 86_400 + 61) == "2d 0h 01m 01s")
    }

    @Test("UTC console times drop the milliseconds; local times have the same shape")
    func times() {
        let moment = Timestamp(iso8601: "2026-01-02T03:04:05.678Z")!
        #expect(ConsoleTime.utc(moment) == "2026-01-02 03:04:05")
        let local = ConsoleTime.local(moment)
        #expect(local.count == 19)
        #expect(local.hasPrefix("2026-01-0"))
    }

    @Test("Tab offers command names, then machines, keys, options and formats as the command takes them")
    func completion() {
        let machines = [Fixture.alpha, Fixture.beta]
        let keys = [Fixture.alphaKey, Fixture.betaKey]
        func candidates(_ before: String, _ word: String) -> [String] {
            ConsoleCompletion.candidates(
                lineBeforeWord: before, word: word, machines: machines, keys: keys,
                transfers: ["T000000000005", "T000000000004"])
        }
        #expect(candidates("", "mach") == ["machines", "machine"])
        #expect(candidates("", "s") == ["statement", "sessions", "stats", "shutdown"])
        #expect(candidates("", "ex") == ["exit"])
        #expect(candidates("machine ", "") == ["alpha", "beta"])
        #expect(candidates("rotate ", "b") == ["beta"])
        #expect(candidates("balance ", "2222") == [Fixture.betaKey.text])
        #expect(candidates("history alpha ", "--") == ["--format", "--from", "--to", "--since", "--until", "--limit"])
        #expect(candidates("history --from ", "b") == ["beta"])
        #expect(candidates("machines ", "--format=j") == ["--format=json"])
        #expect(candidates("machines --sort ", "") == ["name", "balance", "last"])
        #expect(candidates("tx ", "T0") == ["T000000000005", "T000000000004"])
        #expect(candidates("\\x ", "a") == ["auto"])
        #expect(candidates("history --limit 5 ", "a") == ["alpha"])
        #expect(candidates("history alpha ", "a") == [])
        #expect(candidates("machines --format ", "j") == ["json"])
        #expect(candidates("help ", "ve") == ["verify"])
        #expect(candidates("frobnicate ", "") == [])
        #expect(candidates("verify ", "--") == ["--format"])
        #expect(candidates("rotate ", "--") == [])
    }
}
