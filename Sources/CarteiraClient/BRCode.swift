public import CarteiraCore
import Foundation

/// A payment request as a BR Code, the "Pix Copia e Cola" text of the
/// Brazilian Central Bank's BR Code manual: EMV QR code TLV fields (two digit
/// id, two digit length, value), ending in a CRC16-CCITT of everything before
/// it. Carteira writes, in this order:
///
/// | id | value |
/// | --- | --- |
/// | 00 | payload format, `01` |
/// | 26 | merchant account: `00` GUI `br.gov.bcb.pix`, `01` the payee's key |
/// | 52 | merchant category, `0000` |
/// | 53 | currency, `986` (BRL) |
/// | 54 | amount, `50.00` (omitted when the payer chooses) |
/// | 58 | country, `BR` |
/// | 59 | the payee's name (the machine, at most 25 characters) |
/// | 60 | city, at most 15 characters |
/// | 62 | additional data: `05` the reference, `***` for none |
/// | 63 | CRC16-CCITT (poly 0x1021, init 0xFFFF) over all before it, including `6304` |
public struct PaymentRequest: Sendable, Hashable {
    public static let gui = "br.gov.bcb.pix"
    public static let defaultCity = "BRASILIA"
    /// The reference a code carries when it names none.
    public static let noReference = "***"
    public static let nameLimit = 25
    public static let cityLimit = 15
    public static let referenceLimit = 25

    /// The key as written in the code; `PaymentKey(keyText)` checks its form.
    public var keyText: String
    public var name: String
    public var city: String
    public var amount: Centavos?
    public var reference: String

    public init(keyText: String, name: String, city: String, amount: Centavos?, reference: String) {
        self.keyText = keyText
        self.name = name
        self.city = city
        self.amount = amount
        self.reference = reference
    }

    /// A request to pay `amount` to `machine`'s `key`; the name and city are
    /// cut to what the layout allows.
    public init(key: PaymentKey, machine: MachineName, amount: Centavos, reference: String, city: String = defaultCity)
    {
        self.init(
            keyText: key.text, name: String(machine.text.prefix(Self.nameLimit)),
            city: Self.cleanCity(city), amount: amount, reference: reference)
    }

    /// Whether `text` may be a reference: 1-25 of `A-Z a-z 0-9`, as the Pix
    /// manual allows for a static code's transaction id.
    public static func isValidReference(_ text: some StringProtocol) -> Bool {
        !text.isEmpty && text.utf8.count <= referenceLimit
            && text.utf8.allSatisfy { ($0 >= 48 && $0 <= 57) || ($0 >= 65 && $0 <= 90) || ($0 >= 97 && $0 <= 122) }
    }

    /// Upper-case ASCII letters, digits and spaces, accents folded, at most 15.
    public static func cleanCity(_ text: String) -> String {
        let folded = text.folding(
            options: [.diacriticInsensitive, .caseInsensitive], locale: Locale(identifier: "en_US_POSIX"))
        let kept = folded.uppercased().unicodeScalars.filter {
            $0.isASCII && ($0 == " " || $0.properties.isAlphabetic || ("0"..."9").contains($0))
        }
        let city = String(String.UnicodeScalarView(kept)).trimmingCharacters(in: .whitespaces)
        return city.isEmpty ? defaultCity : String(city.prefix(cityLimit))
    }

    /// The payload, CRC included.
    public var payload: String {
        var text = field("00", "01")
        text += field("26", field("00", Self.gui) + field("01", keyText))
        text += field("52", "0000")
        text += field("53", "986")
        if let amount {
            text += field("54", "\(amount.value / 100).\(amount.value % 100 < 10 ? "0" : "")\(amount.value % 100)")
        }
        text += field("58", "BR")
        text += field("59", name)
        text += field("60", city)
        text += field("62", field("05", reference))
        text += "6304"
        return text + crcText(text)
    }

    /// Reads a BR Code: the CRC must match, the format must be `01`, the
    /// merchant account must be Pix with a key, and the currency BRL.
    public static func decode(_ text: String) throws(BRCodeError) -> PaymentRequest {
        let code = text.trimmingCharacters(in: .whitespacesAndNewlines)
        guard code.hasPrefix("000201") else { throw .notBRCode }
        let bytes = Array(code.utf8)
        guard bytes.count >= 8, bytes.count <= 512, bytes.allSatisfy({ $0 >= 0x20 && $0 < 0x7F }) else {
            throw .malformed("a BR Code is 8 to 512 printable ASCII characters")
        }
        let fields = try tlv(bytes[...])
        guard let last = fields.last, last.id == "63", last.value.utf8.count == 4 else {
            throw .malformed("the code does not end in its CRC (field 63)")
        }
        let covered = String(decoding: bytes[..<(bytes.count - 4)], as: UTF8.self)
        let expected = crcText(covered)
        guard last.value.uppercased() == expected else { throw .badCRC(found: last.value, computed: expected) }
        func value(_ id: String) -> String? { fields.first { $0.id == id }?.value }
        guard value("00") == "01" else { throw .malformed("the payload format (field 00) is not 01") }
        guard let currency = value("53"), currency == "986" else { throw .notReais(value("53") ?? "none") }
        var key: String?
        var isPix = false
        var isDynamic = false
        for account in fields where account.id == "26" {
            let inner = try tlv(Array(account.value.utf8)[...])
            guard inner.first(where: { $0.id == "00" })?.value.lowercased() == gui else { continue }
            isPix = true
            key = inner.first { $0.id == "01" }?.value
            isDynamic = inner.contains { $0.id == "25" }
        }
        guard isPix else { throw .notPix }
        guard let key else { throw isDynamic ? .dynamic : .malformed("the Pix account (field 26) has no key") }
        var amount: Centavos?
        if let amountText = value("54") {
            guard let parsed = Centavos(amount: amountText), !amountText.contains(",") else {
                throw .malformed("the amount (field 54) \(amountText) is not of the form 50.00")
            }
            amount = parsed
        }
        var reference = noReference
        if let additional = value("62"), let id = try tlv(Array(additional.utf8)[...]).first(where: { $0.id == "05" }) {
            reference = id.value
        }
        return PaymentRequest(
            keyText: key, name: value("59") ?? "", city: value("60") ?? "", amount: amount, reference: reference)
    }
}

/// Why text is not a payable BR Code.
public enum BRCodeError: Error, Sendable, Hashable, CustomStringConvertible {
    case notBRCode
    case malformed(String)
    case badCRC(found: String, computed: String)
    case notPix
    case dynamic
    case notReais(String)

    public var description: String {
        switch self {
        case .notBRCode: "that is not a Pix Copia e Cola code (one starts with 000201)"
        case let .malformed(detail): "that Pix code is damaged: \(detail)"
        case let .badCRC(found, computed):
            "that Pix code is damaged or was changed: its check digits are \(found) but its content gives \(computed); copy it again"
        case .notPix: "that code is not a Pix payment (no br.gov.bcb.pix account)"
        case .dynamic: "that is a dynamic Pix code (a link to a bank's server); carteira pays codes that carry a key"
        case let .notReais(currency): "that code asks for currency \(currency), not reais (986)"
        }
    }
}

/// CRC16-CCITT as the BR Code uses it (also called CRC-16/CCITT-FALSE):
/// polynomial 0x1021, initial value 0xFFFF, no reflection, no final xor.
public func crc16CCITT(_ bytes: some Sequence<UInt8>) -> UInt16 {
    var crc: UInt16 = 0xFFFF
    for byte in bytes {
        crc ^= UInt16(byte) << 8
        for _ in 0..<8 {
            crc = crc & 0x8000 != 0 ? (crc << 1) ^ 0x1021 : crc << 1
        }
    }
    return crc
}

/// Four upper-case hex digits.
private func crcText(_ text: String) -> String {
    let hex = String(crc16CCITT(text.utf8), radix: 16, uppercase: true)
    return String(repeating: "0", count: 4 - hex.count) + hex
}

private func field(_ id: String, _ value: String) -> String {
    let count = value.utf8.count
    precondition(count < 100, "a BR Code field holds at most 99 characters")
    return id + (count < 10 ? "0" : "") + String(count) + value
}

/// Splits TLV fields; every length must fit inside the text.
private func tlv(_ bytes: ArraySlice<UInt8>) throws(BRCodeError) -> [(id: String, value: String)] {
    var fields: [(id: String, value: String)] = []
    var index = bytes.startIndex
    while index < bytes.endIndex {
        guard bytes.endIndex - index >= 4 else { throw .malformed("a field is cut short") }
        let head = bytes[index..<(index + 4)]
        guard head.allSatisfy({ $0 >= 48 && $0 <= 57 }) else {
            throw .malformed("a field's id and length are not digits")
        }
        let id = String(decoding: head.prefix(2), as: UTF8.self)
        let length = Int(head[index + 2] - 48) * 10 + Int(head[index + 3] - 48)
        let start = index + 4
        guard bytes.endIndex - start >= length else { throw .malformed("field \(id) is longer than the code") }
        fields.append((id, String(decoding: bytes[start..<(start + length)], as: UTF8.self)))
        index = start + length
    }
    return fields
}
