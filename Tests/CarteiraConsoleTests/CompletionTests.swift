@testable import CarteiraConsole
import CarteiraCore
import Testing

@Suite("Tab completion")
struct CompletionTests {
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
        #expect(candidates("", "\\p") == ["\\pager"])
        #expect(candidates("\\pager ", "o") == ["on", "off"])
        #expect(candidates("history --limit 5 ", "a") == ["alpha"])
        #expect(candidates("history alpha ", "a") == [])
        #expect(candidates("machines --format ", "j") == ["json"])
        #expect(candidates("help ", "ve") == ["verify"])
        #expect(candidates("frobnicate ", "") == [])
        #expect(candidates("verify ", "--") == ["--format"])
        #expect(candidates("rotate ", "--") == [])
    }
}
