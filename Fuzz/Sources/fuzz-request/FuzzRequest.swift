import CarteiraCore
import CarteiraProtocol
import FuzzSupport

/// Fuzzes `Request.parse` with what the server's framer hands it: one line of
/// valid UTF-8 without its `"\n"`, at most 4096 bytes.
///
/// Properties: parsing is deterministic; the line's bytes
/// (`Request.parse(utf8:)`, the server's path) parse as its text does; a parsed request's wire form
/// (`Request.line`) parses back to the same request; a refusal's wire form is
/// one `ERR|<code>|...` line, whatever the input echoed into its message.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzRequest(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    guard let line = framedLine(fuzzBytes(data, size)) else { return 0 }
    let parsed = Request.parse(line[...])
    fuzzCheck(Request.parse(line[...]) == parsed, "parse is not deterministic")
    let viaBytes = Array(line.utf8).withUnsafeBytes { Request.parse(utf8: $0) }
    fuzzCheck(viaBytes == parsed, "\(line.debugDescription): its bytes parse to \(String(describing: viaBytes))")
    switch parsed {
    case nil:
        fuzzCheck(line.isEmpty || line == "\r", "\(line.debugDescription) ignored as empty")
    case let .success(request):
        let wire = request.line
        // One line as the framer cuts it: exactly one "\n", at the end.
        // (Bytes, not Characters: "\r\n" is one Character.)
        let newlines = wire.utf8.filter { $0 == UInt8(ascii: "\n") }.count
        fuzzCheck(
            wire.utf8.last == UInt8(ascii: "\n") && newlines == 1,
            "\(request) has wire form \(wire.debugDescription), not one line")
        let again = Request.parse(String(decoding: wire.utf8.dropLast(), as: UTF8.self)[...])
        fuzzCheck(
            again == .success(request),
            "\(line.debugDescription) parses to \(request), whose wire form \(wire.debugDescription) parses to \(String(describing: again))"
        )
        let command =
            line.utf8.split(separator: UInt8(ascii: "|"), omittingEmptySubsequences: false).first.map {
                String(decoding: $0, as: UTF8.self)
            } ?? ""
        fuzzCheck(command.uppercased().hasPrefix(request.name), "\(line.debugDescription) parsed as \(request.name)")
        checkValues(request)
    case let .failure(rejection):
        let wire = Response.error(rejection).wire
        fuzzCheck(wire.hasPrefix("ERR|\(rejection.code.rawValue)|"), "refusal wire form \(wire.debugDescription)")
        let breaks = wire.unicodeScalars.filter { $0 == "\n" || $0 == "\r" }.count
        let bars = wire.unicodeScalars.filter { $0 == "|" }.count
        fuzzCheck(
            breaks == 1 && wire.utf8.last == UInt8(ascii: "\n") && bars == 2,
            "refusal of \(line.debugDescription) is not one line of three fields: \(wire.debugDescription)")
    }
    return 0
}

/// Values a request carries are in their documented form.
func checkValues(_ request: Request) {
    switch request {
    case let .register(machine), let .login(machine, _):
        fuzzCheck(MachineName(machine.text) == machine, "machine \(machine) not in form")
    case let .send(keyText, amount, requestID):
        fuzzCheck(amount.value > 0, "SEND amount \(amount.value) not positive")
        checkKeyText(keyText)
        if let requestID {
            fuzzCheck(RequestID(requestID.text) == requestID && requestID.text != "-", "request id \(requestID)")
        }
    case let .check(keyText):
        checkKeyText(keyText)
    case let .history(limit):
        fuzzCheck(HistoryLimit.range.contains(limit), "history limit \(limit)")
    default:
        break
    }
}

/// The key of a `CHECK` or `SEND`: its text holds no field separator, and a
/// key parses back from the text it writes.
func checkKeyText(_ keyText: KeyText) {
    fuzzCheck(!keyText.text.utf8.contains(UInt8(ascii: "|")), "key text holds |")
    if let key = keyText.key { fuzzCheck(PaymentKey(key.text) == key, "key \(key) does not parse back") }
}
