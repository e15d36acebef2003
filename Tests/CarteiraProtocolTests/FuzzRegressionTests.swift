import CarteiraCore
import CarteiraProtocol
import Testing

/// Inputs that the libFuzzer targets in `Fuzz/` found, kept as tests (issue 9).
/// Each names the target and the artifact it came from.
@Suite("Fuzz regressions: requests")
struct RequestFuzzRegressionTests {
    /// fuzz-request, `crash-d9ad905a…` (`CHECK|\r\r\r\r`): the parser dropped
    /// one trailing `"\r"` (a CRLF ending) and kept the rest in the key text,
    /// which `Request.line` wrote back as it was, so the wire form read back
    /// with one `"\r"` fewer. PROTOCOL.md lets no field hold a line break:
    /// key text with a `\r` in it is now refused as `bad_request`.
    @Test(
        "key text holding a carriage return is refused; a CRLF ending is still only the line's ending",
        arguments: ["CHECK|\r\r\r\r", "CHECK|a\rb", "SEND|\r|1", "SEND|k\r\r|1,5|id-1"])
    func keyTextWithCarriageReturn(line: String) throws {
        let parsed = try #require(Request.parse(Substring(line)))
        guard case let .failure(rejection) = parsed else {
            Issue.record("\(line.debugDescription) parsed as \(parsed)")
            return
        }
        #expect(rejection.code == .badRequest)
        #expect(!rejection.message.contains("\r"))
    }

    @Test("a CHECK or SEND ending in CRLF parses as without it, and its wire form reads back the same")
    func crlfEndingStillAccepted() throws {
        for line in ["CHECK|7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8\r", "SEND|7c1e9b2a-4d3f-4e8a-b1c2-d3e4f5a6b7c8|2,5\r"]
        {
            let request = try #require(Request.parse(Substring(line))).get()
            let wire = request.line
            let newlines = wire.utf8.filter { $0 == UInt8(ascii: "\n") }.count
            #expect(newlines == 1 && wire.utf8.last == UInt8(ascii: "\n"))
            #expect(Request.parse(String(decoding: wire.utf8.dropLast(), as: UTF8.self)[...]) == .success(request))
        }
    }

    /// fuzz-request, `crash-aa7b04fd…` (`\0\0ROTATE`): the byte-level parser
    /// packed the command word into one integer, where leading NULs vanish,
    /// so the word matched ROTATE. Command words are letters only now.
    @Test(
        "a command word with NUL or other non-letter bytes names no command",
        arguments: ["\0\0ROTATE", "\0PING", "KEY\0", "SE\0D"])
    func commandWordWithNul(line: String) throws {
        let parsed = try #require(Request.parse(Substring(line)))
        #expect(throws: Rejection.self) { try parsed.get() }
        if case let .failure(rejection) = parsed { #expect(rejection.code == .unknownCommand) }
    }
}
