import CarteiraCore
import CarteiraProtocol
import FuzzSupport

/// Fuzzes the client side: `ServerLine.parse` (and `Push.parse` under it) with
/// one line as the client's framer hands it.
///
/// Properties: parsing is deterministic; `OK`, `ERR` and unknown lines keep
/// their text exactly; a push and a history entry, written back in the
/// server's wire form, parse to the same value.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzServerLine(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let text = framedLine(fuzzBytes(data, size), limit: 1 << 16) else { return 0 }
    let parsed = ServerLine.parse(text[...])
    fuzzCheck(ServerLine.parse(text[...]) == parsed, "parse is not deterministic")
    var line = text[...]
    if line.utf8.last == UInt8(ascii: "\r") { line = line.dropLast() }
    switch parsed {
    case let .ok(fields):
        fuzzCheck(
            (["OK"] + fields).joined(separator: "|") == line,
            "OK fields \(fields) do not rebuild \(line.debugDescription)")
    case let .error(code, message):
        let rebuilt = line == "ERR|\(code)|\(message)" || (message.isEmpty && line == "ERR|\(code)")
        fuzzCheck(rebuilt, "ERR \(code) \(message.debugDescription) does not rebuild \(line.debugDescription)")
    case let .push(push):
        let wire = push.wire
        fuzzCheck(wire.hasSuffix("\n"), "push wire without newline")
        let again = Push.parse(wire.dropLast())
        fuzzCheck(
            again == push,
            "push \(push) has wire form \(wire.debugDescription), which parses to \(String(describing: again))")
        fuzzCheck(ServerLine.parse(wire.dropLast()) == .push(push), "push wire form is not a push line")
    case let .historyEntry(entry):
        let wire = Response.history([entry]).wire
        let lines = wire.split(separator: "\n")
        fuzzCheck(lines.count == 2 && lines[0] == "OK|1", "history wire form \(wire.debugDescription)")
        let again = ServerLine.parse(lines[1])
        fuzzCheck(again == .historyEntry(entry), "TX line \(lines[1].debugDescription) parses to \(again)")
    case let .unknown(raw):
        fuzzCheck(raw == line, "unknown \(raw.debugDescription) is not the line \(line.debugDescription)")
    }
    // A push line parses the same alone and inside ServerLine.
    if let push = Push.parse(line) {
        fuzzCheck(parsed == .push(push), "Push.parse and ServerLine.parse disagree on \(line.debugDescription)")
    }
    return 0
}
