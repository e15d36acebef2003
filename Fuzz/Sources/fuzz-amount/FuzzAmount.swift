import CarteiraCore
import CarteiraProtocol
import FuzzSupport

/// Fuzzes `Centavos(amount:)` (request amounts) against a reference reading of
/// the grammar in PROTOCOL.md, and the `R$ 1.234,56` formatter and the
/// `SEND` wire form against the parser.
@_cdecl("LLVMFuzzerTestOneInput")
public func fuzzAmount(_ data: UnsafePointer<UInt8>?, _ size: Int) -> Int32 {
    let bytes = fuzzBytes(data, size)
    let text = String(decoding: bytes, as: UTF8.self)
    let parsed = Centavos(amount: text)
    let expected = referenceAmount(Array(text.utf8))
    fuzzCheck(
        parsed?.value == expected,
        "Centavos(amount: \(text.debugDescription)) is \(String(describing: parsed?.value)), the grammar says \(String(describing: expected))"
    )
    // Substring and String agree.
    fuzzCheck(Centavos(amount: text[...]) == parsed, "Substring and String parse differently")
    if let amount = parsed {
        fuzzCheck(amount.value > 0 && amount.value <= 99_999_999_999_999, "amount \(amount.value) out of range")
        // The formatted amount, without `R$ ` and the thousands dots, is a request amount again.
        let brl = amount.brl
        fuzzCheck(brl.hasPrefix("R$ "), "brl \(brl) lacks R$")
        let plain = String(brl.dropFirst(3).filter { $0 != "." })
        fuzzCheck(Centavos(amount: plain) == amount, "brl \(brl) does not parse back to \(amount.value)")
        // The wire form a client sends carries the same amount.
        let request = Request.send(keyText: "k", amount: amount, requestID: nil)
        let line = request.line
        fuzzCheck(line.hasSuffix("\n"), "request line without newline")
        let reparsed = Request.parse(line.dropLast())
        fuzzCheck(
            reparsed == .success(request),
            "SEND wire form \(line.debugDescription) re-parses to \(String(describing: reparsed))")
    }
    // Eight bytes: any Int64 through the formatter, read back digit by digit.
    if bytes.count == 8 {
        var value: Int64 = 0
        for byte in bytes { value = value << 8 | Int64(byte) }
        let brl = Centavos(value).brl
        fuzzCheck(readBRL(brl) == value, "brl \(brl) does not read back as \(value)")
    }
    return 0
}

/// The amount grammar written out a second time, as PROTOCOL.md states it:
/// 1-12 digits, then optionally `,` or `.` and 1-2 digits; greater than zero.
func referenceAmount(_ bytes: [UInt8]) -> Int64? {
    func isDigit(_ byte: UInt8) -> Bool { byte >= 48 && byte <= 57 }
    let separator = bytes.firstIndex { $0 == UInt8(ascii: ",") || $0 == UInt8(ascii: ".") }
    let whole = bytes[..<(separator ?? bytes.endIndex)]
    let fraction = separator.map { bytes[($0 + 1)...] } ?? []
    guard (1...12).contains(whole.count), whole.allSatisfy(isDigit) else { return nil }
    guard separator == nil || ((1...2).contains(fraction.count) && fraction.allSatisfy(isDigit)) else { return nil }
    // At most 12 digits, all checked above: no overflow.
    var cents = whole.reduce(Int64(0)) { $0 * 10 + Int64($1 - 48) } * 100
    for (place, digit) in zip([Int64(10), 1], fraction) { cents += Int64(digit - 48) * place }
    return cents > 0 ? cents : nil
}

/// Reads `R$ 1.234,56` or `-R$ 0,50` back, checking the grouping strictly.
func readBRL(_ text: String) -> Int64? {
    var rest = Substring(text)
    let negative = rest.hasPrefix("-")
    if negative { rest = rest.dropFirst() }
    guard rest.hasPrefix("R$ ") else { return nil }
    rest = rest.dropFirst(3)
    let parts = rest.split(separator: ",", omittingEmptySubsequences: false)
    func digitsOnly(_ text: Substring) -> Bool { text.utf8.allSatisfy { $0 >= 48 && $0 <= 57 } }
    guard parts.count == 2, parts[1].count == 2, digitsOnly(parts[1]), let cents = UInt64(parts[1]) else { return nil }
    let groups = parts[0].split(separator: ".", omittingEmptySubsequences: false)
    guard let first = groups.first, (1...3).contains(first.count), first == "0" || !first.hasPrefix("0") else {
        return nil
    }
    var reais: UInt64 = 0
    for (index, group) in groups.enumerated() {
        guard index == 0 || group.count == 3, digitsOnly(group), let digits = UInt64(group) else { return nil }
        reais = reais * 1000 + digits
    }
    let magnitude = reais * 100 + cents
    if negative {
        guard magnitude > 0, magnitude <= UInt64(Int64.max) + 1 else { return nil }
        return magnitude == UInt64(Int64.max) + 1 ? Int64.min : -Int64(magnitude)
    }
    guard magnitude <= UInt64(Int64.max) else { return nil }
    return Int64(magnitude)
}
